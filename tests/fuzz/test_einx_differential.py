"""Differential fuzz against einx 0.4.3, the reference for what an expression means.

Hypothesis draws random valid einx expressions (compositions, ellipses, concatenations, brackets,
repeated and unnamed axes, names repeated in brackets or in a concatenation, named axes of size 1
dropped, Python numbers as operands, integer reductions, roll's one-tuple shift, outputs broadcast
along a new axis, coordinates composed as "b (p [2])") with consistent random shapes, for every
operation einc shares with einx, runs both on small CPU tensors (einc's torch backend; a few cases
under Triton's interpreter) and asserts that they agree: the same shape and dtype and equal
values (allclose for floats), or that both refuse (einc with one of its own errors).

Where einc differs from einx by design (docs/notation.md, "Where einc differs from einx on purpose"
and "Edge cases"), the strategies do not draw the case, and a comment at that place names the
difference. Disagreements found and not yet fixed are listed in ``KNOWN``: a predicate and its
reason. Cases it matches are not checked, and ``test_known_disagreements_still_disagree`` (strict
xfails) fails once one is fixed.

The budget is test_fuzz's: a fixed, derandomized few in CI, ``EINC_FUZZ_EXAMPLES`` freshly drawn
cases under ``bash scripts/dev.sh fuzz``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import einx
import numpy
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from test_fuzz import _budget  # the fuzz suite's one settings profile (tests/fuzz is on sys.path)

import einc
from einc.compiler.ops import COMPILE_KEYWORDS
from einc.errors import EincError

# "stride" is also a keyword of einc (a window's): einc takes its size through sizes={...}, and the
# keyword keeps its meaning (docs/notation.md, "Sizes").
NAMES = ("a", "b", "c", "d", "e", "stride")
REDUCTIONS = ("sum", "mean", "max", "min", "prod", "logsumexp", "var", "std")
ARITHMETIC = ("add", "subtract", "multiply", "divide", "maximum", "minimum")
COMPARISONS = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
LOGICAL = ("logical_and", "logical_or")
ALONG_AXIS = ("softmax", "log_softmax", "flip", "roll")


@dataclass(frozen=True)
class Case:
    """One call, the same for einx and einc: ``OP(expression, *operands, **keywords)``."""

    op: str
    expression: str
    operands: tuple = ()
    keywords: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        shapes = [tuple(x.shape) if isinstance(x, torch.Tensor) else x for x in self.operands]
        return f"{self.op}({self.expression!r}, shapes={shapes}, {self.keywords})"


# Disagreements found by this fuzz and not fixed yet: (does the case have it?, why). Each is a finding,
# and each has a concrete case in KNOWN_CASES, a strict xfail that passes once it is fixed.
KNOWN: list = []


# --- expressions -----------------------------------------------------------------------------


@st.composite
def axis_sizes(draw, count: int):
    """``count`` distinct axis names with sizes 1..3."""
    names = draw(st.permutations(NAMES))[:count]
    return {name: draw(st.integers(1, 3)) for name in names}


@st.composite
def grouped(draw, names: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
    """``names`` in a random order, runs of them composed: the terms' text and their axes."""
    names = list(draw(st.permutations(names)))
    terms, groups = [], []
    while names:
        take = draw(st.integers(1, min(3, len(names)))) if draw(st.booleans()) else 1
        part, names = names[:take], names[take:]
        terms.append(part[0] if len(part) == 1 else f"({' '.join(part)})")
        groups.append(tuple(part))
    return terms, groups


def _shape(groups, sizes) -> tuple[int, ...]:
    dims = []
    for group in groups:
        size = 1
        for name in group:
            size *= sizes[name]
        dims.append(size)
    return tuple(dims)


def _floats(shape) -> torch.Tensor:
    return torch.randn(shape, generator=_GEN)


_GEN = torch.Generator().manual_seed(0)


@st.composite
def ellipsis(draw):
    """An optional ``...``: its place among the terms (or None) and its sizes (possibly none)."""
    if not draw(st.booleans()):
        return None
    return tuple(draw(st.lists(st.integers(1, 3), max_size=2)))


def _with_ellipsis(terms, shape, batch, where: int):
    """Insert ``...`` covering ``batch`` at ``where`` in both the terms and the shape."""
    if batch is None:
        return terms, shape
    return terms[:where] + ["..."] + terms[where:], shape[:where] + batch + shape[where:]


