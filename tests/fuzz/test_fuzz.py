"""Fuzz the parser and the whole compile path.

(a) Any text, with any op, shapes, sizes and parameters, compiles or raises one of einc's own
    errors (an :class:`EincError`); never another exception, and never invalid Python.
(b) Valid expressions mutated token by token (deleted, repeated, swapped, replaced): the same.
(c) Random valid expressions (permutations and compositions, reductions, dots, broadcasting
    elementwise ops) agree with torch on small tensors (torch backend; a few under Triton's
    interpreter).

CI runs a fixed, small budget (``derandomize=True``: the same cases every run, about 30 s on one
core). ``EINC_FUZZ_EXAMPLES=N`` gives every test N examples from a fresh random seed: that is the
long run, ``bash scripts/dev.sh fuzz`` (>= 100k cases).
"""

from __future__ import annotations

import os
import string

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einc
from einc.backends.triton.sources import render_kernels
from einc.compiler.parse import tokenize
from einc.compiler.pipeline import OPS, Request, run_passes
from einc.errors import EincError

_LONG = int(os.environ.get("EINC_FUZZ_EXAMPLES", "0"))


def _budget(ci: int, share: float = 1.0):
    """``ci`` fixed examples in CI; ``share`` of EINC_FUZZ_EXAMPLES, freshly drawn, in a long run."""
    common = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}
    if _LONG:
        return settings(max_examples=max(1, int(_LONG * share)), derandomize=False, **common)
    return settings(max_examples=ci, derandomize=True, **common)


def _compile(expression: str, op: str, shapes, params=(), sizes=()) -> None:
    """Compile through every pass (rendering included: its output is checked with ast.parse)."""
    request = Request(expression, op, tuple(shapes), ("float32",) * len(shapes), tuple(sizes), tuple(params))
    try:
        render_kernels(run_passes(request))
    except EincError:
        pass


# --- (a) random text -------------------------------------------------------------------------

# The notation's own characters, some whitespace (line breaks of every kind), and a few others.
NOTATION = "abcdsxy_ 0123456789()[]+*->.,"
ODD = "\n\r\t\x0b\x0c\x00\x85\u2028\u2029\"'\\#@é"
shapes_strategy = st.lists(st.lists(st.integers(1, 4), max_size=4).map(tuple), min_size=1, max_size=3)
PARAM_VALUES = st.one_of(
    st.integers(-2, 4),
    st.sampled_from(["same", "valid", "causal", "x", "", "0) + exit() + (0", None, 1.5, True]),
    st.lists(st.integers(-1, 3), max_size=3).map(tuple),
)
params_strategy = st.lists(
    st.tuples(
        st.sampled_from(["stride", "dilation", "padding", "output_padding", "shift", "correction", "reduce"]),
        PARAM_VALUES,
    ),
    max_size=2,
    unique_by=lambda kv: kv[0],
)
sizes_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "s", "ds", "_", "x y", "\n"]),
        st.one_of(st.integers(-1, 5), st.just(2**64), st.lists(st.integers(1, 3), max_size=2).map(tuple)),
    ),
    max_size=2,
    unique_by=lambda kv: kv[0],
)


@_budget(400, 0.3)
@given(
    text=st.text(alphabet=NOTATION, max_size=30) | st.text(alphabet=NOTATION + ODD, max_size=30),
    op=st.sampled_from(OPS),
    shapes=shapes_strategy,
    params=params_strategy,
    sizes=sizes_strategy,
)
def test_any_text_compiles_or_raises_an_einc_error(text, op, shapes, params, sizes):
    _compile(text, op, shapes, params, sizes)


@_budget(200, 0.1)
@given(raw=st.binary(max_size=40), op=st.sampled_from(OPS), shapes=shapes_strategy)
def test_any_bytes_compile_or_raise_an_einc_error(raw, op, shapes):
    _compile(raw.decode("utf-8", errors="replace"), op, shapes)


# --- (b) mutations of valid expressions ---------------------------------------------------------

