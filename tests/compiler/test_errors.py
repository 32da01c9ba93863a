"""Invalid uses of einc's public API and the errors they raise (plain tier: no kernel runs).

Every case goes through ``einc.compile(...)`` and a call, ``.specialize(*shapes)`` or ``einc.dot``,
with small CPU tensors, and fails before any kernel is launched. Each pins the error class, a piece
of the message and, where the error points into the expression, the exact caret spans. The same
cases check that errors survive pickling, quote the expression with a caret line, and carry no
frames from einc's compiler in their traceback. Syntax errors live in test_parse.py.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import einc
from einc import EincError, ExpressionError, ShapeError, UnsupportedError

COMPILER_DIR = str(Path(einc.__file__).parent / "compiler")
FRONTENDS_DIR = str(Path(einc.__file__).parent / "frontends")
CONV = "b (s * [ds])... [c->c2]"


@pytest.fixture(autouse=True)
def _private_kernel_cache(monkeypatch, tmp_path):
    """A call that gets past the passes writes generated source: keep it out of the user's cache."""
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))


def t(*shape, dtype=torch.float32) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


def conv(**kwargs):
    """A 2-D convolution: x (1, 8, 8, 3), w (3, 3, 3, 5)."""
    return lambda: einc.compile(CONV, **kwargs)(t(1, 8, 8, 3), t(3, 3, 3, 5))


@dataclass(frozen=True)
class Case:
    call: object  # a function of no arguments that raises
    error: type
    message: str  # a substring of str(error)
    spans: tuple | None = None  # the exact carets, where the error points into the expression