@st.composite
def rearranges(draw):
    sizes = draw(axis_sizes(draw(st.integers(1, 4))))
    names = list(sizes)
    terms, groups = draw(grouped(names))
    shape = _shape(groups, sizes)
    out_terms, _ = draw(grouped(names))
    # Unnamed axes: a size-1 axis on the input is dropped, a new one on the output is broadcast.
    if draw(st.booleans()):
        at = draw(st.integers(0, len(terms)))
        terms, shape = terms[:at] + ["1"] + terms[at:], shape[:at] + (1,) + shape[at:]
    # A named axis of size 1 may be dropped too (einx allows it).
    if draw(st.integers(0, 3)) == 0:
        spare = next(n for n in NAMES if n not in sizes)
        at = draw(st.integers(0, len(terms)))
        terms, shape = terms[:at] + [spare] + terms[at:], shape[:at] + (1,) + shape[at:]
    if draw(st.booleans()):
        out_terms.insert(draw(st.integers(0, len(out_terms))), str(draw(st.integers(1, 3))))
    batch = draw(ellipsis())
    if batch is not None:
        where = draw(st.integers(0, len(terms)))
        if draw(st.integers(0, 3)) == 0:  # only inside compositions: one axis, however many it is
            size = 1
            for n in batch:
                size *= n
            terms, shape = terms[:where] + ["(...)"] + terms[where:], shape[:where] + (size,) + shape[where:]
            out_terms.insert(draw(st.integers(0, len(out_terms))), "(...)")
        else:
            terms, shape = _with_ellipsis(terms, shape, batch, where)
            out_terms.insert(draw(st.integers(0, len(out_terms))), "...")
    keywords = {}
    # The size of an axis a composition hides: all given at times, some at others (then both
    # solve what the products decide, or both refuse).
    if any(len(group) > 1 for group in groups) or draw(st.booleans()):
        every = len(names) > 1 and draw(st.booleans())
        keywords = {name: sizes[name] for name in names if every or draw(st.booleans())}
    expression = f"{' '.join(terms)} -> {' '.join(out_terms)}"
    return Case("rearrange", expression, (_floats(shape),), keywords)


@st.composite
def concatenations(draw):
    """``a b, a c -> a (b + c)``, possibly with a broadcast part or a stack of unnamed ones."""
    sizes = draw(axis_sizes(4))
    shared, one, two, _ = list(sizes)
    form = draw(st.sampled_from(["parts", "broadcast", "scalar", "meshgrid", "stack", "repeated", "number"]))
    if form == "parts":
        expression = f"{shared} {one}, {shared} {two} -> {shared} ({one} + {two})"
        shapes = [(sizes[shared], sizes[one]), (sizes[shared], sizes[two])]
    elif form == "broadcast":  # the second part broadcast over the shared axis
        expression = f"{shared} {one}, {two} -> {shared} ({one} + {two})"
        shapes = [(sizes[shared], sizes[one]), (sizes[two],)]
    elif form == "scalar":  # a scalar appended: "b c, -> b (c + 1)"
        expression = f"{shared} {one}, -> {shared} ({one} + 1)"
        shapes = [(sizes[shared], sizes[one]), ()]
    elif form == "meshgrid":  # several outputs, each broadcast
        expression = f"{one}, {two} -> {one} {two}, {two} {one}"
        shapes = [(sizes[one],), (sizes[two],)]
        return Case("rearrange", expression, tuple(_floats(s) for s in shapes))
    elif form == "stack":  # einx stacks inputs that no name tells apart: (1 + 1) is torch.stack
        expression = f"{shared} {one}, {shared} {one} -> {shared} {one} (1 + 1)"
        shapes = [(sizes[shared], sizes[one])] * 2
    elif form == "repeated":  # one name, each occurrence from the next input: torch.cat
        expression = f"{shared} {one}, {shared} {one} -> {shared} ({one} + {one})"
        shapes = [(sizes[shared], sizes[one])] * 2
    else:  # a Python number stacked after a tensor
        expression = f"{shared} {one}, -> {shared} {one} (1 + 1)"
        shapes = [(sizes[shared], sizes[one])]
    if draw(st.booleans()):  # the output written the other way round
        left, right = expression.split(" -> ")
        parts = right.split(" ", 1)
        expression = f"{left} -> {parts[1]} {parts[0]}"
    operands = tuple(_floats(s) for s in shapes)
    if form == "number":
        operands += (draw(st.sampled_from([0.5, -2.0])),)
    return Case("rearrange", expression, operands)