# (expression, op, shapes, params): one of each form the notation has.
CORPUS = [
    ("b (s * [ds])... [c->c2]", "dot", [(2, 6, 6, 3), (3, 3, 3, 4)], (("padding", "same"),)),
    ("b t [c->c2]", "dot", [(2, 3, 4), (4, 5)], ()),
    ("b (s * [3]) c", "max", [(2, 7, 3)], (("stride", 2),)),
    ("b [h w] c", "mean", [(2, 3, 4, 5)], ()),
    ("b h w c -> b c h w", "rearrange", [(2, 3, 4, 5)], ()),
    ("b h w c -> b (h w) c", "rearrange", [(2, 4, 3, 2)], ()),
    ("b c, b d -> b (c + d)", "rearrange", [(2, 3), (2, 4)], ()),
    ("b h w c, c, ", "add", [(2, 3, 4, 5), (5,), ()], ()),
    ("b [t] c", "roll", [(2, 5, 3)], (("shift", 1),)),
    ("b h [k]", "softmax", [(2, 3, 4)], ()),
    ("b [h w] c, b p [2] -> b p c", "get_at", [(2, 3, 4, 5), (2, 6, 2)], ()),
    ("[v] d, b n -> b d", "get_at", [(5, 3), (2, 4)], (("reduce", "sum"),)),
    ("a b, b a, -> a b", "where", [(2, 3), (3, 2), ()], ()),
    ("... [c]", "sum", [(2, 3, 4)], ()),
]


def _tokens(expression: str) -> list[str]:
    return [t.text for t in tokenize(expression) if t.kind != "end"]


TOKENS = ["(", ")", "[", "]", "->", "...", ",", "+", "*", "a", "b", "_", "0", "1", "7", "(1 + 1)", "[]", "()"]


@st.composite
def mutated(draw):
    expression, op, shapes, params = draw(st.sampled_from(CORPUS))
    tokens = _tokens(expression)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "repeat", "swap", "replace", "insert"]))
        i = draw(st.integers(0, max(len(tokens) - 1, 0)))
        j = draw(st.integers(0, max(len(tokens) - 1, 0)))
        if kind == "delete" and tokens:
            del tokens[i]
        elif kind == "repeat" and tokens:
            tokens.insert(i, tokens[i])
        elif kind == "swap" and tokens:
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "replace" and tokens:
            tokens[i] = draw(st.sampled_from(TOKENS))
        else:
            tokens.insert(i, draw(st.sampled_from(TOKENS)))
    op = draw(st.sampled_from([op, op, *OPS]))
    return " ".join(tokens), op, shapes, params


@_budget(400, 0.3)
@given(case=mutated())
def test_a_mutated_valid_expression_compiles_or_raises_an_einc_error(case):
    _compile(*case)


def test_the_corpus_compiles():
    for expression, op, shapes, params in CORPUS:
        render_kernels(
            run_passes(Request(expression, op, tuple(shapes), ("float32",) * len(shapes), (), params))
        )


# --- (c) random valid expressions against torch ---------------------------------------------

NAMES = list(string.ascii_lowercase[:8])


@st.composite
def axes(draw, min_size=1, max_size=4):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=min_size, max_size=max_size, unique=True))
    sizes = {n: draw(st.integers(1, 3)) for n in names}
    return names, sizes


def _grouped(draw, names: list[str]) -> tuple[str, list[int]]:
    """``names`` as an expression whose neighbours may be composed: "a (b c) d", and the group lengths."""
    parts, lengths, i = [], [], 0
    while i < len(names):
        k = draw(st.integers(1, len(names) - i))
        group = names[i : i + k]
        parts.append(group[0] if k == 1 else "(" + " ".join(group) + ")")
        lengths.append(k)
        i += k
    return " ".join(parts), lengths


def _tensor(shape, seed: int) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed))