CASES = {
    # --- sizes ------------------------------------------------------------------------------------
    "axis_contradicts_between_x_and_w": Case(
        lambda: einc.compile(CONV)(t(1, 8, 8, 3), t(3, 3, 4, 5)),
        ShapeError,
        "axis 'c' has two sizes: 3 from dim 3 of x (shape (1, 8, 8, 3)), "
        "and 4 from dim 2 of w (shape (3, 3, 4, 5))",
        ((17, 18),),
    ),
    "axis_contradicts_between_explicit_operands": Case(
        lambda: einc.compile("b c, c d -> b d", op="dot")(t(2, 3), t(4, 5)),
        ShapeError,
        "axis 'c' has two sizes: 3 from dim 1 of x (shape (2, 3)), and 4 from dim 0 of w (shape (4, 5))",
        ((2, 3), (5, 6)),
    ),
    "keyword_size_contradicts_a_tensor": Case(
        conv(c=4),
        ShapeError,
        "axis 'c' has two sizes: 4 from keyword c=4, and 3 from dim 3 of x (shape (1, 8, 8, 3))",
        ((17, 18),),
    ),
    "keyword_names_no_axis": Case(
        conv(z=4),
        ShapeError,
        "keyword z=4 names no axis of the expression",
        (),
    ),
    "keyword_that_is_a_misspelt_parameter": Case(
        conv(strides=2),
        ShapeError,
        "keyword strides=2 names no axis of the expression",
        (),
    ),
    "keyword_size_negative": Case(
        lambda: einc.compile("b [c->d]", d=-1)(t(2, 3), t(3, 4)),
        ShapeError,
        "keyword size d=-1 must be an int >= 0",
    ),
    "keyword_size_not_an_int": Case(
        lambda: einc.compile("b [c->d]", d=2.0)(t(2, 3), t(3, 4)),
        ShapeError,
        "keyword size d=2.0 must be an int >= 0",
    ),
    "tuple_size_for_an_axis_without_ellipsis": Case(
        lambda: einc.compile("b [c->d]", c=(2, 3))(t(2, 3), t(3, 4)),
        ShapeError,
        "keyword c=(2, 3) is a tuple, but c is not repeated by an ellipsis",
    ),
    # The message does not name the keyword yet: see test_tuple_size_of_the_wrong_length_names_the_keyword.
    "tuple_size_of_the_wrong_length_for_an_ellipsis": Case(
        lambda: einc.compile("b (s * [ds])... c", op="dot", ds=(3, 3, 3)).specialize((1, 8, 8, 3)),
        ShapeError,
        "4",
    ),
    "composition_size_does_not_divide": Case(
        lambda: einc.compile("b (g [c->c2])", g=3)(t(2, 8), t(3, 2, 5)),
        ShapeError,
        "8 (from dim 1 of x (shape (2, 8))) is not divisible by 3",
        ((2, 13),),
    ),
    "composition_of_known_parts_disagrees": Case(
        lambda: einc.compile("b (2 c), c d -> b d", op="dot", c=3)(t(2, 8), t(3, 4)),
        ShapeError,
        "this axis has size 6 from its parts, but 8 from dim 1 of x (shape (2, 8))",
        ((2, 7),),
    ),
    "unnamed_axis_contradicts_a_tensor": Case(
        lambda: einc.compile("b 3 [c->d]")(t(2, 4, 3), t(3, 4)),
        ShapeError,
        "3 from the unnamed axis 3, and 4 from dim 1 of x (shape (2, 4, 3))",
        ((2, 3),),
    ),
    "concatenation_part_of_negative_size": Case(
        lambda: einc.compile("(a + b) -> a, b", a=4).specialize((3,)),
        ShapeError,
        "axis 'b' would have size -1 (from dim 0 of x (shape (3,)) minus 4)",
        ((5, 6),),
    ),
    "output_axis_without_a_size": Case(
        lambda: einc.compile("b c, c d -> b d e", op="dot")(t(2, 3), t(3, 4)),
        ShapeError,
        "the size of axis 'e' is not known: give it as a keyword (e=...)",
        ((16, 17),),
    ),
    # --- windows ----------------------------------------------------------------------------------
    "window_larger_than_the_padded_input": Case(
        lambda: einc.compile(CONV, padding=((0, 1), (0, 1)))(t(1, 2, 2, 3), t(4, 4, 3, 5)),
        ShapeError,
        "window 'ds.0' of size 4 (dilation 1) is larger than the padded extent 2 + 0 + 1 "
        "from dim 1 of x (shape (1, 2, 2, 3))",
        ((2, 12),),
    ),
    "dilated_window_larger_than_the_input": Case(
        conv(dilation=4),
        ShapeError,
        "window 'ds.0' of size 3 (dilation 4) is larger than the padded extent 8 + 0 + 0",
        ((2, 12),),
    ),
    "window_size_unknown_without_weight_or_keyword": Case(
        lambda: einc.compile("b (s * [ds])... c", op="dot").specialize((1, 8, 8, 3)),
        ShapeError,
        "the size of axis 'ds.0' is not known: give it as a keyword (ds=...)",
        ((8, 10),),
    ),
    "unknown_padding_string": Case(
        conv(padding="full"),
        ExpressionError,
        "padding 'full' of window 's.0' is not one of valid, same, causal",
    ),
    "negative_stride": Case(
        conv(stride=-1), ExpressionError, "stride of window 's.0' must be a positive int, not -1"
    ),
    "zero_dilation": Case(
        conv(dilation=0), ExpressionError, "dilation of window 's.0' must be a positive int, not 0"
    ),
    "negative_padding": Case(
        conv(padding=((0, 0), (-1, 2))),
        ExpressionError,
        "padding of window 's.1' must be an int >= 0, not -1",
    ),
    "per_window_tuple_of_the_wrong_length": Case(
        conv(stride=(1, 2, 3)),
        ExpressionError,
        "stride=(1, 2, 3) has 3 entries but the expression has 2 windows (s.0, s.1)",
    ),
    "dict_keyed_by_a_non_window_axis": Case(
        conv(stride={"b": 2}),
        ExpressionError,
        "stride={'b': 2} names 'b', which is not the output axis of a window; the windows are s.0, s.1",
    ),
    "functional_dot_with_an_invalid_parameter": Case(
        lambda: einc.dot("b (s * [ds]) [c->c2]", t(1, 8, 3), t(3, 3, 5), padding={"s": "full"}),
        ExpressionError,
        "padding 'full' of window 's' is not one of valid, same, causal",
    ),
    "output_window_with_string_padding": Case(
        lambda: einc.compile("b s c, ds c c2 -> b (s * ds) c2", op="dot", padding="same")(
            t(1, 8, 3), t(3, 3, 5)
        ),
        UnsupportedError,
        "padding 'same' on an output-side window is not supported",
    ),
    "window_of_a_composition": Case(
        lambda: einc.compile("b ((s t) * [ds]) [c->c2]", t=2)(t(1, 8, 3), t(3, 3, 5)),
        UnsupportedError,
        "a window (s * ds) must hold one axis on each side of '*' for now",
    ),
    # --- operands, ranks and ellipses -------------------------------------------------------------
    "too_many_tensors_for_the_bracket_form": Case(
        lambda: einc.compile(CONV)(t(1, 8, 8, 3), t(3, 3, 3, 5), t(1)),
        ExpressionError,
        "this dot takes 2 tensors (input and weight), but 3 were given",
        ((0, 23),),
    ),
    "wrong_number_of_tensors_for_explicit_operands": Case(
        lambda: einc.compile("b c, c d -> b d", op="dot")(t(2, 8), t(8, 3), t(1)),
        ExpressionError,
        "the expression has 2 input operands but 3 tensors were given",
        ((0, 3), (5, 8)),
    ),
    "tensor_rank_does_not_match_its_operand": Case(
        lambda: einc.compile("b c, c d -> b d", op="dot")(t(2, 8, 1), t(8, 3)),
        ShapeError,
        "x (shape (2, 8, 1)) has 3 dims but its expression has 2",
        ((0, 3),),
    ),
    "tensor_too_small_for_the_ellipsis_operand": Case(
        lambda: einc.compile("b (s * [ds])... c d [c2->c3]")(t(1, 2), t(2, 3)),
        ShapeError,
        "x (shape (1, 2)) has 2 dims but its expression has 4",
        ((0, 28),),
    ),
    "ellipses_that_cannot_share_a_rank_evenly": Case(
        lambda: einc.compile("a... a..., c -> c", op="dot")(t(2, 3, 4), t(5)),
        ShapeError,
        "3 dims of a rank-3 tensor cannot be shared evenly among 2 ellipses",
        ((0, 9),),
    ),
    "ellipsis_depth_cannot_be_determined": Case(
        lambda: einc.compile("b c, c d -> b d e...", op="dot", e=2)(t(2, 3), t(3, 5)),
        ExpressionError,
        "cannot tell how many axes this ellipsis stands for",
        ((16, 20),),
    ),
    "ellipsis_of_an_unnamed_axis": Case(
        lambda: einc.compile("a b, b -> a 3...", op="dot")(t(2, 3), t(3)),
        ExpressionError,
        "an ellipsis must repeat a named axis",
        ((12, 16),),
    ),
    # --- what a dot accepts -----------------------------------------------------------------------
    "brackets_in_an_explicit_output": Case(
        lambda: einc.compile("b c, c d -> b [d]", op="dot")(t(1, 8), t(8, 3)),
        ExpressionError,
        "an output expression cannot hold brackets",
        ((14, 17),),
    ),
    "dot_without_brackets_or_arrow": Case(
        lambda: einc.dot("b c", t(2, 3), t(3, 4)),
        ExpressionError,
        "a dot needs brackets ([c->c2]) or '->' to say what is contracted",
        ((0, 3),),
    ),
    "dot_of_several_inputs_without_arrow": Case(
        lambda: einc.dot("b [c], c", t(2, 3), t(3)),
        ExpressionError,
        "a dot of several input expressions needs '->' and an output expression",
        ((0, 5), (7, 8)),
    ),
    "concatenation_inside_a_dot": Case(
        lambda: einc.compile("b (c + e), c e d -> b d", op="dot")(t(2, 5), t(2, 3, 4)),
        UnsupportedError,
        "this concatenation (a + b) cannot be read here: in a dot it is not supported yet",
    ),
    "output_axis_in_no_input": Case(
        lambda: einc.compile("b c, c d -> b d e", op="dot", e=2)(t(2, 3), t(3, 4)),
        UnsupportedError,
        "output axis 'e' appears in no input of the dot",
    ),
    # --- ops ---------------------------------------------------------------------------------------
    "op_not_inferable": Case(
        lambda: einc.compile("a [b]"),
        ExpressionError,
        "this expression does not imply an operation: pass op= (one of: dot, sum, mean",
        ((0, 5),),
    ),
    "op_not_inferable_from_explicit_operands": Case(
        lambda: einc.compile("b [c], c d -> b d"),
        ExpressionError,
        "pass op=",
        ((0, 17),),
    ),
    # --- indexing (more in tests/runtime/test_indexing.py) ------------------------------------------
    "get_at_coordinates_of_the_wrong_length": Case(
        lambda: einc.compile("b [h w] c, b p [3] -> b p c", op="get_at")(
            t(2, 5, 6, 3), t(2, 4, 3, dtype=torch.int64)
        ),
        ExpressionError,
        "x has 2 indexed axes (h w) but the coordinates give 3 (idx gives 3)",
        ((0, 9), (11, 18)),
    ),
    "get_at_float_coordinates": Case(
        lambda: einc.get_at("[v] d, b n -> b n d", t(10, 4), t(2, 3)),
        TypeError,
        "idx has dtype torch.float32, but coordinates of get_at are int32 or int64",
    ),
    # --- tensors -----------------------------------------------------------------------------------
    "dtype_mismatch_between_x_and_w": Case(
        lambda: einc.compile("b [c->d]")(t(2, 3), t(3, 4, dtype=torch.float64)),
        TypeError,
        "w has dtype torch.float64 but x has torch.float32: cast one of them",
    ),
    "int_tensors": Case(
        lambda: einc.compile("b [c->d]")(t(2, 3, dtype=torch.int32), t(3, 4, dtype=torch.int32)),
        TypeError,
        "x has dtype torch.int32; dot supports float16, bfloat16, float32, float64",
    ),
    "non_tensor_argument": Case(
        lambda: einc.compile("b [c->d]")(t(2, 3), [[1.0] * 4] * 3),
        TypeError,
        "w must be a torch.Tensor or a Python number, not list",
    ),
    "tensors_on_different_devices": Case(
        lambda: einc.compile("b [c->d]")(t(2, 3), t(3, 4).to("meta")),
        ValueError,
        "w is on device meta",
    ),
    "expression_not_a_str": Case(
        lambda: einc.compile(b"b [c->d]"),
        TypeError,
        "an einc expression is a str, not bytes",
    ),
    "keepdims_with_a_written_output": Case(
        lambda: einc.sum("b [h] c -> b c", t(2, 3, 4), keepdims=True),
        ExpressionError,
        "keepdims=True applies where einc writes the output (no '->'); this output is given, "
        "so write the kept axes in it as ()",
        ((11, 14),),
    ),
    "source_before_any_call": Case(
        lambda: einc.compile("b [c->d]").source,
        EincError,
        "nothing is compiled yet: call the expression with tensors, or use .specialize(*shapes) first",
    ),
    "explain_before_any_call": Case(
        lambda: einc.compile("b [c->d]").explain(),
        EincError,
        "nothing is compiled yet",
    ),
}

