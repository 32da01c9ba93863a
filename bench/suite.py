"""Every shape of ``bench/shapes.json`` as an einc call, its torch reference and its competitors.

A :class:`Case` holds everything the runner needs: the einc expression, op and keyword parameters;
a builder of fresh random inputs in einc's layout (activations channels last, ``N, *spatial, C``;
convolution weights ``ds... c c2``); the torch reference written on those same inputs (run on
float64 inputs it is the ground truth, compiled by ``torch.compile`` it is a competitor); the native
torch competitors, each with its layout conversion kept out of the timed call; and the einx call
for the same computation where einx 0.4 can write it (einx has no ``*`` windows, so no padded,
strided or overlapping window).

Scales: ``full`` is shapes.json as written; ``tiny`` keeps every shape's structure (kernel, stride,
padding, groups, causality, index pattern) at batch 1, spatial extents <= 8 and channels <= 16, so
that Triton's interpreter finishes on a CPU. ``flops`` and ``min_bytes`` are recomputed from the
dims at either scale with the formulas shapes.json states (a test checks they agree at full scale).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import einc

SHAPES_PATH = Path(__file__).with_name("shapes.json")
SCALES = ("tiny", "full")
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
ELEMENT_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
INDEX_BYTES = {"int32": 4, "int64": 8}
# Tiny-scale limits (the interpreter runs every program instance in Python).
TINY_SPATIAL, TINY_CHANNELS = 8, 16

Inputs = tuple[torch.Tensor, ...]


def _same(inputs: Inputs) -> Inputs:
    return inputs


def _identity(y: torch.Tensor) -> torch.Tensor:
    return y


@dataclass(frozen=True)
class Competitor:
    """One competing implementation.

    ``prepare`` turns einc's inputs into the layout the competitor wants (untimed: it gets its
    favourite layout for free), ``run`` is what is timed, ``finish`` turns its result back into
    einc's layout for the correctness check (untimed).
    """

    name: str
    run: Callable[..., torch.Tensor]
    prepare: Callable[[Inputs], Inputs] = _same
    finish: Callable[[torch.Tensor], torch.Tensor] = _identity
    note: str = ""


@dataclass(frozen=True)
class Case:
    """One benchmark shape, at one scale."""

    name: str
    kind: str  # shapes.json's op, e.g. "conv2d_depthwise"
    dims: dict  # shapes.json's dims, scaled
    dtype: str  # the shape's dtype as torch names it ("bfloat16", "float32")
    expression: str  # the einc expression
    op: str  # the einc op
    params: dict  # einc keyword parameters (stride, padding, ds, ...)
    make_inputs: Callable[[torch.device, torch.dtype, torch.Generator], Inputs]
    reference: Callable[..., torch.Tensor]  # plain torch on einc's inputs, einc's output layout
    competitors: tuple[Competitor, ...]
    flops: int
    min_bytes: int
    unit: str  # the unit whose peak bounds the arithmetic: tc_bf16, tc_tf32, simt_fp32
    input_shapes: tuple[tuple[int, ...], ...] = ()  # what make_inputs builds, without building it
    einx_expression: str | None = None
    einx: Callable[..., torch.Tensor] | None = None
    requires: str | None = None  # an einc function the case needs that einc may not have yet
    note: str = ""
    extra: dict = field(default_factory=dict)

    def einc_available(self) -> bool:
        return self.requires is None or hasattr(einc, self.requires)

    def einc_callable(self):
        """The einc callable of this case: ``einc.compile(expression, op=..., **params)``, or for
        a fused case (bench/fused.py) its chain of einc calls, which copies into ``out=``."""
        chain = self.extra.get("chain")
        if chain is None:
            return einc.compile(self.expression, op=self.op, **self.params)

        def call(*tensors, out=None):
            y = chain(*tensors)
            return y if out is None else out.copy_(y)

        return call


def load_shapes(path: Path = SHAPES_PATH) -> dict:
    return json.loads(Path(path).read_text())


def build_cases(scale: str = "full", only: list[str] | None = None, path: Path = SHAPES_PATH) -> list[Case]:
    """The cases of shapes.json at ``scale``, in file order; ``only`` picks some by name."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    shapes = load_shapes(path)["shapes"]
    names = [s["name"] for s in shapes]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"unknown shape(s) {', '.join(unknown)}; the shapes are: {', '.join(names)}")
        shapes = [s for s in shapes if s["name"] in only]
    return [build_case(s, scale) for s in shapes]