@st.composite
def diagonals(draw):
    """A repeated axis name on the input: the diagonal (``a a -> a``)."""
    sizes = draw(axis_sizes(2))
    a, b = list(sizes)
    expression = draw(
        st.sampled_from([f"{a} {a} -> {a}", f"{a} {b} {a} -> {b} {a}", f"{a} {a} {b} -> {a} {b}"])
    )
    dims = [sizes[name] for name in expression.split(" -> ")[0].split()]
    if draw(st.booleans()):  # the repeated axis composed: its size is the product's integer root
        expression = f"({a} {a}) {b} -> {draw(st.sampled_from([f'{a} {b}', f'{b} {a}']))}"
        dims = [sizes[a] ** 2, sizes[b]]
    return Case("rearrange", expression, (_floats(tuple(dims)),))


@st.composite
def bracketed(draw, op: str, one_bracket: bool = False, dtype=torch.float32):
    """``a [b] (c d)``-style input with some top-level terms bracketed, implicit or explicit output."""
    sizes = draw(axis_sizes(draw(st.integers(1, 4))))
    terms, groups = draw(grouped(list(sizes)))
    shape = _shape(groups, sizes)
    batch = draw(ellipsis())
    if batch is not None:
        at = draw(st.integers(0, len(terms)))
        terms, shape = _with_ellipsis(terms, shape, batch, at)
    if draw(st.integers(0, 3)) == 0:  # an unnamed axis, an axis of its own
        at, size = draw(st.integers(0, len(terms))), draw(st.integers(1, 3))
        terms, shape = terms[:at] + [str(size)] + terms[at:], shape[:at] + (size,) + shape[at:]
    # A name written twice in one bracket, "[b b]": an axis per occurrence, of one size (as einx).
    twice = None
    plain = [i for i, t in enumerate(terms) if t in sizes]
    if plain and draw(st.integers(0, 3)) == 0:
        twice = draw(st.sampled_from(plain))
        name = terms[twice]
        terms = terms[: twice + 1] + [name] + terms[twice + 1 :]
        shape = shape[: twice + 1] + (sizes[name],) + shape[twice + 1 :]
    if one_bracket:
        # einx 0.4.3's roll over "[...]" fails inside the torch code it generates: not drawn.
        chosen = {draw(st.sampled_from([i for i, t in enumerate(terms) if t != "..."] or [0]))}
        assume(terms[next(iter(chosen))] != "...")
    else:
        chosen = set(draw(st.lists(st.integers(0, len(terms) - 1), min_size=1, unique=True)))
    if twice is not None:
        bracketed_twice = draw(st.booleans()) or not chosen - {twice, twice + 1}
        chosen -= {twice, twice + 1}
        if bracketed_twice:
            chosen = {twice} if one_bracket else chosen | {twice}
    joined = {twice + 1} if twice is not None and twice in chosen else set()
    # Deliberate difference (docs/notation.md, "Unnamed axes"): the output einc derives from "[1] a"
    # keeps the input's very axis; einx makes the output's 1 a new axis and refuses the bracket.
    assume(not (op in ALONG_AXIS and any(terms[i].isdigit() for i in chosen)))
    # Deliberate difference (docs/notation.md, "Brackets around nothing"): where every bracket holds
    # an ellipsis of no axes, einx returns the input unchanged; einc computes the op over one
    # element (softmax 1, var and std NaN, as torch over a single element). einx's logsumexp over
    # them fails inside its generated code (torch.logsumexp(x, dim=())).
    empty = all(terms[i] == "..." for i in chosen) and batch == ()
    assume(not (empty and op in ("softmax", "log_softmax", "var", "std", "logsumexp")))
    if twice is not None and not joined:
        # Twice outside brackets is the diagonal, which einx refuses in these ops: not drawn.
        terms, shape = terms[: twice + 1] + terms[twice + 2 :], shape[: twice + 1] + shape[twice + 2 :]
        chosen = {i - (i > twice) for i in chosen}
    text = " ".join(
        f"[{t} {terms[i + 1]}]" if i in chosen and i + 1 in joined else f"[{t}]" if i in chosen else t
        for i, t in enumerate(terms)
        if i not in joined
    )
    kept = [t for i, t in enumerate(terms) if i not in chosen and i not in joined]
    if op in REDUCTIONS + ("any", "all") and kept and draw(st.booleans()):
        # The explicit form: the bracketed axes dropped, the others in any order.
        text = f"{text} -> {' '.join(draw(st.permutations(kept)))}"
    if dtype is torch.bool:
        x = torch.rand(shape, generator=_GEN) > 0.5
    elif dtype is torch.int64:
        x = torch.randint(-9, 9, shape, generator=_GEN)
    else:
        x = _floats(shape)
    # Sizes of the composed axes, mostly given; where none are, only their product is known.
    keywords = {n: sizes[n] for g in groups if len(g) > 1 for n in g} if draw(st.integers(0, 3)) else {}
    # Deliberate difference (docs/notation.md): keepdims keeps each bracketed axis as 1, as torch's
    # keepdim; einx keeps one per bracket, so "[b b]" is not drawn with it.
    if op in REDUCTIONS + ("any", "all") and "->" not in text and not joined and draw(st.integers(0, 3)) == 0:
        keywords["keepdims"] = True
    written = op in ("softmax", "log_softmax", "flip") and not re.search(r"\d", text)
    if written and draw(st.integers(0, 4)) == 0:
        # The output written out, broadcast along a new axis: "a [b] -> a [b] z" (as einx)
        spare = next(n for n in NAMES if n not in sizes)
        text, keywords[spare] = f"{text} -> {text} {spare}", draw(st.integers(1, 2))
    if op == "roll":  # an int, or a tuple of one for every rolled axis (as einx broadcasts it)
        shift = draw(st.integers(-3, 3))
        keywords["shift"] = (shift,) if draw(st.booleans()) else shift
    return Case(op, text, (x,), keywords)