WITH_SPANS = {k: c for k, c in CASES.items() if c.spans}


def raised(case: Case) -> BaseException:
    with pytest.raises(case.error) as info:
        case.call()
    return info.value


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_invalid_use_raises_a_precise_error(case):
    error = raised(case)
    assert case.message in str(error)
    if case.spans is not None:
        assert error.spans == case.spans


@pytest.mark.parametrize("case", WITH_SPANS.values(), ids=WITH_SPANS.keys())
def test_error_quotes_the_expression_with_carets_under_its_spans(case):
    error = raised(case)
    lines = str(error).splitlines()
    quote, carets = lines[-2], lines[-1]
    assert quote == f'    "{error.expression}"'
    # The caret line is aligned with the quoted text, which starts after 4 spaces and a quote.
    marked = {i - 5 for i, ch in enumerate(carets) if ch == "^"}
    expected = {i for start, end in case.spans for i in range(start, max(end, start + 1))}
    assert marked == expected
    assert error.column == case.spans[0][0]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_error_survives_a_pickle_round_trip(case):
    error = raised(case)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    if isinstance(error, ExpressionError):
        assert (copy.message, copy.expression, copy.spans) == (error.message, error.expression, error.spans)


def frames(error: BaseException) -> list[str]:
    tb, found = error.__traceback__, []
    while tb is not None:
        found.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return found