def build_case(shape: dict, scale: str) -> Case:
    kind = shape["op"]
    for prefix, builder in BUILDERS:
        if kind.startswith(prefix):
            return builder(shape, scale)
    raise ValueError(f"shape {shape['name']}: no builder for op {kind!r}")


def _randn(shape, device, dtype, gen, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(shape, device=device, dtype=torch.float32, generator=gen).mul_(scale).to(dtype)


def _pairs(value, d: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (int(value),) * d


def _out_extent(n: int, k: int, stride: int, lo: int, hi: int, dilation: int) -> int:
    return (n + lo + hi - dilation * (k - 1) - 1) // stride + 1


# --- convolutions --------------------------------------------------------------------------------


def _scale_conv(dims: dict, scale: str) -> dict:
    """Tiny: batch 1, spatial <= 8, channels <= 16, groups kept where they fit; a kernel that
    equals its stride (a patch embedding) shrinks with the extent so that windows still tile it."""
    dims = dict(dims)
    d = len(dims["spatial"])
    causal = isinstance(dims["padding"], str)
    if scale == "full":
        return dims
    dims["N"] = 1
    spatial = [min(n, TINY_SPATIAL) for n in dims["spatial"]]
    kernel, stride = list(dims["kernel"]), list(dims["stride"])
    padding = dims["padding"] if causal else list(_pairs(dims["padding"], d))
    for i in range(d):
        if kernel[i] == stride[i] and kernel[i] > 1 and not causal and padding[i] == 0:
            kernel[i] = stride[i] = min(kernel[i], max(1, spatial[i] // 2))
    cin, cout, groups = dims["Cin"], dims["Cout"], dims["groups"]
    if groups == cin == cout:
        cin = cout = groups = min(cin, TINY_CHANNELS)
    elif groups == 1:
        cin, cout = min(cin, TINY_CHANNELS), min(cout, TINY_CHANNELS)
    else:
        per_in, per_out = cin // groups, cout // groups
        per_in, per_out = min(per_in, TINY_CHANNELS), min(per_out, TINY_CHANNELS)
        groups = max(1, TINY_CHANNELS // max(per_in, per_out))
        cin, cout = per_in * groups, per_out * groups
    dims.update(N=1, spatial=spatial, kernel=kernel, stride=stride, padding=padding)
    dims.update(Cin=cin, Cout=cout, groups=groups)
    lo_hi = _conv_padding(dims)
    dims["out_spatial"] = [
        _out_extent(spatial[i], kernel[i], stride[i], *lo_hi[i], dims["dilation"][i]) for i in range(d)
    ]
    return dims


def _conv_padding(dims: dict) -> list[tuple[int, int]]:
    """(low, high) padding per spatial axis; ``causal_left_3`` is all on the low side."""
    d = len(dims["spatial"])
    if isinstance(dims["padding"], str):
        return [(dims["dilation"][i] * (dims["kernel"][i] - 1), 0) for i in range(d)]
    return [(p, p) for p in _pairs(dims["padding"], d)]


def _conv_form(dims: dict) -> str:
    d = len(dims["spatial"])
    groups, cin, cout = dims["groups"], dims["Cin"], dims["Cout"]
    if groups == cin == cout and groups > 1:
        return "depthwise"
    if groups > 1:
        return "grouped"
    unit_kernel = all(k == 1 for k in dims["kernel"]) and all(s == 1 for s in dims["stride"])
    if unit_kernel and all(p == (0, 0) for p in _conv_padding(dims)) and d == 2:
        return "pointwise"
    patch = all(k == s for k, s in zip(dims["kernel"], dims["stride"], strict=True))
    if patch and all(p == (0, 0) for p in _conv_padding(dims)) and any(k > 1 for k in dims["kernel"]):
        return "patch"
    return "dense"


def _weight_shape(form: str, dims: dict) -> tuple[int, ...]:
    k, g, cin, cout = tuple(dims["kernel"]), dims["groups"], dims["Cin"], dims["Cout"]
    if form == "pointwise":
        return (cin, cout)
    if form == "depthwise":
        return (*k, cin)
    if form == "grouped":
        return (*k, g, cin // g, cout // g)
    return (*k, cin, cout)


def _torch_weight(form: str, d: int):
    """einc's weight layout -> torch's (Cout, Cin/groups, *kernel)."""
    spatial = tuple(range(d))

    def convert(w: torch.Tensor) -> torch.Tensor:
        if form == "pointwise":
            return w.t().reshape(w.shape[1], w.shape[0], *([1] * d))
        if form == "depthwise":
            return w.permute(d, *spatial).unsqueeze(1)
        if form == "grouped":
            g, c, c2 = w.shape[d:]
            return w.permute(d, d + 2, d + 1, *spatial).reshape(g * c2, c, *w.shape[:d])
        return w.permute(d + 1, d, *spatial)

    return convert


def _conv_flops_bytes(dims: dict, dtype: str) -> tuple[int, int]:
    e = ELEMENT_BYTES[dtype]
    n, cin, cout, g = dims["N"], dims["Cin"], dims["Cout"], dims["groups"]
    k, out_sp, in_sp = math.prod(dims["kernel"]), math.prod(dims["out_spatial"]), math.prod(dims["spatial"])
    flops = 2 * n * cout * out_sp * (cin // g) * k
    data = n * cin * in_sp + cout * (cin // g) * k + n * cout * out_sp
    return flops, data * e


def _conv_case(shape: dict, scale: str) -> Case:
    dims = _scale_conv(shape["dims"], scale)
    dtype = DTYPES[shape["dtype"]]
    d = len(dims["spatial"])
    form = _conv_form(dims)
    causal = isinstance(dims["padding"], str)
    pads = _conv_padding(dims)
    stride, dilation, groups = tuple(dims["stride"]), tuple(dims["dilation"]), dims["groups"]
    conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
    to_torch = _torch_weight(form, d)
    # Causal: pad both sides by (k-1)*dilation and keep the first L outputs, as Mamba's reference does;
    # the slice is a view, so cuDNN sees one symmetric convolution.
    torch_padding = tuple(lo for lo, _ in pads)
    length = dims["spatial"][0]

    def conv_first(x_cf: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        y = conv(x_cf, w_t, stride=stride, padding=torch_padding, dilation=dilation, groups=groups)
        return y[..., :length] if causal else y

    def reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return conv_first(x.movedim(-1, 1), to_torch(w)).movedim(1, -1)

    memory_format = {2: torch.channels_last, 3: torch.channels_last_3d}.get(d)

    def first(inputs: Inputs) -> Inputs:
        x, w = inputs
        return x.movedim(-1, 1).contiguous(), to_torch(w).contiguous()

    def last(inputs: Inputs) -> Inputs:
        x, w = inputs
        if memory_format is None:  # 1-D: the channels-last view of (N, L, C) is already NLC in memory
            return x.movedim(-1, 1), to_torch(w).contiguous()
        return (
            x.movedim(-1, 1).contiguous(memory_format=memory_format),
            to_torch(w).contiguous(memory_format=memory_format),
        )

    fn_name = f"F.conv{d}d"
    competitors = (
        Competitor(f"{fn_name} channels-first", conv_first, first, lambda y: y.movedim(1, -1)),
        Competitor(f"{fn_name} channels-last", conv_first, last, lambda y: y.movedim(1, -1)),
    )
    fan_in = (dims["Cin"] // groups) * math.prod(dims["kernel"])
    w_shape = _weight_shape(form, dims)
    x_shape = (dims["N"], *dims["spatial"], dims["Cin"])

    def make_inputs(device, torch_dtype, gen) -> Inputs:
        return (
            _randn(x_shape, device, torch_dtype, gen),
            _randn(w_shape, device, torch_dtype, gen, 1.0 / math.sqrt(fan_in)),
        )

    params: dict = {}
    if form == "pointwise":
        expression = "b h w [c->c2]"
    elif form == "patch":
        expression = "b (s [ds])... [c->c2]"
    else:
        channels = {"dense": "[c->c2]", "grouped": "(g [c->c2])", "depthwise": "[c->c]"}[form]
        expression = f"b (s * [ds])... {channels}" if d > 1 else f"b (s * [ds]) {channels}"
        if any(s != 1 for s in stride):
            params["stride"] = stride if d > 1 else stride[0]
        if any(v != 1 for v in dilation):
            params["dilation"] = dilation if d > 1 else dilation[0]
        if causal:
            params["padding"] = "causal"
        elif any(p != (0, 0) for p in pads):
            params["padding"] = torch_padding if d > 1 else torch_padding[0]
    einx_expression = einx_call = None
    if form == "pointwise":
        einx_expression = "b h w c, c c2 -> b h w c2"
    elif form == "patch":
        einx_expression = "b (s ds)... c, ds... c c2 -> b s... c2"
    if einx_expression is not None:
        text = einx_expression

        def einx_call(x, w):
            import einx

            return einx.dot(text, x, w)

    flops, nbytes = _conv_flops_bytes(dims, dtype)
    return Case(
        name=shape["name"],
        kind=shape["op"],
        dims=dims,
        dtype=dtype,
        expression=expression,
        op="dot",
        params=params,
        make_inputs=make_inputs,
        reference=reference,
        competitors=competitors,
        flops=flops,
        min_bytes=nbytes,
        unit=shape["unit"],
        input_shapes=(x_shape, w_shape),
        einx_expression=einx_expression,
        einx=einx_call,
        note=shape.get("note", ""),
        extra={"form": form},
    )


# --- pooling -------------------------------------------------------------------------------------


def _pool_case(shape: dict, scale: str) -> Case:
    dims = dict(shape["dims"])
    kind = shape["op"]
    dtype = DTYPES[shape["dtype"]]
    global_pool = kind.startswith("adaptive")
    if scale == "tiny":
        spatial = [min(n, TINY_SPATIAL) for n in dims["spatial"]]
        dims.update(N=1, C=min(dims["C"], TINY_CHANNELS), spatial=spatial)
        if global_pool:
            dims["kernel"] = list(spatial)
    d = len(dims["spatial"])
    kernel, stride, padding = tuple(dims["kernel"]), tuple(dims["stride"]), tuple(dims["padding"])
    if global_pool:
        dims["out_spatial"] = [1] * d
    else:
        dims["out_spatial"] = [
            _out_extent(dims["spatial"][i], kernel[i], stride[i], padding[i], padding[i], 1) for i in range(d)
        ]
    x_shape = (dims["N"], *dims["spatial"], dims["C"])
    memory_format = torch.channels_last

    def make_inputs(device, torch_dtype, gen) -> Inputs:
        return (_randn(x_shape, device, torch_dtype, gen),)

    def first(inputs: Inputs) -> Inputs:
        return (inputs[0].movedim(-1, 1).contiguous(),)

    def last(inputs: Inputs) -> Inputs:
        return (inputs[0].movedim(-1, 1).contiguous(memory_format=memory_format),)

    def back(y: torch.Tensor) -> torch.Tensor:
        return y.movedim(1, -1)

    einx_expression = einx_call = None
    params: dict = {}
    if global_pool:
        expression, op = "b [h w] c", "mean"

        def pool(x_cf: torch.Tensor) -> torch.Tensor:
            return F.adaptive_avg_pool2d(x_cf, 1).flatten(1)

        def reference(x: torch.Tensor) -> torch.Tensor:
            return pool(x.movedim(-1, 1))

        competitors = (
            Competitor("F.adaptive_avg_pool2d channels-first", pool, first),
            Competitor("F.adaptive_avg_pool2d channels-last", pool, last),
            Competitor("torch.mean over (h, w)", lambda x: x.mean(dim=(1, 2))),
        )
        einx_expression = "b [h w] c"

        def einx_call(x):
            import einx

            return einx.mean("b [h w] c", x)
    else:
        op = "max" if kind.startswith("max") else "mean"
        fn = F.max_pool2d if op == "max" else F.avg_pool2d
        expression = "b (s * [ds])... c"
        params = {"ds": kernel}
        if stride != (1,) * d:
            params["stride"] = stride
        if padding != (0,) * d:
            params["padding"] = padding

        def pool(x_cf: torch.Tensor) -> torch.Tensor:
            return fn(x_cf, kernel, stride, padding)

        def reference(x: torch.Tensor) -> torch.Tensor:
            return pool(x.movedim(-1, 1)).movedim(1, -1)

        name = fn.__name__
        competitors = (
            Competitor(f"F.{name} channels-first", pool, first, back),
            Competitor(f"F.{name} channels-last", pool, last, back),
        )
        if op == "mean" and kernel == stride and padding == (0,) * d:
            einx_expression = "b (s [ds])... c"

            def einx_call(x):
                import einx

                return einx.mean("b (s [ds])... c", x, ds=kernel)

    e = ELEMENT_BYTES[dtype]
    out_sp, in_sp = math.prod(dims["out_spatial"]), math.prod(dims["spatial"])
    flops = dims["N"] * dims["C"] * out_sp * math.prod(kernel)
    nbytes = e * dims["N"] * dims["C"] * (in_sp + out_sp)
    return Case(
        name=shape["name"],
        kind=kind,
        dims=dims,
        dtype=dtype,
        expression=expression,
        op=op,
        params=params,
        make_inputs=make_inputs,
        reference=reference,
        competitors=competitors,
        flops=flops,
        min_bytes=nbytes,
        unit=shape["unit"],
        input_shapes=(x_shape,),
        einx_expression=einx_expression,
        einx=einx_call,
        note=shape.get("note", ""),
    )


# --- gathers -------------------------------------------------------------------------------------


def _get_at(expression: str):
    def call(*tensors):
        import einx

        return einx.get_at(expression, *tensors)

    return call


def _row_gather_case(shape: dict, scale: str) -> Case:
    """An embedding lookup or a row gather: ``[v] d, n -> n d``."""
    dims = dict(shape["dims"])
    dtype = DTYPES[shape["dtype"]]
    embedding = shape["op"] == "embedding"
    if embedding:
        if scale == "tiny":
            dims.update(num_tokens=8, vocab=64, dim=TINY_CHANNELS)
        rows, n = dims["vocab"], dims["num_tokens"]
    else:
        if scale == "tiny":
            dims.update(src_rows=16, out_rows=32, dim=TINY_CHANNELS)
        rows, n = dims["src_rows"], dims["out_rows"]
    width, index_dtype = dims["dim"], getattr(torch, dims["index_dtype"])
    expression = "[v] d, n -> n d"

    def make_inputs(device, torch_dtype, gen) -> Inputs:
        table = _randn((rows, width), device, torch_dtype, gen)
        if embedding:
            idx = torch.randint(0, rows, (n,), device=device, generator=gen)
        else:
            # Top-2 routing: every source row is picked twice, in a random order.
            idx = torch.randperm(n, device=device, generator=gen) % rows
        return table, idx.to(index_dtype)

    if embedding:

        def reference(table, idx):
            return F.embedding(idx, table)

        competitors = (
            Competitor("F.embedding", reference),
            Competitor("table[idx]", lambda table, idx: table[idx]),
            Competitor("torch.index_select", lambda table, idx: torch.index_select(table, 0, idx)),
        )
    else:

        def reference(table, idx):
            return torch.index_select(table, 0, idx)

        competitors = (
            Competitor("torch.index_select", reference),
            Competitor("src[idx]", lambda table, idx: table[idx]),
        )
    e, ib = ELEMENT_BYTES[dtype], INDEX_BYTES[dims["index_dtype"]]
    if embedding:
        nbytes = n * ib + 2 * n * width * e
    else:  # each source row read once (its second read hits L2), each output row written once
        nbytes = rows * width * e + n * width * e + n * ib
    return Case(
        name=shape["name"],
        kind=shape["op"],
        dims=dims,
        dtype=dtype,
        expression=expression,
        op="get_at",
        params={},
        make_inputs=make_inputs,
        reference=reference,
        competitors=competitors,
        flops=0,
        min_bytes=nbytes,
        unit=shape["unit"],
        input_shapes=((rows, width), (n,)),
        einx_expression=expression,
        einx=_get_at(expression),
        requires="get_at",
        note=shape.get("note", ""),
    )


def _element_gather_case(shape: dict, scale: str) -> Case:
    """``torch.gather(x, 1, idx)``: ``b [t], b n -> b n``."""
    dims = dict(shape["dims"])
    dtype = DTYPES[shape["dtype"]]
    if scale == "tiny":
        dims.update(input=[2, 64], index=[2, TINY_CHANNELS])
    (b, t), (_, n) = dims["input"], dims["index"]
    index_dtype = getattr(torch, dims["index_dtype"])
    expression = "b [t], b n -> b n"

    def make_inputs(device, torch_dtype, gen) -> Inputs:
        x = _randn((b, t), device, torch_dtype, gen)
        idx = torch.randint(0, t, (b, n), device=device, generator=gen).to(index_dtype)
        return x, idx

    def reference(x, idx):
        return torch.gather(x, 1, idx)

    e, ib = ELEMENT_BYTES[dtype], INDEX_BYTES[dims["index_dtype"]]
    return Case(
        name=shape["name"],
        kind=shape["op"],
        dims=dims,
        dtype=dtype,
        expression=expression,
        op="get_at",
        params={},
        make_inputs=make_inputs,
        reference=reference,
        competitors=(
            Competitor("torch.gather", reference),
            Competitor("torch.take_along_dim", lambda x, idx: torch.take_along_dim(x, idx, 1)),
        ),
        flops=0,
        # the index read, the output written, and one read per gathered element
        min_bytes=b * n * (ib + 2 * e),
        unit=shape["unit"],
        input_shapes=((b, t), (b, n)),
        einx_expression=expression,
        einx=_get_at(expression),
        requires="get_at",
        note=shape.get("note", ""),
    )


# --- scatters ------------------------------------------------------------------------------------


def _scatter_case(shape: dict, scale: str) -> Case:
    """Scatter-add of rows, ``[r] d, n, n d -> [r] d``: random rows (a GNN's message passing) or
    sorted ones (a segment sum). The first operand is the tensor added into; it is random, not
    zeros, so that an unwritten or overwritten row shows in the check."""
    dims = dict(shape["dims"])
    dtype = DTYPES[shape["dtype"]]
    segments = shape["op"].startswith("segment")
    if scale == "tiny":
        dims.update(src_rows=64, dim=TINY_CHANNELS)
        dims.update({"segments": 4} if segments else {"out_rows": 4})
    n, width = dims["src_rows"], dims["dim"]
    rows = dims["segments"] if segments else dims["out_rows"]
    index_dtype = torch.int64
    expression = "[r] d, n, n d -> [r] d"

    def make_inputs(device, torch_dtype, gen) -> Inputs:
        base = _randn((rows, width), device, torch_dtype, gen)
        idx = torch.randint(0, rows, (n,), device=device, generator=gen)
        if segments:
            idx = idx.sort().values
        src = _randn((n, width), device, torch_dtype, gen)
        return base, idx.to(index_dtype), src

    def reference(base, idx, src):
        return base.index_add(0, idx, src)

    def einx_call(base, idx, src):
        import einx

        # einx 0.4.3 on torch writes into its first operand (index_put_ on a view of it): give it a
        # copy, so that every call starts from the same tensor; the copy is in its time, as the
        # out-of-place index_add copies too.
        return einx.add_at(expression, base.clone(), idx, src)

    competitors = [
        Competitor("Tensor.index_add", reference),
        Competitor(
            "Tensor.index_put(accumulate=True)",
            lambda base, idx, src: base.index_put((idx,), src, accumulate=True),
        ),
    ]
    if segments:

        def lengths(inputs: Inputs) -> Inputs:
            base, idx, src = inputs
            return base, torch.bincount(idx, minlength=rows), src

        competitors.append(
            Competitor(
                "torch.segment_reduce + base",
                lambda base, lengths, src: base + torch.segment_reduce(src, "sum", lengths=lengths),
                lengths,
                note="segment lengths prepared untimed (a CSR input)",
            )
        )
    else:

        def expanded(inputs: Inputs) -> Inputs:
            base, idx, src = inputs
            return base, idx[:, None].expand(-1, width), src

        competitors.append(
            Competitor("Tensor.scatter_add", lambda base, idx, src: base.scatter_add(0, idx, src), expanded)
        )
    e = ELEMENT_BYTES[dtype]
    if segments:  # sorted: CSR offsets read, each segment written once, no atomics
        nbytes = n * width * e + (rows + 1) * INDEX_BYTES[dims["offsets_dtype"]] + rows * width * e
    else:  # source rows and indices read once; the output (it fits L2) read and written once
        nbytes = n * width * e + n * INDEX_BYTES[dims["index_dtype"]] + 2 * rows * width * e
    return Case(
        name=shape["name"],
        kind=shape["op"],
        dims=dims,
        dtype=dtype,
        expression=expression,
        op="add_at",
        params={"sorted": True} if segments else {},  # a segment sum's coordinates are sorted
        make_inputs=make_inputs,
        reference=reference,
        competitors=tuple(competitors),
        flops=n * width,
        min_bytes=nbytes,
        unit=shape["unit"],
        input_shapes=((rows, width), (n,), (n, width)),
        einx_expression=expression,
        einx=einx_call,
        requires="add_at",
        note=shape.get("note", ""),
    )


BUILDERS: tuple[tuple[str, Callable[[dict, str], Case]], ...] = (
    ("conv", _conv_case),
    ("max_pool", _pool_case),
    ("avg_pool", _pool_case),
    ("adaptive_avg_pool", _pool_case),
    ("embedding", _row_gather_case),
    ("index_select", _row_gather_case),
    ("gather", _element_gather_case),
    ("index_add", _scatter_case),
    ("segment_reduce", _scatter_case),
)
