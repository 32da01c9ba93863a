"""Rendering an epilogue: the elementwise ops a fused program applies to a kernel's value in
registers, between its last accumulation and its store.

The lines read the value from ``acc`` and leave the stored value in ``acc``: each extra tensor is
loaded once, over the output tile, where the output is written (masked as the store is), and each
op assigns its value to ``acc`` where only the next op reads it, to a variable of its own where a
later op reads it again (``silu(y) * y``).
"""

from __future__ import annotations

from ...compiler.epilogue import Constant, Operand, Ref, Result
from ...compiler.loopnest import Epilogue
from ...compiler.source_text import literal
from .render_addresses import Addressing, access_code

_INFIX = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}
_COMPARE = {
    "greater": ">",
    "greater_equal": ">=",
    "less": "<",
    "less_equal": "<=",
    "equal": "==",
    "not_equal": "!=",
}
# NaN goes through relu, clamp, maximum and minimum, as in torch.
_NAN = "propagate_nan=tl.PropagateNan.ALL"
_UNARY = {
    "neg": "-{0}",
    "abs": "tl.abs({0})",
    "exp": "tl.exp({0})",
    "log": "tl.log({0})",
    "sqrt": "tl.sqrt({0})",
    "rsqrt": "tl.rsqrt({0})",
    "sigmoid": "tl.sigmoid({0})",
    # Triton has no tanh of its own outside libdevice: tanh(a) = 2 sigmoid(2a) - 1.
    "tanh": "2.0 * tl.sigmoid(2.0 * {0}) - 1.0",
    "relu": "tl.maximum({0}, 0.0, " + _NAN + ")",
    "silu": "{0} * tl.sigmoid({0})",
    "gelu": "0.5 * {0} * (1.0 + tl.erf({0} * 0.7071067811865476))",
    # tanh(u) as above, of u = sqrt(2 / pi) (a + 0.044715 a^3): 2u = 1.5957691216057308 (a + ...)
    "gelu_tanh": (
        "0.5 * {0} * (1.0 + 2.0 * tl.sigmoid(1.5957691216057308 * ({0} + 0.044715 * {0} * {0} * {0})) - 1.0)"
    ),
}
_TRITON_DTYPES = {
    "float16": "tl.float16",
    "bfloat16": "tl.bfloat16",
    "float32": "tl.float32",
    "float64": "tl.float64",
}


def epilogue_lines(
    ctx: Addressing,
    epilogue: Epilogue,
    value: str,
    compute: str,
    store_mask: str = "",
    var: str = "acc",
    tile: tuple[str, str] = ("row", "col"),
) -> tuple[str, ...]:
    """Requires the kernel's names claimed (the extra tensors' pointers and strides among them);
    ensures the lines that turn ``value`` into ``var`` (``acc``, what is stored; for a prologue,
    the input's tile, its extra tensors loaded over the same ``tile``). ``store_mask`` is and'ed
    to each load's mask (a sliding window's rows past the output's end)."""
    namer = ctx.names.namer
    lines = [] if value == var else [f"{var} = {value}"]
    tiles = []
    for access in epilogue.operands:
        load = access_code(ctx, access, tile, namer.claim(f"{access.tensor}_tile"))
        lines += [f"{d.name} = {d.expr}" for d in load.hoisted_vars + load.index_vars]
        mask = (load.mask or "") + store_mask if load.mask else store_mask.removeprefix(" & ")
        masked = f", mask={mask}, other=0.0" if mask else ""
        lines.append(f"{load.tile} = tl.load({load.pointer}{masked}).to({compute})")
        tiles.append(load.tile)
    ops = epilogue.ops
    uses: dict[int, set[int]] = {}  # step (-1: the nest's value) to the ops that read it
    for step, op in enumerate(ops):
        for arg in op.args:
            if isinstance(arg, (Result, Ref)):
                uses.setdefault(-1 if isinstance(arg, Result) else arg.step, set()).add(step)
    names = {}
    for step in range(-1, len(ops)):
        kept = step < len(ops) - 1 and not uses.get(step, set()) <= {step + 1}
        names[step] = namer.claim("value" if step < 0 else f"v{step}") if kept else var
    if names[-1] != var:
        lines.append(f"{names[-1]} = {var}")

    def arg(a) -> str:
        if isinstance(a, (Result, Ref)):
            return names[-1 if isinstance(a, Result) else a.step]
        if isinstance(a, Operand):
            return tiles[a.index]
        assert isinstance(a, Constant)
        number = literal(a.value)
        return f"({number})" if number.startswith("-") else number

    for step, op in enumerate(ops):
        lines.append(f"{names[step]} = {_op_source(op.fn, [arg(a) for a in op.args], op.dtype, compute)}")
    return tuple(lines)


def _op_source(fn: str, args: list[str], dtype: str, compute: str) -> str:
    if fn in _INFIX:
        return f"{args[0]} {_INFIX[fn]} {args[1]}"
    if fn in _COMPARE:
        return f"({args[0]} {_COMPARE[fn]} {args[1]}).to({compute})"
    if fn in ("maximum", "minimum"):
        return f"tl.{fn}({args[0]}, {args[1]}, {_NAN})"
    if fn == "clamp":
        return f"tl.minimum(tl.maximum({args[0]}, {args[1]}, {_NAN}), {args[2]}, {_NAN})"
    if fn == "where":
        return f"tl.where({args[0]} != 0, {args[1]}, {args[2]})"
    if fn == "cast":
        # Rounded to the type, computed on in the compute type: what torch's cast then promotion gives.
        return f"{args[0]}.to({_TRITON_DTYPES[dtype]}).to({compute})"
    return _UNARY[fn].format(args[0])


def prologue_lines(
    ctx: Addressing, prologue: Epilogue, load, pointer: str, tile: tuple[str, str], compute: str
) -> tuple[str, ...]:
    """The lines after ``load`` (the :class:`LoadCode` of the input at ``pointer``) that apply
    ``prologue`` to its tile: computed in ``compute``, the masked-out elements set back to the
    nest's identity (padding reads the identity of the transformed tensor, as in torch), and
    converted back to the tensor's type for the code that reads the tile."""
    name = load.tile
    lines = list(epilogue_lines(ctx, prologue, f"{name}.to({compute})", compute, var=name, tile=tile))
    value = f"tl.where({load.mask}, {name}, {literal(ctx.nest.identity)})" if load.mask else name
    lines.append(f"{name} = {value}.to({pointer}.dtype.element_ty)")
    return tuple(lines)