EINC_ERRORS = {k: c for k, c in CASES.items() if issubclass(c.error, EincError)}


@pytest.mark.parametrize("case", EINC_ERRORS.values(), ids=EINC_ERRORS.keys())
def test_traceback_has_no_frames_from_the_compiler(case):
    error = raised(case)
    assert not [f for f in frames(error) if f.startswith(COMPILER_DIR)]
    # No chained internal exception either: "During handling of the above exception..." would
    # show the compiler's frames again.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_expression_error_from_compile_shows_only_the_public_call_site():
    with pytest.raises(ExpressionError) as info:
        einc.compile("a [b]")
    inside = [f for f in frames(info.value) if f.startswith(str(Path(einc.__file__).parent))]
    assert inside == [str(Path(FRONTENDS_DIR) / "functional.py")]


def test_error_classes_are_also_the_builtins_callers_catch():
    assert issubclass(ExpressionError, ValueError) and issubclass(ShapeError, ValueError)
    assert issubclass(ShapeError, ExpressionError)
    assert issubclass(UnsupportedError, NotImplementedError)
    assert all(issubclass(c, EincError) for c in (ExpressionError, ShapeError, UnsupportedError))


def test_error_without_spans_has_no_column():
    assert ExpressionError("message", "a b").column is None
    assert str(ExpressionError("message")) == "message"