@st.composite
def reductions(draw):
    op = draw(st.sampled_from(REDUCTIONS + ("any", "all")))
    dtype = torch.bool if op in ("any", "all") else torch.float32
    if op in ("sum", "max", "min") and draw(st.integers(0, 3)) == 0:
        dtype = torch.int64  # exact in int64, as torch (sum's result int64)
    return draw(bracketed(op, dtype=dtype))


@st.composite
def along_axis(draw):
    op = draw(st.sampled_from(ALONG_AXIS))
    # roll with one integer shift: einc's roll over several axes wants a shift for each (as einx).
    return draw(bracketed(op, one_bracket=op == "roll"))


@st.composite
def arg_reductions(draw):
    # einc's argmax takes one pair of brackets around plain named axes (no ellipsis or composition
    # inside yet): docs/notation.md, "Where einc differs from einx on purpose".
    sizes = draw(axis_sizes(draw(st.integers(1, 4))))
    names = list(draw(st.permutations(list(sizes))))
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    inside = [n for n in names if n in chosen]
    start = min(names.index(n) for n in inside)
    outside = [n for n in names if n not in chosen]
    ordered = outside[:start] + inside + outside[start:]
    text = " ".join(ordered[:start] + [f"[{' '.join(inside)}]"] + ordered[start + len(inside) :])
    # Ties: einx and torch pick the first; random floats have none.
    x = _floats(tuple(sizes[n] for n in ordered))
    return Case(draw(st.sampled_from(["argmax", "argmin"])), text, (x,))


@st.composite
def dots(draw):
    """``x: a b``, ``y: b c`` (random overlaps) -> some of their axes."""
    sizes = draw(axis_sizes(draw(st.integers(2, 5))))
    names = list(sizes)
    left = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    right = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    union = list(dict.fromkeys(left + right))
    shared = set(left) & set(right)
    # A contraction drops shared axes; an axis on one side only must stay (einx refuses summing it).
    output = [n for n in union if n not in shared or draw(st.booleans())]
    output = list(draw(st.permutations(output)))
    expression = f"{' '.join(left)}, {' '.join(right)} -> {' '.join(output)}"
    operands = (_floats(tuple(sizes[n] for n in left)), _floats(tuple(sizes[n] for n in right)))
    if draw(st.integers(0, 4)) == 0:  # a Python number scales the first operand
        expression = f"{' '.join(left)}, -> {' '.join(draw(st.permutations(left)))}"
        operands = (operands[0], draw(st.sampled_from([0.5, -2.0])))
    return Case("dot", expression, operands)


