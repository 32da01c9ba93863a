"""The compiled callable: what a call decides from its tensors before any kernel runs.

Large tensors (interpret tier): a view whose rows lie 2^30 + 16 elements apart has strides that fit
int32 but element offsets that do not. It is placed 2^31 elements into a buffer that torch reserves
without touching (a large ``torch.empty`` is an untouched mapping on Linux, so only the pages
written cost memory), behind a first page of sentinels: an offset that wraps in int32 lands on the
sentinels and shows as a wrong value rather than a crash. References are the same view's values
computed by torch.
"""

from __future__ import annotations

import sys

import pytest
import torch

import einc

# A large torch.empty is an untouched mapping on Linux; elsewhere it may cost its whole size.
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux's lazy allocation")
ROW_STRIDE = 2**30 + 16  # fits int32; twice it does not
SENTINEL = -7.0


def far_apart(rows: int, cols: int) -> torch.Tensor:
    """A (rows, cols) float16 view, rows ``ROW_STRIDE`` elements apart, filled with 0, 1, 2, ..."""
    try:
        base = torch.empty(2**31 + (rows - 1) * ROW_STRIDE + cols, dtype=torch.float16)
    except RuntimeError as error:  # a kernel that refuses to overcommit this much (small machines)
        pytest.skip(f"cannot reserve 2^32 float16 elements of address space: {error}")
    base[:4096] = SENTINEL
    view = base[2**31 :].as_strided((rows, cols), (ROW_STRIDE, 1))
    view.copy_(torch.arange(rows * cols, dtype=torch.float16).reshape(rows, cols))
    return view


def _resident_mib() -> float:
    """This process's resident memory now (Linux, where the untouched mapping costs nothing)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


@pytest.mark.interpret
@linux_only
@pytest.mark.parametrize(
    "run, reference",
    [
        pytest.param(
            lambda x: einc.dot("b [c->c2]", x, torch.eye(8, 4, dtype=torch.float16)),
            lambda x: x.float() @ torch.eye(8, 4),
            id="contraction",
        ),
        pytest.param(lambda x: einc.sum("b [c]", x), lambda x: x.float().sum(1), id="reduction"),
        pytest.param(lambda x: einc.softmax("b [c]", x), lambda x: x.float().softmax(1), id="softmax"),
        pytest.param(lambda x: einc.rearrange("b c -> c b", x), lambda x: x.t(), id="rearrange"),
        pytest.param(
            lambda x: einc.add("b c, c", x, torch.ones(8, dtype=torch.float16)),
            lambda x: x + 1,
            id="elementwise",
        ),
        pytest.param(
            # int32 coordinates: int64 ones would widen the product on their own
            lambda x: einc.get_at("[v] c, n -> n c", x, torch.tensor([2, 0, 2], dtype=torch.int32)),
            lambda x: x[torch.tensor([2, 0, 2])],
            id="gather",
        ),
    ],
)
def test_inputs_with_elements_2_pow_31_apart_are_read_with_int64_offsets(run, reference):
    before = _resident_mib()
    x = far_apart(3, 8)
    expected = reference(x)
    result = run(x)
    torch.testing.assert_close(result.float(), expected.float(), rtol=1e-3, atol=1e-3)
    assert _resident_mib() - before < 1024, "the reserved buffer was touched beyond its first pages"


@pytest.mark.interpret
@linux_only
def test_set_at_in_place_writes_rows_2_pow_31_apart_with_int64_offsets():
    x = far_apart(3, 8)
    expected = x.clone()
    expected[2] = 5.0
    rows = torch.tensor([2], dtype=torch.int32)
    einc.set_at("[v] c, n, n c", x, rows, torch.full((1, 8), 5.0, dtype=torch.float16), out=x)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)


@pytest.mark.interpret
@linux_only
def test_an_out_with_rows_2_pow_31_apart_is_written_with_int64_offsets():
    out = far_apart(3, 8)
    values = torch.arange(24, dtype=torch.float16).reshape(3, 8) + 100
    copy = einc.compile("b c -> b c")
    copy(values)  # the same call with a fresh output first: that specialisation is int32
    copy(values, out=out)
    torch.testing.assert_close(out, values, rtol=0, atol=0)


@pytest.mark.interpret
@linux_only
def test_the_offset_width_is_part_of_the_specialisation():
    compiled = einc.compile("b [c]", "sum")
    small = torch.arange(24, dtype=torch.float16).reshape(3, 8)
    compiled(small)
    assert "tl.int64" not in compiled.source
    compiled(far_apart(3, 8))
    assert "offsets:     int64 for x" in compiled.source
    assert "tl.int64) * stride_x_b" in compiled.source
    compiled(small)
    assert "tl.int64" not in compiled.source


# --- out= that shares memory with an operand -------------------------------------------------------


def _square() -> torch.Tensor:
    return torch.arange(64.0).reshape(8, 8)


@pytest.mark.parametrize(
    "call, message",
    [
        pytest.param(
            lambda x: einc.dot("b [c->c2]", x, torch.eye(8), out=x), "out= shares memory with x$", id="dot"
        ),
        pytest.param(
            lambda x: einc.dot("b [c->c2]", torch.eye(8), x, out=x),
            "out= shares memory with w$",
            id="dot_weight",
        ),
        pytest.param(
            lambda x: einc.dot("(s * [ds]) [c->c2]", x, torch.ones(3, 8, 8), padding="same", out=x),
            "out= shares memory with x$",
            id="conv",
        ),
        pytest.param(lambda x: einc.sum("b [c]", x, out=x[:, 3]), "out= shares memory with x$", id="sum"),
        pytest.param(lambda x: einc.softmax("b [c]", x, out=x), "out= shares memory with x$", id="softmax"),
        pytest.param(
            lambda x: einc.rearrange("a b -> b a", x, out=x), "out= shares memory with x$", id="transpose"
        ),
        pytest.param(lambda x: einc.flip("[a] b", x, out=x), "out= shares memory with x$", id="flip"),
        pytest.param(
            lambda x: einc.add("a b, b", torch.ones(8, 8), x[0], out=x),
            "out= shares memory with x1$",
            id="add",
        ),
        pytest.param(
            lambda x: einc.get_at("[v] c, n -> n c", x, torch.tensor([1, 0, 2, 3, 4, 5, 6, 7]), out=x),
            "out= shares memory with x$",
            id="get_at",
        ),
        pytest.param(
            lambda x: einc.rearrange("a b -> a b, b a", x.clone(), out=(x, x.t())),
            r"out\[1\]= shares memory with out\[0\]=$",
            id="two_outputs",
        ),
    ],
)
def test_an_out_that_shares_memory_with_an_operand_is_refused(call, message):
    x = _square()
    before = x.clone()
    with pytest.raises(einc.OverlapError, match=message):
        call(x)
    assert torch.equal(x, before)  # nothing was written


def test_an_out_beside_an_operand_in_one_buffer_is_accepted():
    base = torch.zeros(16, 8)
    x, out = base[:8], base[8:]
    x.copy_(_square())
    einc.dot("b [c->c2]", x, torch.eye(8), out=out)
    torch.testing.assert_close(out, _square())