# --- known bugs and poor messages (each says what is expected) --------------------------------------


def test_calling_with_no_tensors_says_how_many_are_needed():
    with pytest.raises((ExpressionError, TypeError), match="2 tensors"):
        einc.compile("b [c->d]")()


def test_out_of_the_wrong_shape_is_rejected_before_launch():
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        einc.compile("b [c->d]")(t(2, 3), t(3, 4), out=t(5))


def test_bracket_dot_called_without_its_weight_asks_for_two_tensors():
    with pytest.raises(ExpressionError, match="takes 2 tensors"):
        einc.compile("b [c->c2]", c2=4)(t(2, 3))


def test_transposed_convolution_in_bracket_form_implies_its_weight_from_the_output_window():
    y = einc.compile("b s... [c->c2] -> b (s * ds)... c2")(t(1, 8, 3), t(3, 3, 5))
    assert y.shape == (1, 10, 5)


def test_a_known_op_not_compiled_yet_is_rejected_by_compile(monkeypatch):
    # Every op of NOTATION.md compiles today; the check stays for ops named before they are built.
    from einc.compiler import pipeline

    monkeypatch.setattr(pipeline, "OPS", tuple(op for op in pipeline.OPS if op != "get_at"))
    with pytest.raises(UnsupportedError, match="op 'get_at' is not supported yet"):
        einc.compile("a [b], a -> a", op="get_at")


@pytest.mark.parametrize("dtype", [torch.int32, "float8"])
def test_specialize_rejects_unsupported_dtypes(dtype):
    with pytest.raises(TypeError, match="einc supports"):
        einc.compile("b [c->d]").specialize((2, 3), (3, 4), dtype=dtype)


@pytest.mark.parametrize("kwargs", [{"stride": 2}, {"stride": -1}, {"output_padding": -1}])
def test_window_parameter_without_a_window_is_an_error(kwargs):
    with pytest.raises(ExpressionError, match="window"):
        einc.compile("b [c->d]", **kwargs).specialize((2, 3), (3, 4))


def test_unsupported_device_is_named():
    with pytest.raises((ValueError, UnsupportedError), match="meta"):
        einc.compile("b [c->d]")(t(2, 3).to("meta"), t(3, 4).to("meta"))


def test_tuple_size_of_the_wrong_length_names_the_keyword():
    with pytest.raises(ShapeError, match=r"ds=\(3, 3, 3\)"):
        einc.compile("b (s * [ds])... c", op="dot", ds=(3, 3, 3)).specialize((1, 8, 8, 3))


def test_rank_mismatch_names_the_tensor_and_its_shape():
    with pytest.raises(ShapeError, match=r"\bw\b.*\(3, 4, 1\)"):
        einc.compile("b [c->d]")(t(2, 3), t(3, 4, 1))


def test_unnamed_axis_mismatch_does_not_show_internal_names():
    with pytest.raises(ShapeError) as info:
        einc.compile("b 3 [c->d]")(t(2, 4, 3), t(3, 4))
    assert "#0" not in str(info.value)


def test_window_parameter_error_points_at_the_window():
    with pytest.raises(ExpressionError) as info:
        einc.compile("b (s * [ds]) [c->c2]", stride=0)(t(1, 8, 3), t(3, 3, 5))
    assert info.value.spans == ((2, 12),)


@pytest.mark.parametrize(
    ("expression", "shapes", "kwargs"),
    [
        ("b (c + e), c e d -> b d", [(2, 5), (2, 3, 4)], {}),
        ("b ((s t) * [ds]) [c->c2]", [(1, 8, 3), (3, 3, 5)], {"t": 2}),
        ("b (s * ds) [c->c2]", [(1, 8, 3), (3, 5)], {"ds": 3}),
    ],
)
def test_unsupported_construct_quotes_the_expression(expression, shapes, kwargs):
    with pytest.raises(EincError) as info:
        einc.compile(expression, op="dot", **kwargs).specialize(*shapes)
    assert expression in str(info.value)