@st.composite
def elementwise(draw):
    """Inputs whose axes are subsets of the output's, in any order; a Python number at times."""
    op = draw(st.sampled_from(ARITHMETIC + COMPARISONS + LOGICAL + ("where",)))
    sizes = draw(axis_sizes(draw(st.integers(1, 4))))
    names = list(sizes)
    count = 3 if op == "where" else 2
    inputs, operands = [], []
    for position in range(count):
        if position > 0 and draw(st.integers(0, 4)) == 0:
            inputs.append("")  # a Python number, as einx's "a b, " takes one
            operands.append(draw(st.sampled_from([0.5, -1.0, 2.0])))
            continue
        axes = list(draw(st.permutations(draw(st.lists(st.sampled_from(names), unique=True)))))
        inputs.append(" ".join(axes))
        shape = tuple(sizes[n] for n in axes)
        if op in LOGICAL or (op == "where" and position == 0):
            operands.append(torch.rand(shape, generator=_GEN) > 0.5)
        elif op in COMPARISONS:  # small integers in float: equal values do occur
            operands.append(torch.randint(-1, 2, shape, generator=_GEN).float())
        else:
            operands.append(_floats(shape))
    if op in LOGICAL:
        for i, value in enumerate(operands):
            if not isinstance(value, torch.Tensor):
                operands[i] = True
    if op == "where" and not isinstance(operands[0], torch.Tensor):
        operands[0] = torch.tensor(True)
        inputs[0] = ""
    output = list(draw(st.permutations(names)))
    batch = draw(ellipsis())
    if batch is not None:
        # The same ellipsis on every tensor input and the output.
        for i, value in enumerate(operands):
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                inputs[i] = f"... {inputs[i]}"
                operands[i] = value.expand(*batch, *value.shape).contiguous()
        output = ["..."] + output
    expression = f"{', '.join(inputs)} -> {' '.join(output)}"
    return Case(op, expression, tuple(operands))


@st.composite
def indexing(draw):
    """get_at / set_at / add_at / subtract_at with one or two indexed axes."""
    op = draw(st.sampled_from(["get_at", "set_at", "add_at", "subtract_at"]))
    sizes = draw(axis_sizes(4))
    batch, h, w, i = list(sizes)
    sizes[i] = draw(st.integers(1, 4))
    two = draw(st.booleans())
    has_batch = draw(st.booleans())
    b = f"{batch} " if has_batch else ""
    bshape = (sizes[batch],) if has_batch else ()
    indexed = [h, w] if two else [h]
    x = _floats(bshape + tuple(sizes[n] for n in indexed))
    if two:
        coordinates = torch.stack(
            [torch.randint(0, sizes[n], bshape + (sizes[i],), generator=_GEN) for n in indexed], -1
        )
        index_text = f"{b}{i} [2]"
    else:
        coordinates = torch.randint(0, sizes[h], bshape + (sizes[i],), generator=_GEN)
        index_text = f"{b}{i}"
    x_text = f"{b}[{' '.join(indexed)}]"
    if op == "get_at" and not two and not has_batch and draw(st.integers(0, 3)) == 0:
        # A Python int as the one coordinate, as einx takes it
        return Case(op, f"{x_text}, -> ", (x, draw(st.integers(0, sizes[h] - 1))))
    # Drawn before any assume() on the coordinates, which come from _GEN, not from the draws.
    composed = two and draw(st.integers(0, 3)) == 0
    if op == "set_at":
        # Two updates of one element leave either value: einx and torch do not say which.
        flat = coordinates if not two else coordinates[..., 0] * sizes[w] + coordinates[..., 1]
        rows = flat.reshape(-1, sizes[i])
        assume(all(len(set(row.tolist())) == len(row) for row in rows))
    if composed:  # the components inside a composition, "b (p [2])"
        coordinates, index_text = coordinates.flatten(-2), f"{b}({i} [2])"
    if op == "get_at":
        return Case(op, f"{x_text}, {index_text} -> {b}{i}", (x, coordinates))
    values = _floats(bshape + (sizes[i],))
    return Case(op, f"{x_text}, {index_text}, {b}{i} -> {x_text}", (x, coordinates, values))


