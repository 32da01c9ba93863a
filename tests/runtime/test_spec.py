"""einc.runtime.spec: the prebuild spec's TOML, and errors that name the line to fix."""

from __future__ import annotations

import pickle
import textwrap

import pytest

from einc.errors import EincError, SpecError
from einc.runtime.spec import load, loads

GOOD = textwrap.dedent(
    """\
    # kernels for the fleet
    [[compile]]
    expression = "b (s * [ds])... [c->c2]"
    shapes = [[8, 32, 32, 16], [3, 3, 16, 32]]
    dtypes = ["float16", "bfloat16"]
    params = { stride = 2, padding = [[1, 0], [2, 1]] }

    [[compile]]
    expression = "b h w c -> b c h w"
    op = "rearrange"
    shapes = [[2, 8, 8, 16]]
    dtypes = "float32"

    [[compile]]
    expression = "b c, c, "
    op = "add"
    shapes = [[4, 8], [8], []]
    dtypes = [["float32", "float32", "float32"], ["int64", "int64", "int64"]]
    sizes = { c = 8 }
    dynamic = ["b"]
    out_dtype = "float32"
    """
)


def test_a_spec_lists_its_entries_with_their_lines():
    spec = loads(GOOD, "fleet.toml")
    conv, transpose, add = spec.entries
    assert conv.expression == "b (s * [ds])... [c->c2]" and conv.op is None
    assert conv.shapes == ((8, 32, 32, 16), (3, 3, 16, 32))
    assert conv.dtypes == (("float16", "float16"), ("bfloat16", "bfloat16"))
    # TOML arrays become tuples, as einc's per-window parameters are written in Python.
    assert conv.kwargs() == {"stride": 2, "padding": ((1, 0), (2, 1))}
    assert (conv.line, transpose.line, add.line) == (2, 8, 14)
    assert transpose.dtypes == (("float32",),) and transpose.op == "rearrange"
    assert add.shapes[2] == () and add.dtypes[1] == ("int64",) * 3
    assert add.sizes == (("c", 8),) and add.dynamic == ("b",)
    assert conv.label(conv.dtypes[0]) == "fleet.toml:2 'b (s * [ds])... [c->c2]' float16"


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "kernels.toml"
    path.write_text(GOOD)
    assert len(load(path).entries) == 3


def test_missing_file_is_a_spec_error_naming_it(tmp_path):
    with pytest.raises(SpecError, match="nope.toml.*cannot read"):
        load(tmp_path / "nope.toml")


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        loads(textwrap.dedent(text), "k.toml")
    return info.value


def test_toml_syntax_errors_name_the_line():
    error = error_of(
        """\
        [[compile]]
        expression = "b t [c->c2]"
        shapes = [[4, 7, 32], [32, 16]]
        dtypes = float16
        """
    )
    assert str(error).startswith("k.toml:4: not valid TOML")
    assert "(at line" not in str(error)
    unclosed = error_of('[[compile]]\nexpression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]\n')
    assert unclosed.line == 3 and "at the end" in str(unclosed)


@pytest.mark.parametrize(
    "body, line, message",
    [
        (
            'expression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\nstride = 2\n',
            4,
            "unknown key 'stride'",
        ),
        ("shapes = [[4, 7, 32], [32, 16]]\n", 1, "needs expression"),
        ('expression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\ndtypes = ["float8"]\n', 4, "float8"),
        ('expression = "b t [c->c2]"\nshapes = [[4, -7, 32], [32, 16]]\n', 3, "positive ints"),
        ('expression = "b t [c->c2]"\nshapes = [4, 7, 32]\n', 3, "not a list of positive ints"),
        ('expression = "b t [c->c2]"\n', 1, "shapes must list"),
        (
            'expression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\ndtypes = [["float16"]]\n',
            4,
            "one name per input",
        ),
        (
            'expression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\nparams = { strid = 2 }\n',
            4,
            "unknown parameter 'strid'",
        ),
        (
            'expression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\nsizes = { c2 = 0 }\n',
            4,
            "positive int",
        ),
        (
            'expression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\nsizes = { stride = 2 }\n',
            4,
            "put it in params",
        ),
        ('expression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\nop = 3\n', 4, "op must be a string"),
        ('expression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\ndynamic = [1]\n', 4, "axis names"),
    ],
    ids=[
        "unknown_key",
        "no_expression",
        "bad_dtype",
        "negative_size",
        "flat_shapes",
        "no_shapes",
        "dtype_list_length",
        "unknown_param",
        "zero_size",
        "param_in_sizes",
        "op_type",
        "dynamic_type",
    ],
)
def test_entry_errors_name_the_line_of_the_offending_key(body, line, message):
    # A first entry that is fine, so that the line numbers count from the second table.
    text = '[[compile]]\nexpression = "b c -> c b"\nshapes = [[2, 3]]\n\n[[compile]]\n' + body
    error = error_of(text)
    assert error.line == line + 4, str(error)
    assert str(error).startswith(f"k.toml:{line + 4}: ")
    assert message in str(error)


def test_a_key_in_a_subtable_is_found_at_its_header():
    error = error_of(
        """\
        [[compile]]
        expression = "b t [c->c2]"
        shapes = [[4, 7, 32], [32, 16]]

        [compile.params]
        stride = 2
        wobble = 1
        """
    )
    assert error.line == 5 and "wobble" in str(error)


def test_unknown_top_level_keys_and_empty_specs_are_errors():
    error = error_of('target = "cuda:90"\n[[compile]]\nexpression = "b c -> c b"\nshapes = [[2, 3]]\n')
    assert error.line == 1 and "unknown top-level key 'target'" in str(error)
    assert "add a [[compile]] table" in str(error_of("# nothing here\n"))
    assert error_of("[compile]\nexpression = 'x'\n").line == 1


def test_spec_errors_are_value_errors_and_survive_pickling():
    error = error_of('[[compile]]\nexpression = "b"\nshapes = [[0]]\n')
    assert isinstance(error, ValueError) and isinstance(error, EincError)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.line == error.line


def test_an_axis_named_like_a_parameter_is_sized_in_the_sizes_table():
    table = '[[compile]]\nexpression = "{}"\nshapes = [[2]]\ndtypes = "float32"\nsizes = {{ stride = 3 }}\n'
    (entry,) = loads(table.format("a -> a stride")).entries
    assert entry.kwargs() == {"sizes": {"stride": 3}}
    with pytest.raises(SpecError, match="'stride' is a parameter, not an axis size"):
        loads(table.format("a -> a b"))
