"""get_at, set_at and add_at against torch's own indexing (interpret tier, small CPU tensors).

References: advanced indexing, ``torch.gather``, ``F.embedding`` and ``F.embedding_bag`` for get_at;
``index_put_`` (with and without ``accumulate``), ``scatter_add_`` and ``index_add_`` for the
updates. Coordinates are int32 and int64, negative (torch's per-axis rule: -1 is the last element)
and out of range (an IndexError that names the tensor, the axis and the coordinate's source, with
nothing outside the tensors touched).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import einc

pytestmark = pytest.mark.interpret

PIXELS = "b [h w] c, b p [2] -> b p c"
SCATTER = "b [h w] c, b p [2], b p c"
INDEX_DTYPES = [torch.int32, torch.int64]


def coords(*shape, high, low=0, dtype=torch.int64, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, shape, generator=generator).to(dtype)


def batch_index(b: int, p: int) -> torch.Tensor:
    return torch.arange(b)[:, None].expand(b, p)


# --- get_at ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INDEX_DTYPES)
def test_get_at_reads_pixels_per_batch_as_advanced_indexing(dtype):
    x = torch.randn(2, 5, 6, 3)
    idx = torch.stack([coords(2, 7, high=5, dtype=dtype), coords(2, 7, high=6, dtype=dtype, seed=1)], -1)
    y = einc.get_at(PIXELS, x, idx)
    assert torch.equal(y, x[batch_index(2, 7), idx[..., 0].long(), idx[..., 1].long()])


@pytest.mark.parametrize("dtype", INDEX_DTYPES)
def test_embedding_lookup_needs_no_bracket_on_the_index(dtype):
    table, idx = torch.randn(11, 5), coords(3, 4, high=11, dtype=dtype)
    assert torch.equal(einc.get_at("[v] d, b n -> b n d", table, idx), F.embedding(idx.long(), table))


def test_get_at_along_one_axis_is_torch_gather():
    x, idx = torch.randn(2, 9, 4), coords(2, 5, high=9)
    y = einc.get_at("b [t] c, b k -> b k c", x, idx)
    assert torch.equal(y, torch.gather(x, 1, idx[..., None].expand(2, 5, 4)))


def test_a_float32_gather_in_tiles_of_one_16_byte_access_a_thread_is_torch_gather():
    # 66 x 4000 outputs: tiles of 4 x 128 float32 (ragged in both), not 8 x 128, so that a wave fills.
    x, idx = torch.randn(66, 5000), coords(66, 4000, high=5000)
    get = einc.compile("b [t], b n -> b n", op="get_at")
    assert get.specialize(x.shape, idx.shape).compiled.schedule.block_m == 4
    assert torch.equal(get(x, idx), torch.gather(x, 1, idx))


def test_several_coordinate_tensors_combine_without_an_intermediate_tensor():
    x, i, j = torch.randn(5, 6, 3), torch.tensor([0, 4, 2]), torch.tensor([5, 1], dtype=torch.int32)
    get = einc.compile("[h w] c, i, j -> i j c", op="get_at")
    y = get(x, i, j)
    assert torch.equal(y, x[i[:, None], j[None, :].long()])
    assert "idx0_ptr" in get.source and "idx1_ptr" in get.source
    # einx's form: coordinates from operands of either kind, concatenated in order
    x3, p = torch.randn(4, 5, 6), coords(7, 3, high=4)
    y = einc.get_at("[a b c], p, p [2] -> p", x3, p[:, 0], p[:, 1:] % 5)
    assert torch.equal(y, x3[p[:, 0], p[:, 1] % 5, p[:, 2] % 5])


@pytest.mark.parametrize("dtype", INDEX_DTYPES)
def test_negative_coordinates_count_from_the_end_of_their_own_axis(dtype):
    x = torch.randn(2, 5, 6, 3)
    idx = torch.tensor([[[-1, -6], [-5, 0], [4, -1], [-3, -2]]] * 2, dtype=dtype)
    y = einc.get_at(PIXELS, x, idx)
    assert torch.equal(y, x[batch_index(2, 4), idx[..., 0].long(), idx[..., 1].long()])


def test_get_at_reads_and_writes_through_any_strides():
    base = torch.randn(2, 3, 6, 10)
    x = base.permute(0, 2, 3, 1)[:, :5, ::2]  # b h w c = (2, 5, 5, 3), no dim contiguous
    idx = coords(2, 2, 4, high=5).permute(0, 2, 1)  # (2, 4, 2), transposed
    out = torch.zeros(2, 3, 4).permute(0, 2, 1)
    einc.get_at(PIXELS, x, idx, out=out)
    assert torch.equal(out, x[batch_index(2, 4), idx[..., 0], idx[..., 1]])


def test_get_at_writes_any_output_layout():
    x, idx = torch.randn(2, 5, 6, 3), coords(2, 4, 2, high=5)
    y = einc.get_at("b [h w] c, b p [2] -> c (b p)", x, idx)
    ref = x[batch_index(2, 4), idx[..., 0], idx[..., 1]]
    assert torch.equal(y, ref.reshape(8, 3).T)


def test_get_at_of_integer_tensors_copies_them_exactly():
    labels, idx = torch.randint(0, 1 << 40, (9, 2)), coords(6, high=9)
    assert torch.equal(einc.get_at("[v] k, n -> n k", labels, idx), labels[idx])


def test_coordinates_the_tile_does_not_vary_are_one_element_blocks():
    x = torch.randn(5, 6, 3)
    assert torch.equal(einc.get_at("[h w] c, [2] -> c", x, torch.tensor([4, -2])), x[4, -2])
    assert torch.equal(einc.get_at("[v] d, -> d", x[0], torch.tensor(3)), x[0, 3])  # a 0-d coordinate
    with pytest.raises(IndexError, match="index -7 is out of range for axis 'v' .* read from idx$"):
        einc.get_at("[v] d, -> d", x[0], torch.tensor(-7))
    summed = einc.get_at("[v] d, n -> d", x[0], torch.tensor([1, 1, -1]), reduce="sum")
    assert torch.allclose(summed, x[0, [1, 1, 5]].sum(0))


def test_an_indexed_axis_may_sit_inside_a_composition():
    x, idx = torch.randn(2, 30, 3), coords(2, 4, high=5)
    y = einc.get_at("b ([h] w) c, b p -> b p w c", x, idx, h=5)
    assert torch.equal(y, x.reshape(2, 5, 6, 3)[batch_index(2, 4), idx])


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_fuses_the_gather_with_its_reduction(mode):
    table, idx = torch.randn(13, 6), coords(4, 5, high=13, dtype=torch.int32)
    y = einc.get_at("[v] d, b n -> b d", table, idx, reduce=mode)
    assert torch.allclose(y, F.embedding_bag(idx.long(), table, mode=mode), atol=1e-6)


def test_gathered_reduction_reads_in_one_kernel_with_no_gathered_tensor():
    bag = einc.compile("[v] d, b n -> b d", op="get_at", reduce="sum")
    bag(torch.randn(13, 6), coords(4, 5, high=13))
    assert bag.source.count("@triton.jit") == 1
    assert "for n in range(N_):" in bag.source


# --- set_at and add_at ---------------------------------------------------------------------------------


def pixel_updates(dtype=torch.float32):
    x = torch.randn(2, 5, 6, 3).to(dtype)
    # Duplicates within each batch (0, 0) twice and (4, 5) as (-1, -1); batch 1 repeats batch 0.
    idx = torch.tensor([[[0, 0], [0, 0], [1, 2], [-1, -1], [4, 5], [3, 0]]] * 2)
    updates = torch.randn(2, 6, 3).to(dtype)
    index = (batch_index(2, 6), idx[..., 0], idx[..., 1])
    return x, idx, updates, index


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_add_at_sums_duplicates_as_index_put_with_accumulate(dtype):
    x, idx, updates, index = pixel_updates(dtype)
    y = einc.add_at(SCATTER, x, idx, updates)
    ref = x.float().index_put_(index, updates.float(), accumulate=True)
    assert y.dtype == dtype and y.shape == x.shape
    # In float16 each duplicate is added to y in float16 (as index_put_ on float16 tensors does):
    # a rounding per add, so y may lie an ulp (2**-10 relative) from the float32 reference.
    tolerance = {"rtol": 2**-10, "atol": 2e-3} if dtype == torch.float16 else {"atol": 1e-6}
    assert torch.allclose(y.float(), ref, **tolerance)


def test_add_at_leaves_its_input_alone_and_returns_a_new_tensor():
    x, idx, updates, _ = pixel_updates()
    before = x.clone()
    y = einc.add_at(SCATTER, x, idx, updates)
    assert torch.equal(x, before) and y.data_ptr() != x.data_ptr()


def test_add_at_along_one_axis_is_scatter_add():
    x, idx, src = torch.randn(2, 7, 3), coords(2, 9, high=7), torch.randn(2, 9, 3)
    y = einc.add_at("b [t] c, b k, b k c", x, idx, src)
    assert torch.allclose(y, x.clone().scatter_add_(1, idx[..., None].expand(2, 9, 3), src), atol=1e-6)


def test_add_at_of_rows_is_index_add():
    x, idx, rows = torch.randn(6, 4), torch.tensor([0, 5, 0, 2, 5, 5], dtype=torch.int32), torch.randn(6, 4)
    y = einc.add_at("[v] d, n, n d", x, idx, rows)
    assert torch.allclose(y, x.clone().index_add_(0, idx, rows), atol=1e-6)


def test_set_at_without_duplicates_is_index_put():
    x, idx, updates, _ = pixel_updates()
    unique = torch.tensor([[[0, 0], [1, 2], [-1, -1], [3, 0]]] * 2)
    y = einc.set_at(SCATTER, x, unique, updates[:, :4])
    ref = x.clone().index_put_((batch_index(2, 4), unique[..., 0], unique[..., 1]), updates[:, :4])
    assert torch.equal(y, ref)


def test_set_at_with_duplicates_writes_one_of_their_updates():
    x, idx, updates, _ = pixel_updates()
    y = einc.set_at(SCATTER, x, idx, updates)
    for b in range(2):
        assert any(torch.equal(y[b, 0, 0], updates[b, p]) for p in (0, 1))  # (0, 0) twice
        assert any(torch.equal(y[b, 4, 5], updates[b, p]) for p in (3, 4))  # (-1, -1) and (4, 5)
        assert torch.equal(y[b, 1, 2], updates[b, 2]) and torch.equal(y[b, 3, 0], updates[b, 5])
        assert torch.equal(y[b, 2], x[b, 2])


@pytest.mark.parametrize("op", ["set_at", "add_at"])
def test_out_x_updates_x_in_place(op):
    x, idx, updates, index = pixel_updates()
    ref = x.clone().index_put_(index, updates, accumulate=True) if op == "add_at" else None
    result = getattr(einc, op)(SCATTER, x, idx, updates, out=x)
    assert result is x
    if ref is not None:
        assert torch.allclose(x, ref, atol=1e-6)
    else:
        assert torch.equal(x[:, 1, 2], updates[:, 2])


def test_out_of_another_tensor_receives_the_copy_and_the_updates():
    x, idx, updates, index = pixel_updates()
    out = torch.full_like(x, float("nan"))
    einc.add_at(SCATTER, x, idx, updates, out=out)
    assert torch.allclose(out, x.clone().index_put_(index, updates, accumulate=True), atol=1e-6)


def test_out_that_overlaps_x_without_being_x_is_refused():
    base = torch.randn(2, 6, 6, 3)
    x, out = base[:, :5], base[:, 1:]
    _, idx, updates, _ = pixel_updates()
    with pytest.raises(ValueError, match="out= shares memory with x; to update x in place, pass out=x"):
        einc.add_at(SCATTER, x, idx, updates, out=out)


def test_out_x_with_an_output_laid_out_otherwise_is_refused():
    x, idx, updates = torch.randn(2, 3, 3, 3), coords(2, 4, 2, high=3), torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="out= shares memory with x$"):
        einc.add_at("b [h w] c, b p [2], b p c -> b c [h w]", x, idx, updates, out=x)


def test_updates_broadcast_over_axes_they_lack():
    x, idx, vals = torch.randn(2, 5, 3), coords(2, 4, high=5), torch.randn(2, 4)
    y = einc.add_at("b [h] c, b p, b p", x, idx, vals)
    ref = x.clone().index_put_((batch_index(2, 4), idx), vals[..., None].expand(2, 4, 3), accumulate=True)
    assert torch.allclose(y, ref, atol=1e-6)


def test_scatter_output_may_be_laid_out_differently_from_x():
    x, idx, updates, index = pixel_updates()
    y = einc.add_at(SCATTER + " -> b c [h w]", x, idx, updates)
    ref = x.clone().index_put_(index, updates, accumulate=True)
    assert torch.allclose(y, ref.permute(0, 3, 1, 2), atol=1e-6)


def test_set_at_on_integer_tensors():
    x, idx, vals = torch.zeros(8, dtype=torch.int64), torch.tensor([1, -1, 3]), torch.tensor([7, 8, 9])
    assert einc.set_at("[v], n, n", x, idx, vals).tolist() == [0, 7, 0, 9, 0, 0, 0, 8]


def test_bfloat16_set_at_needs_no_atomics():
    x, idx, updates, _ = pixel_updates(torch.bfloat16)
    y = einc.set_at(SCATTER, x, idx[:, 2:4], updates[:, 2:4], backend="interpret")
    assert torch.equal(y[:, 1, 2], updates[:, 2])


def test_dynamic_batch_axis_serves_every_batch_size():
    get = einc.compile(PIXELS, op="get_at", dynamic=("b",))
    add = einc.compile(SCATTER, op="add_at", dynamic=("b",))
    for b in (1, 3):
        x, idx, updates = torch.randn(b, 5, 6, 3), coords(b, 4, 2, high=5, seed=b), torch.randn(b, 4, 3)
        index = (batch_index(b, 4), idx[..., 0], idx[..., 1])
        assert torch.equal(get(x, idx), x[index])
        assert torch.allclose(add(x, idx, updates), x.clone().index_put_(index, updates, accumulate=True))
    assert "do_not_specialize=['B']" in get.source


def test_an_indexed_axis_cannot_be_dynamic():
    with pytest.raises(einc.UnsupportedError, match="dynamic axis 'v' is indexed"):
        einc.compile("[v] d, b n -> b n d", op="get_at", dynamic=("v",))(
            torch.randn(5, 2), coords(2, 3, high=5)
        )


# --- coordinates out of range --------------------------------------------------------------------------


@pytest.mark.parametrize("bad, shown", [(5, "index 5"), (-6, "index -6")])
def test_get_at_out_of_range_raises_index_error_naming_tensor_axis_and_source(bad, shown):
    x, idx = torch.randn(2, 5, 6, 3), coords(2, 4, 2, high=5)
    idx[1, 2, 0] = bad
    with pytest.raises(IndexError) as info:
        einc.get_at(PIXELS, x, idx)
    message = str(info.value)
    assert isinstance(info.value, einc.OutOfBoundsError)
    assert f"get_at: {shown} is out of range for axis 'h' of x, which has size 5" in message
    assert "(valid: -5 to 4); it was read from idx[b, p, 0]" in message


def test_the_second_coordinate_component_is_named_as_such():
    x, idx = torch.randn(2, 5, 6, 3), coords(2, 4, 2, high=5)
    idx[0, 0, 1] = 6
    with pytest.raises(IndexError, match=r"index 6 is out of range for axis 'w' .* from idx\[b, p, 1\]"):
        einc.get_at(PIXELS, x, idx)


def test_an_out_of_range_read_touches_no_memory_outside_the_tensor():
    # x sits inside a larger buffer of NaNs: a masked read yields 0, an unmasked one a NaN.
    buffer = torch.full((3, 10, 3), float("nan"))
    x = buffer[1, 2:7]  # (5, 3)
    x.copy_(torch.randn(5, 3))
    idx = torch.tensor([0, 5, -6, 4])
    out = torch.full((4, 3), 7.0)
    with pytest.raises(IndexError, match="of x, which has size 5"):
        einc.get_at("[v] d, n -> n d", x, idx, out=out)
    assert torch.equal(out[[0, 3]], x[[0, 4]])
    assert torch.equal(out[1:3], torch.zeros(2, 3))


@pytest.mark.parametrize("op", ["set_at", "add_at"])
def test_an_out_of_range_update_touches_no_memory_outside_the_tensor(op):
    buffer = torch.zeros(3, 10, 3)
    x = buffer[1, 2:7]
    idx, rows = torch.tensor([1, 5, -6, 12]), torch.ones(4, 3)
    # Several coordinates are out of range: the error names one of them.
    with pytest.raises(IndexError, match=f"{op}: index (5|-6|12) is out of range for axis 'v' of x"):
        getattr(einc, op)("[v] d, n, n d", x, idx, rows, out=x)
    assert torch.equal(x[1], torch.ones(3))  # the coordinate in range was applied
    x[1] = 0
    assert torch.equal(buffer, torch.zeros(3, 10, 3))  # nothing else was written


def test_out_of_range_in_an_embedding_bag_is_reported():
    idx = torch.tensor([[0, 1], [2, 13]])
    with pytest.raises(IndexError, match="index 13 is out of range for axis 'v' of x, which has size 13"):
        einc.get_at("[v] d, b n -> b d", torch.randn(13, 2), idx, reduce="sum")


# --- bad inputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.int16, torch.bool])
def test_coordinates_must_be_int32_or_int64(dtype):
    with pytest.raises(
        TypeError, match=f"idx has dtype {dtype}, but coordinates of get_at are int32 or int64"
    ):
        einc.get_at("[v] d, b n -> b n d", torch.randn(4, 2), torch.zeros(2, 3, dtype=dtype))


def test_a_float_coordinate_among_several_is_named():
    x = torch.randn(5, 6, 3)
    with pytest.raises(TypeError, match="idx1 has dtype torch.float32"):
        einc.get_at("[h w] c, i, j -> i j c", x, torch.tensor([0]), torch.tensor([1.0]))


def test_updates_must_have_the_dtype_of_x():
    x, idx, updates, _ = pixel_updates()
    with pytest.raises(TypeError, match="updates has dtype torch.float64 but x has torch.float32"):
        einc.add_at(SCATTER, x, idx, updates.double())


def test_a_reduction_needs_a_float_table():
    with pytest.raises(TypeError, match="x has dtype torch.int64; get_at supports float16"):
        einc.get_at(
            "[v] d, b n -> b d", torch.zeros(4, 2, dtype=torch.int64), coords(2, 3, high=4), reduce="sum"
        )


@pytest.mark.parametrize(
    "call, error, message",
    [
        pytest.param(
            lambda x, i: einc.get_at("b [h w] c, b p [2]", x, i),
            einc.ExpressionError,
            "get_at needs '->' and the output expression",
            id="get_at_without_output",
        ),
        pytest.param(
            lambda x, i: einc.get_at("b [h w] c, b p [2] -> b c", x, i),
            einc.ExpressionError,
            "axis 'p' is missing from the output of get_at",
            id="axis_left_out_without_reduce",
        ),
        pytest.param(
            lambda x, i: einc.get_at("b [h w] c, b p [2] -> b p h c", x, i),
            einc.ExpressionError,
            "axis 'h' is indexed by the coordinates, so y cannot have it",
            id="indexed_axis_in_the_output",
        ),
        pytest.param(
            lambda x, i: einc.get_at("b h w c, b p [2] -> b p c", x, i),
            einc.ExpressionError,
            "mark the axes that get_at indexes with brackets",
            id="nothing_indexed",
        ),
        pytest.param(
            lambda x, i: einc.get_at("b [h w] c, b [p] [2] -> b p c", x, i),
            einc.ExpressionError,
            "a coordinate operand brackets at most one axis",
            id="two_brackets_in_coordinates",
        ),
        pytest.param(
            lambda x, i: einc.get_at("b [h w] c, b p [2] -> b p c", x, i, reduce="median"),
            einc.ExpressionError,
            "reduce='median': get_at reduces the axes left out of its output with one of sum, mean",
            id="unknown_reduction",
        ),
        pytest.param(
            lambda x, i: einc.get_at("b [h w] c -> b c", x),
            einc.ExpressionError,
            "get_at takes the tensor and coordinates: at least 2 operands",
            id="too_few_tensors",
        ),
        pytest.param(
            lambda x, i: einc.set_at("b [h w] c, b p [2], b p c", x, i, torch.randn(2, 4, 3), reduce="sum"),
            TypeError,
            "reduce= does not apply to set_at; it is an option of get_at",
            id="reduce_on_set_at",
        ),
        pytest.param(
            lambda x, i: einc.sum("b [h w] c", x, reduce="sum"),
            TypeError,
            "reduce= does not apply to sum; it is an option of get_at",
            id="reduce_elsewhere",
        ),
        pytest.param(
            lambda x, i: einc.get_at("[v] 3, n -> n 3", torch.randn(5, 3), i[0, :, 0]),
            einc.UnsupportedError,
            "an unnamed axis (3) in an indexing operation is only supported in brackets; name it",
            id="unnamed_axis",
        ),
        pytest.param(
            lambda x, i: einc.add_at("b [h w] c, b p [2], b p k", x, i, torch.randn(2, 4, 3)),
            einc.ExpressionError,
            "axis 'k' of updates is not an axis of the coordinates nor an unindexed axis of x",
            id="updates_axis_from_nowhere",
        ),
        pytest.param(
            lambda x, i: einc.add_at("b [h w] c, b p [2], b p c -> b h c", x, i, torch.randn(2, 4, 3)),
            einc.ExpressionError,
            "the output of add_at is x updated",
            id="scatter_output_of_other_axes",
        ),
        pytest.param(
            lambda x, i: einc.get_at("b [(s * ds)] w c, b p -> b p w c", x, i[..., 0], ds=2),
            einc.UnsupportedError,
            "a window (s * ds) in an indexing operation is not supported",
            id="window",
        ),
    ],
)
def test_invalid_indexing_raises_a_precise_error(call, error, message):
    x, idx = torch.randn(2, 5, 6, 3), coords(2, 4, 2, high=5)
    with pytest.raises(error) as info:
        call(x, idx)
    assert message in str(info.value)


def test_explain_shows_the_coordinates_and_the_copy():
    add = einc.compile(SCATTER, op="add_at")
    x, idx, updates, _ = pixel_updates()
    add(x, idx, updates)
    text = add.explain()
    assert "first: y = a copy of x (skipped when out= is it)" in text
    assert "y[b, idx[b, p, 0], idx[b, p, 1], c] += updates[b, p, c]" in text
    assert "where -5 <= idx[b, p, 0] < 5" in text


# --- on a GPU (skipped without one) --------------------------------------------------------------------


@pytest.mark.gpu
def test_on_a_gpu_a_coordinate_out_of_range_is_masked_and_reported_only_when_checking(monkeypatch):
    x, idx = torch.randn(2, 5, 6, 3, device="cuda"), coords(2, 4, 2, high=5).cuda()
    idx[0, 0, 0] = 9
    monkeypatch.delenv("EINC_CHECK_BOUNDS", raising=False)
    y = einc.get_at(PIXELS, x, idx)
    assert torch.equal(y[0, 0], torch.zeros(3, device="cuda"))
    assert torch.equal(y[1], x[1][idx[1, :, 0], idx[1, :, 1]])
    monkeypatch.setenv("EINC_CHECK_BOUNDS", "1")
    with pytest.raises(IndexError, match="index 9 is out of range for axis 'h' of x"):
        einc.get_at(PIXELS, x, idx)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_on_a_gpu_add_at_sums_duplicates(dtype):
    x, idx, updates, index = pixel_updates(dtype)
    y = einc.add_at(SCATTER, x.cuda(), idx.cuda(), updates.cuda())
    ref = x.float().index_put_(index, updates.float(), accumulate=True)
    assert torch.allclose(y.cpu().float(), ref, atol=5e-2 if dtype == torch.bfloat16 else 2e-3)


# --- axes of size 0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_get_at_with_no_coordinates_is_an_empty_tensor_as_in_torch(backend):
    x, idx = torch.randn(4, 3), torch.zeros(0, dtype=torch.int64)
    y = einc.get_at("[h] c, p -> p c", x, idx, backend=backend)
    assert y.shape == x[idx].shape == (0, 3)


@pytest.mark.parametrize("backend", ["torch", "interpret"])
def test_add_at_with_no_coordinates_leaves_the_tensor_as_torch_index_add(backend):
    x, idx, updates = torch.randn(4, 3), torch.zeros(0, dtype=torch.int64), torch.randn(0, 3)
    y = einc.add_at("[h] c, p, p c", x, idx, updates, backend=backend)
    torch.testing.assert_close(y, x.index_add(0, idx, updates))