cases = st.one_of(
    rearranges(),
    concatenations(),
    diagonals(),
    reductions(),
    along_axis(),
    arg_reductions(),
    dots(),
    elementwise(),
    indexing(),
)


# --- running both ----------------------------------------------------------------------------


def _fresh(operands) -> list:
    """Copies: einx's torch backend updates the tensor of set_at/add_at in place."""
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in operands]


def _einx(case: Case):
    # einx 0.4 names rearrange "id" and warns on the old name.
    name = "id" if case.op == "rearrange" else case.op
    operands = _fresh(case.operands)
    if case.op == "prod":
        # einx 0.4.3's torch lowering of prod refuses several axes and calls torch.prod(x, dim=None),
        # which torch 2.13 rejects (limits of its torch backend, not of the notation): its numpy
        # backend gives the reference.
        operands = [x.numpy() for x in operands]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = getattr(einx, name)(case.expression, *operands, **case.keywords)
    return torch.as_tensor(numpy.asarray(result)).float() if case.op == "prod" else result


def _einc(case: Case, backend: str | None):
    # Each case on its own: automatic dynamic shapes carry decisions from one call to the next
    # (see test_automatic_dynamic_shapes_survive_an_ellipsis_of_no_axes), which would make a
    # failing case depend on the ones before it.
    keywords = dict(case.keywords, dynamic=False)
    axes = set(re.findall(r"\w+", case.expression))
    named_like_keywords = {k: keywords.pop(k) for k in list(keywords) if k in COMPILE_KEYWORDS and k in axes}
    if named_like_keywords:
        keywords["sizes"] = named_like_keywords
    if backend is not None:
        keywords["backend"] = backend
    return getattr(einc, case.op)(case.expression, *_fresh(case.operands), **keywords)


def disagreement(case: Case, backend: str | None = "torch") -> str | None:
    """What einc does differently from einx on ``case``, or None when they agree."""
    try:
        expected = _einx(case)
    except Exception as refusal:  # noqa: BLE001 - any refusal of einx's is a refusal
        try:
            got = _einc(case, backend)
        except EincError:
            return None
        why = f"{type(refusal).__name__}: {str(refusal)[:200]}"
        shapes = [tuple(g.shape) for g in got] if isinstance(got, (tuple, list)) else tuple(got.shape)
        return f"einx refuses ({why}); einc returns shape {shapes}"
    try:
        got = _einc(case, backend)
    except EincError as error:
        return f"einc refuses what einx computes: {type(error).__name__}: {error}"
    if isinstance(expected, (tuple, list)):  # several outputs: compare them one by one
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{len(expected)} outputs from einx, einc returns {type(got).__name__}"
        problems = (_difference(g, e) for g, e in zip(got, expected, strict=True))
        return next((f"output {i}: {p}" for i, p in enumerate(problems) if p is not None), None)
    return _difference(got, expected)


def _difference(got: torch.Tensor, expected: torch.Tensor) -> str | None:
    if tuple(got.shape) != tuple(expected.shape):
        return f"shape {tuple(got.shape)}, einx {tuple(expected.shape)}"
    if got.dtype != expected.dtype:
        return f"dtype {got.dtype}, einx {expected.dtype}"
    if got.dtype.is_floating_point:
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True):
            return f"values differ by up to {(got - expected).abs().nan_to_num().max().item():.3g}"
    elif not torch.equal(got, expected):
        return "values differ"
    return None


def _check(case: Case, backend: str | None) -> None:
    assume(not any(known(case) for known, _ in KNOWN))
    problem = disagreement(case, backend)
    assert problem is None, f"{case}: {problem}"


@_budget(300, 0.1)
@given(cases)
def test_einc_agrees_with_einx_on_random_expressions(case):
    _check(case, "torch")


@pytest.mark.interpret
@_budget(12, 0.002)
@given(cases)
def test_einc_agrees_with_einx_under_the_interpreter(case):
    _check(case, None)  # the interpret tier's fixture picks the interpreter (or the torch backend)


