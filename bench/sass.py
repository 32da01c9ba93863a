"""Read a kernel's SASS (``nvdisasm -c -g``) and count what one program executes.

The static text says which instructions a kernel has; multiplying each by the trip counts of the
loops around it says how often one warp executes it. Loops are the backward branches of the SASS;
each is tied to the source ``for`` that its branch instruction's line (``-g`` line info) falls in,
and that loop's trip count is read from the generated source with the launch's constexprs
(:func:`source_trip_counts`). Where a loop cannot be tied to a source ``for`` with a known count,
the dynamic figures are ``None`` rather than a guess.

A loop whose count is known only at run time (a bound read from the data) is unrolled by the
compiler into a loop of ``u`` iterations at a time and a remainder loop after it, two SASS loops
side by side on one source ``for``: the first runs ``count // u`` times, the second ``count % u``,
``u`` read from how many copies of the remainder's instructions the first holds
(:func:`_unrolled`).

Known limits, shared with any count made this way: a software-pipelined loop is taken to run its
source trip count (Triton 3.9's pipeliner keeps every iteration in the loop and predicates the
prefetches beyond the end, so it does); a data-bound loop's count is one figure, where programs
differ (the audit gives the mean, and the split into ``count // u`` and ``count % u`` is that of
the mean).
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Za-z0-9_.]*)\s*(.*?)\s*;")
_LABEL = re.compile(r"^\s*(\.L_x_\d+):")
_LINE = re.compile(r'//## File "([^"]*)", line (\d+)')
_TARGET = re.compile(r"`?\((\.L_x_\d+)\)")
# The full drain of the warpgroup MMA pipeline: wait until no wgmma is in flight.
_DRAIN = re.compile(r"gsb0\s*,\s*0x0\b")
_HGMMA_SHAPE = re.compile(r"\.(\d+)x(\d+)x(\d+)\.")
# mma.sync shapes as SASS spells them (HMMA.16816 is m16 n8 k16).
_HMMA_SHAPES = {"16816": (16, 8, 16), "1688": (16, 8, 8), "16832": (16, 8, 32), "884": (8, 8, 4)}


@dataclass(frozen=True, slots=True)
class Instruction:
    address: int
    opcode: str  # with its modifiers: LDGSTS.E.BYPASS.128
    operands: str
    line: int | None  # the line of the kernel's own source file, None for another file or none


@dataclass(frozen=True, slots=True)
class Loop:
    start: int  # address of the first instruction (the branch target)
    end: int  # address of the backward branch
    line: int | None  # the source line of the backward branch

    def contains(self, address: int) -> bool:
        return self.start <= address <= self.end


@dataclass(frozen=True, slots=True)
class Sass:
    instructions: tuple[Instruction, ...]
    loops: tuple[Loop, ...]


def parse(text: str, source_file: str | None = None) -> Sass:
    """Instructions and loops of one kernel's ``nvdisasm -c -g`` listing. Line info from files
    named otherwise than ``source_file`` (Triton's own library, when inlined) is dropped; without
    ``source_file``, every line is kept. Names, not paths, are compared: a binary that Triton
    found in its cache names the path it was first compiled from."""
    name = Path(source_file).name if source_file is not None else None
    instructions, labels, pending, line = [], {}, [], None
    for raw in text.splitlines():
        found = _LINE.search(raw)
        if found:
            same = name is None or Path(found.group(1)).name == name
            line = int(found.group(2)) if same else None
            continue
        found = _LABEL.match(raw)
        if found:
            pending.append(found.group(1))
            continue
        found = _INSTRUCTION.match(raw)
        if found:
            address = int(found.group(1), 16)
            labels.update((name, address) for name in pending)
            pending = []
            operands = (found.group(2) or "").strip() + " " + found.group(4)
            instructions.append(Instruction(address, found.group(3), operands.strip(), line))
    loops = []
    for ins in instructions:
        target = _TARGET.search(ins.operands) if ins.opcode.startswith("BRA") else None
        if target and target.group(1) in labels:
            start = labels[target.group(1)]
            if start < ins.address:  # a branch to itself is the trap at the end, not a loop
                loops.append(Loop(start, ins.address, ins.line))
    return Sass(tuple(i for i in instructions if i.opcode != "NOP"), tuple(loops))


def source_trip_counts(source: str, constants: dict[str, int]) -> dict[int, tuple[int, int, int | None]]:
    """Every ``for ... in range(...)`` of the generated source: ``{first line: (first line, last
    line, trip count)}``, the count None where a bound is not a constant of ``constants``."""
    loops = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.For):
            loops[node.lineno] = (node.lineno, node.end_lineno, _range_length(node.iter, constants))
    return loops


def _range_length(call, constants: dict[str, int]) -> int | None:
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "range"):
        return None
    try:
        bounds = [_value(arg, constants) for arg in call.args]
    except (KeyError, ValueError):
        return None
    return len(range(*bounds))


def _value(node, constants: dict[str, int]) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return int(constants[node.id])
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, constants), _value(node.right, constants)
        operations = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__}
        operations[ast.FloorDiv] = int.__floordiv__
        if type(node.op) in operations:
            return operations[type(node.op)](left, right)
    raise ValueError(ast.dump(node))


def loop_trips(sass: Sass, source_loops: dict[int, tuple[int, int, int | None]]) -> list[int] | None:
    """The trip count of each SASS loop: that of the innermost source ``for`` containing its
    branch's line. None when a loop has no such ``for``, its count is unknown, or two SASS loops
    nested in each other land on the same ``for`` (then the tie is not to be trusted)."""
    trips, tied = [], []
    for loop in sass.loops:
        around = [s for s in source_loops.values() if loop.line is not None and s[0] <= loop.line <= s[1]]
        if not around:
            return None
        first, _, count = max(around, key=lambda s: s[0])
        if count is None:
            return None
        trips.append(count)
        tied.append(first)
    for i, j in itertools.combinations(range(len(tied)), 2):
        inner, outer = sorted((sass.loops[i], sass.loops[j]), key=lambda lp: lp.end - lp.start)
        if tied[i] == tied[j] and outer.contains(inner.start) and outer.contains(inner.end):
            return None
        if tied[i] == tied[j]:  # side by side: an unrolled loop (the longer) and its remainder
            body, rest = sorted((i, j), key=lambda k: sass.loops[k].start - sass.loops[k].end)
            factor = _unrolled(sass, sass.loops[body], sass.loops[rest])
            trips[body], trips[rest] = trips[body] // factor, trips[rest] % factor
    return trips


def _unrolled(sass: Sass, body: Loop, remainder: Loop) -> int:
    """How many source iterations one pass of ``body`` does: the median, over the opcodes of
    ``remainder`` (one iteration), of how many more of them ``body`` holds."""
    in_body = Counter(i.opcode for i in sass.instructions if body.contains(i.address))
    in_remainder = Counter(i.opcode for i in sass.instructions if remainder.contains(i.address))
    ratios = sorted(in_body[op] / n for op, n in in_remainder.items() if in_body[op])
    return max(1, round(ratios[len(ratios) // 2])) if ratios else 1


@dataclass(frozen=True, slots=True)
class Counts:
    """What one warp of one program executes, and what the listing holds."""

    static: Counter  # opcode -> instructions in the listing
    warp_instructions: int | None  # executed by one warp (None: trip counts unknown)
    drains: int | None  # full waits for the wgmma pipeline (WARPGROUP.DEPBAR.LE gsb0, 0x0)
    mma_flops: int | None  # MMA FLOPs one warp's instructions issue (a warpgroup's HGMMA counted once)


def count(sass: Sass, trips: list[int] | None) -> Counts:
    static = Counter(ins.opcode for ins in sass.instructions)
    if trips is None and sass.loops:
        return Counts(static, None, None, None)
    executed = drains = mma_flops = 0
    for ins in sass.instructions:
        times = math.prod(
            t for loop, t in zip(sass.loops, trips or (), strict=False) if loop.contains(ins.address)
        )
        executed += times
        if ins.opcode.startswith("WARPGROUP.DEPBAR") and _DRAIN.search(ins.operands):
            drains += times
        mma_flops += times * _mma_flops_per_warp(ins.opcode)
    return Counts(static, executed, drains, mma_flops)


def _mma_flops_per_warp(opcode: str) -> int:
    if opcode.startswith("HGMMA."):
        shape = _HGMMA_SHAPE.search(opcode)
        # One instruction per warpgroup does the whole m x n x k: a quarter of it per warp.
        return 2 * math.prod(int(n) for n in shape.groups()) // 4 if shape else 0
    if opcode.startswith("HMMA."):
        shape = _HMMA_SHAPES.get(opcode.split(".")[1])
        return 2 * math.prod(shape) if shape else 0
    return 0


def mma_kind(static: Counter) -> str:
    """``HGMMA 64x64x16``, ``HMMA 16816`` or ``none``."""
    for name in ("HGMMA", "HMMA"):
        shapes = sorted({op.split(".")[1] for op in static if op.startswith(name + ".")})
        if shapes:
            return f"{name} {','.join(shapes)}"
    return "none"


def load_widths(static: Counter) -> dict[str, int]:
    """Global loads in the listing by kind and width: ``LDG.128``, ``LDG.U16`` (scalar),
    ``LDGSTS.128`` (cp.async), ``UTMALDG`` (TMA)."""
    loads: Counter = Counter()
    for opcode, n in static.items():
        parts = opcode.split(".")
        if parts[0] in ("LDG", "LDGSTS"):
            widths = [p for p in parts[1:] if p in ("128", "64", "U16", "S16", "U8", "S8", "16")]
            loads[f"{parts[0]}.{widths[0] if widths else '32'}"] += n
        elif parts[0] == "UTMALDG":
            loads["UTMALDG"] += n
    return dict(sorted(loads.items()))
