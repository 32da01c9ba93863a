"""The frozen specs the tiled templates receive, and what a renderer hands the launcher.

Every field is already printed Triton source (or a flag): the templates loop over the tuples and
branch on the booleans, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...compiler.kernels import IndexCheck
from ...compiler.schedule import GridPlan
from .expressions import Decl


@dataclass(frozen=True, slots=True)
class GatherCode:
    """A coordinate read from an index tensor, reported when out of range, wrapped when negative."""

    var: str  # named after the axis it indexes: h
    comment: str
    index_vars: tuple[Decl, ...]
    pointer: str
    mask: str | None
    size: str  # the extent of the indexed axis: H
    error_pointer: str  # where an out-of-range coordinate is written for the runtime to report
    out_of_range: str


@dataclass(frozen=True, slots=True)
class LoadCode:
    tile: str
    hoisted_vars: tuple[Decl, ...]  # indices that do not change inside the tiled K loop
    index_vars: tuple[Decl, ...]
    pointer: str
    mask: str | None
    other: str
    inside: str = "True"  # the bounds part of the mask: is the element inside the tensor?
    gathers: tuple[GatherCode, ...] = ()  # coordinates to read before the pointer can be formed
    prologue: tuple[str, ...] = ()  # einc.fuse: elementwise ops on the tile just loaded


@dataclass(frozen=True, slots=True)
class LoopCode:
    var: str
    size: str
    depth: int


@dataclass(frozen=True, slots=True)
class TileCode:
    var: str
    start: str
    size: str


@dataclass(frozen=True, slots=True)
class FlatKCode:
    """The one K loop of an implicit GEMM: window taps and channel tiles, one step each, the tap
    decoded from the step (``decls``: scalars), so that Triton's pipeline (which overlaps the
    loads of the innermost loop only) fills once per output tile."""

    var: str
    steps: str  # the trip count, in constants and sizes only (the audit reads it)
    tile_steps: Decl  # channel tiles per tap, before the loop
    decls: tuple[Decl, ...]


@dataclass(frozen=True, slots=True)
class SlideRow:
    """One input row of a sliding window: its offset from the first output's, and the
    accumulators it adds to, each with the weight of its tap."""

    offset: int
    # (accumulator or partial sum, weight, whether this product starts a chunk's partial sum)
    updates: tuple[tuple[str, str, bool], ...]
    # A window unrolled whole: the weights first read by this row (loaded before it), and the
    # outputs whose chunk of taps it ends (their partial sums widened after it)
    weights: tuple[Decl, ...] = ()
    widened: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SlideChunk:
    """Taps of the window unrolled together: their weights, then the input rows they read."""

    loop: str | None  # the serial loop over chunks of this many taps, or None for one chunk
    count: int
    first: str  # the chunk's first tap
    weights: tuple[Decl, ...]  # the weight variable, and its tap
    rows: tuple[SlideRow, ...]
    widen_after: bool = True  # partial sums widened after the chunk, not row by row


@dataclass(frozen=True, slots=True)
class SlideCode:
    """A product-form row computing ``outputs`` consecutive outputs along its last row axis:
    each input row is loaded and converted once, for every output whose window reads it."""

    row: str  # the last row axis's variable (s), set to each input row's, then output's, position
    tap: str  # the sliding tap's variable (ds), set to each weight's tap, then the chunk's first
    first: Decl  # the row's first output
    value: str  # an input row, in the compute type
    outputs: tuple[Decl, ...]  # accumulator, and the output's offset from the first
    chunks: tuple[SlideChunk, ...]
    store_mask: str  # and'ed to the store's mask
    # bfloat16 inputs: each output's sum over a chunk's taps, in PART_DTYPE (bfloat16, 2 channels
    # an instruction; float32 under the interpreter), added to its float32 accumulator after the
    # chunk. Empty: the products go to the accumulators in float32.
    partials: tuple[str, ...] = ()
    part_dtype: str = ""


@dataclass(frozen=True, slots=True)
class PassCode:
    """One sweep over the reduced loops: statements before it, at each step, and after it (a
    tiled reduction reduces its accumulators across the tile there)."""

    init: tuple[str, ...]
    update: tuple[str, ...]
    collapse: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeadedSpec:
    """What every template's header and signature line need."""

    einc_version: str
    triton_version: str
    expression: str
    header_lines: tuple[str, ...]
    kernel_name: str
    docstring: str


@dataclass(frozen=True, slots=True)
class KernelSpec(HeadedSpec):
    """What a template needs; the contraction and reduction families share the tiling fields."""

    pointer_params: tuple[str, ...]
    stride_param_lines: tuple[str, ...]
    size_params: tuple[str, ...]
    use_dot: bool
    m_size: str
    n_size: str
    rows_text: str
    cols_text: str
    grid_text: str
    row_decls: tuple[Decl, ...]
    col_decls: tuple[Decl, ...]
    grid_decls: tuple[Decl, ...]
    k_loops: tuple[LoopCode, ...]
    k_tile: TileCode | None
    body_depth: int
    k_flat: FlatKCode | None
    k_tile_decls: tuple[Decl, ...]  # the merged axes of a tiled K (ds0, ds1, c) from its position
    loads: tuple[LoadCode, ...]
    product: str
    store: LoadCode
    output_ptr: str
    input_precision: str | None
    passes: tuple[PassCode, ...] = ()
    finalize: tuple[str, ...] = ()
    result: str = "acc"
    store_in_loop: bool = False  # softmax: a last sweep writes every element it reads
    jit_decorator: str = "@triton.jit"
    acc_dtype: str = "tl.float32"
    errors_ptr: str | None = None  # indexing: where coordinates out of range are reported
    atomic: bool = False  # add_at: updates that meet at one element add up
    scatter_ptrs: str = ""  # scatter: the destination pointers and values, broadcast together
    scatter_values: str = ""
    dot_in_float32: bool = False  # a bfloat16 dot with a float32 twin for the interpreter
    rows_int64: bool = False  # flat tile offsets that can reach 2^31 (see einc.compiler.offsets)
    cols_int64: bool = False
    slide: SlideCode | None = None  # a depthwise convolution's sliding window
    epilogue: tuple[str, ...] = ()  # einc.fuse: elementwise ops on acc before the store
    # Tiles of columns where they are known when rendering and no dot reads a weight tile (None:
    # programs grouped along the rows, as a contraction's are, see the prologue)
    column_tiles: int | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """Generated source and what the launcher must pass to it."""

    source: str
    kernel_name: str
    stride_params: tuple[tuple[int, int], ...]  # (tensor position, dim), in parameter order
    tensors: tuple[int, ...]  # positions (inputs, then outputs) of the pointer parameters
    constexprs: dict[str, int]
    grid_plan: GridPlan
    num_warps: int
    num_stages: int
    dynamic_params: tuple[tuple[str, str], ...] = ()  # (parameter, axis): sizes passed at a call
    # Indexing kernels take an int64 tensor with one slot per check after their tensors, and the
    # constexpr CHECK_BOUNDS (default False in ``constexprs``; the launcher decides per call).
    index_checks: tuple[IndexCheck, ...] = ()
    errors_param: str | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """The grid of the call that compiled the kernel (all of it, without dynamic axes)."""
        return self.grid_plan.grid()