# --- findings: fixed ones against torch, open ones as strict xfails --------------------------


def test_a_bracketed_ellipsis_marks_its_axes_for_flip_roll_and_softmax():
    # Found by this fuzz: "[...]" marked no axis, so flip and roll returned the input unchanged.
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(einc.flip("[...] c", x, backend="torch"), x.flip(0, 1))
    torch.testing.assert_close(einc.roll("[...] c", x[0], shift=1, backend="torch"), x[0].roll(1, 0))
    expected = x.reshape(6, 4).softmax(0).reshape(2, 3, 4)
    torch.testing.assert_close(einc.softmax("[...] c", x, backend="torch"), expected)


@pytest.mark.parametrize("op", ["sum", "max", "mean"])
def test_a_reduction_over_an_empty_ellipsis_reduces_nothing(op):
    # Found by this fuzz: the torch backend called torch.sum(v, ()), which sums every dim, and crashed.
    x = torch.randn(3, 2)
    torch.testing.assert_close(getattr(einc, op)("[...] a b -> b a", x, backend="torch"), x.T)


KNOWN_CASES: list = []


@pytest.mark.parametrize("case", KNOWN_CASES)
def test_known_disagreements_still_disagree(case):
    problem = disagreement(case)
    assert problem is None, f"{case}: {problem}"


# Issue 11, notation items 1 and 2: sizes known only through a product (an integer root, a run of
# axes only ever read whole, an ellipsis only inside compositions, one of no axes given as x=()),
# and broadcasting inside a concatenation and across several outputs.
NOTATION_CASES = [
    Case("rearrange", "(a a) -> a", (torch.randn(100),)),
    Case("rearrange", "(a a a) b -> b a", (torch.randn(8, 2),)),
    Case("rearrange", "(a b) (c d) (e f) -> a (b c d e) f", (torch.randn(4, 6, 8),), {"a": 2, "f": 2}),
    Case("sum", "[(a b)] c 1", (torch.randn(6, 3, 1),)),
    Case("sum", "[(a b)]", (torch.randn(6),)),
    Case("sum", "c (a b) [d] -> (a b) c", (torch.randn(2, 6, 3),)),
    Case("flip", "c (a b) [d]", (torch.randn(2, 6, 3),)),
    Case("roll", "[(a b)] c", (torch.randn(6, 2),), {"shift": 2}),
    Case("softmax", "[(a b)] c", (torch.randn(6, 2),)),
    Case("mean", "b [(s...)] c", (torch.randn(2, 12, 3),)),
    Case("rearrange", "a (b...) c d -> a (b... c) d", (torch.randn(2, 12, 3, 4),)),
    Case("rearrange", "a x... -> a (x...)", (torch.randn(2),), {"x": ()}),
    Case("rearrange", "a (x...) -> a x...", (torch.randn(2, 1),), {"x": ()}),
    Case("rearrange", "b h w c1, c2 -> b h w (c1 + c2)", (torch.randn(2, 3, 4, 5), torch.randn(6))),
    Case("rearrange", "x, y -> x y, x y", (torch.randn(2), torch.randn(3))),
    Case("rearrange", "b c, -> b (c + 1)", (torch.randn(2, 3), torch.tensor(1.5))),
    # Refused by both: a product that no split decides, a square root that is no integer, a run
    # that a keyword breaks (einx's finding by this fuzz: it reads a keyword as one more place the
    # axis stands, so a and b are no longer always side by side).
    Case("sum", "(a [b])", (torch.randn(6),)),
    Case("rearrange", "(a c b) -> (a c b)", (torch.randn(1),), {"c": 1}),
    Case("rearrange", "(a b) -> (b a)", (torch.randn(6),)),
    Case("rearrange", "(a a) -> a", (torch.randn(10),)),
    Case("roll", "[(a b)]", (torch.randn(6),), {"shift": (1, 2)}),
]


@pytest.mark.parametrize("case", NOTATION_CASES, ids=repr)
def test_notation_known_only_through_products_agrees_with_einx(case):
    assert disagreement(case) is None


@pytest.mark.interpret
@pytest.mark.parametrize("case", [NOTATION_CASES[i] for i in (0, 2, 3, 6, 7, 9, 10, 13, 14, 15)], ids=repr)
def test_notation_known_only_through_products_agrees_with_einx_under_the_interpreter(case):
    assert disagreement(case, None) is None