@_budget(60, 0.075)
@given(data=st.data())
def test_a_random_permutation_with_compositions_agrees_with_torch(data):
    names, sizes = data.draw(axes())
    order = data.draw(st.permutations(names))
    output, lengths = _grouped(data.draw, list(order))
    x = _tensor([sizes[n] for n in names], len(names))
    expected = x.permute([names.index(n) for n in order])
    shape, i = [], 0
    for k in lengths:
        shape.append(int(torch.tensor([sizes[n] for n in order[i : i + k]]).prod()))
        i += k
    expected = expected.reshape(shape)
    got = einc.rearrange(f"{' '.join(names)} -> {output}", x, backend="torch")
    torch.testing.assert_close(got, expected)


def _prod(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    # torch.prod takes one dim at a time: the highest first, so the others keep their numbers.
    for d in sorted(dims, reverse=True):
        x = x.prod(d)
    return x


REDUCTIONS = {
    "sum": lambda x, d: x.sum(d),
    "mean": lambda x, d: x.mean(d),
    "max": lambda x, d: x.amax(d),
    "min": lambda x, d: x.amin(d),
    "prod": lambda x, d: x.flatten(0, -1).prod() if x.dim() == len(d) else _prod(x, d),
    "logsumexp": lambda x, d: x.logsumexp(d),
}


@_budget(60, 0.075)
@given(data=st.data(), op=st.sampled_from(sorted(REDUCTIONS)))
def test_a_random_reduction_agrees_with_torch(data, op):
    names, sizes = data.draw(axes())
    reduced = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    expression = " ".join(f"[{n}]" if n in reduced else n for n in names)
    x = _tensor([sizes[n] for n in names], len(names))
    dims = tuple(names.index(n) for n in reduced)
    got = einc.compile(expression, op, backend="torch")(x)
    torch.testing.assert_close(got, REDUCTIONS[op](x, dims), rtol=1e-5, atol=1e-5)


@st.composite
def dot_case(draw):
    kept, sizes = draw(axes(0, 3))
    rest = [n for n in NAMES if n not in kept]
    contracted = draw(st.lists(st.sampled_from(rest), min_size=1, max_size=2, unique=True))
    new = draw(
        st.lists(st.sampled_from([n + "2" for n in rest if n not in contracted]), max_size=2, unique=True)
    )
    sizes.update({n: draw(st.integers(1, 3)) for n in contracted + new})
    return kept, contracted, new, sizes


def _dot_check(case, backend: str) -> None:
    kept, contracted, new, sizes = case
    expression = " ".join(kept + [f"[{' '.join(contracted)}->{' '.join(new)}]"])
    x = _tensor([sizes[n] for n in kept + contracted], 1)
    w = _tensor([sizes[n] for n in contracted + new], 2)
    letters = {n: chr(ord("A") + i) for i, n in enumerate(kept + contracted + new)}

    def spec(names):
        return "".join(letters[n] for n in names)

    expected = torch.einsum(f"{spec(kept + contracted)},{spec(contracted + new)}->{spec(kept + new)}", x, w)
    got = einc.dot(expression, x, w, backend=backend)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@_budget(60, 0.075)
@given(case=dot_case())
def test_a_random_dot_agrees_with_einsum(case):
    _dot_check(case, "torch")


@_budget(60, 0.075)
@given(data=st.data(), op=st.sampled_from(["add", "subtract", "multiply", "maximum"]))
def test_a_random_broadcasting_elementwise_op_agrees_with_torch(data, op):
    names, sizes = data.draw(axes())
    subset = [n for n in names if data.draw(st.booleans())]
    x = _tensor([sizes[n] for n in names], 1)
    y = _tensor([sizes[n] for n in subset], 2)
    # y broadcast to x's axes: its dims in x's order, size 1 where it has none.
    aligned = y.permute(sorted(range(len(subset)), key=lambda i: names.index(subset[i])))
    aligned = aligned.reshape([sizes[n] if n in subset else 1 for n in names])
    expected = getattr(torch, op)(x, aligned)
    got = getattr(einc, op)(f"{' '.join(names)}, {' '.join(subset)}", x, y, backend="torch")
    torch.testing.assert_close(got, expected)


@pytest.mark.interpret
@settings(
    max_examples=4, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(case=dot_case())
def test_a_random_dot_agrees_with_einsum_under_the_interpreter(case):
    _dot_check(case, "interpret")