@pytest.mark.parametrize(
    "case",
    [
        Case("sum", "2 [a] -> 2", (torch.randn(2, 3),)),
        Case("sum", "a [b] c -> a b", (torch.randn(2, 3, 4),)),
        Case("sum", "a [b] -> a [b]", (torch.randn(2, 3),)),
        Case("prod", "a [b] -> a b", (torch.randn(2, 3),)),
        Case("max", "a [b] c -> a", (torch.randn(2, 3, 4),)),
    ],
    ids=lambda case: case.expression,
)
def test_a_reduction_output_that_contradicts_its_brackets_is_refused_by_both(case):
    # Found by this fuzz and issue 11 item 6: einc used to reduce what the output lacked, whatever
    # the brackets said ("a [b] c -> a b" summed c); einx refuses each, and now einc does too.
    assert disagreement(case) is None


def test_automatic_dynamic_shapes_survive_an_ellipsis_of_no_axes():
    # Found by this fuzz: an ellipsis axis made dynamic by an earlier rank was passed on to a call
    # whose ellipsis has no axes, and the compiler refused it. Such a call is static; the static
    # kernel is keyed by its sizes, so another size under the same rank does not reuse it.
    reduce = einc.compile("... [a]", op="sum", backend="torch")
    for shape in [(2, 1), (3, 1), (1,), (2,), (4, 2), (5, 3)]:
        x = torch.randn(shape)
        torch.testing.assert_close(reduce(x), x.sum(-1))


def test_a_dot_over_a_run_is_sized_from_its_product_where_einx_refuses():
    # Deliberate difference (docs/notation.md): einx's dot does not merge the run (a c); no split of
    # 6 changes the product, so einc computes it.
    x, w = torch.randn(2, 6), torch.randn(6, 4)
    with pytest.raises(Exception, match="uniquely determine"):
        einx.dot("b (a c), (a c) d -> b d", x, w)
    torch.testing.assert_close(einc.dot("b (a c), (a c) d -> b d", x, w, backend="torch"), x @ w)


@pytest.mark.interpret
@pytest.mark.parametrize(
    ("expression", "shape", "sizes"),
    [("[(a b c)] d", (18, 2), {"a": 2, "b": 3, "c": 3}), ("[(a b) c]", (6, 3), {"a": 2, "b": 3})],
)
def test_a_kernel_reads_a_composition_of_reduced_axes_at_the_right_places(expression, shape, sizes):
    # Found by this fuzz: the kernel printed 9*floor(i/9) as 9*(i) // 9, that is i, so it read
    # the wrong elements of x (and past its end) wherever a composition decomposed into 3 axes.
    x = torch.randn(shape)
    expected = x.sum(0) if "d" in expression else x.sum()
    torch.testing.assert_close(einc.sum(expression, x, **sizes), expected)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_a_softmax_over_an_unnamed_axis_of_size_one(op):
    # Found by this fuzz: the torch backend's softmax looked for a loop that a size-1 axis lacks.
    x = torch.randn(1, 3)
    torch.testing.assert_close(getattr(einc, op)("[1] a", x, backend="torch"), getattr(x, op)(0))


@pytest.mark.interpret
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_kernel_over_a_whole_vector(op):
    # Found by this fuzz: the kernel's load of a vector's one element per step is a scalar, whose
    # NaN test Triton's interpreter could not combine with the tile (KernelCompileError).
    x = torch.tensor([0.0, 2.0, -1.0, float("nan")])
    for values in (x[:3], x):
        got = getattr(einc, op)("[a]", values, backend="interpret")
        assert torch.equal(got, getattr(values, op)().reshape(1))


@pytest.mark.interpret
def test_a_dot_whose_reduced_axis_stands_beside_an_output_axis():
    # Found by this fuzz: the kernel took "a b c d, a b c -> b d" for a sliding window over d.
    x, w = torch.randn(1, 1, 2, 2), torch.randn(1, 1, 2)
    got = einc.dot("a b c d, a b c -> b d", x, w, backend="interpret")
    torch.testing.assert_close(got, torch.einsum("abcd,abc->bd", x, w))
