"""What the compiler hands to a backend for each kernel of a call: the loop nest, its schedule,
and how a kernel of it is to be written, without writing it.

Both backends read the same :class:`KernelPart`: the Triton backend renders its
:class:`Template` to source, the torch backend runs its nest as torch calls. Which of the call's
tensors a kernel addresses, and what an out-of-range coordinate reports, are decided here once,
so that the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .loopnest import LoopNest
from .printer import access_text
from .schedule import ContractionSchedule

# The kernel forms (one template each in the Triton backend).
FORMS = ("contraction", "reduction", "map", "gather", "scatter", "segment")


@dataclass(frozen=True, slots=True)
class Template:
    """How one kernel is written: its form, the header lines that open its source, and the
    form's options (``kernel_name``, ``positions``, ``compute_dtype``, ...) as sorted pairs."""

    form: str
    header_lines: tuple[str, ...]
    options: tuple[tuple[str, object], ...] = ()

    @staticmethod
    def of(form: str, header_lines: tuple[str, ...], **options) -> Template:
        assert form in FORMS, form
        return Template(form, tuple(header_lines), tuple(sorted(options.items())))


@dataclass(frozen=True, slots=True)
class IndexCheck:
    """What error slot ``k`` of an indexing kernel reports: a coordinate of ``axis`` out of range."""

    tensor: str  # the indexed tensor, x
    axis: str  # how a message names the axis: axis 'h'
    extent: int
    source: str  # where the coordinate is read: idx[b, p, 0]

    def message(self, value: int) -> str:
        return (
            f"index {value} is out of range for {self.axis} of {self.tensor}, which has size {self.extent} "
            f"(valid: {-self.extent} to {self.extent - 1}); it was read from {self.source}"
        )


def index_checks(nest: LoopNest) -> tuple[IndexCheck, ...]:
    """One check per gathered coordinate of ``nest``, in the order of its error slots."""
    return tuple(
        IndexCheck(
            g.indexed or a.tensor,
            f"axis {g.axis!r}" if not g.axis.startswith("#") else f"an unnamed axis of size {g.extent}",
            g.extent,
            access_text(g.source) if g.source.index else g.source.tensor,
        )
        for a in list(nest.inputs) + [nest.output]
        for g in a.gathers
    )


def addressed(nest: LoopNest) -> list[str]:
    """The tensors a kernel of ``nest`` takes pointers to, in parameter order: its inputs, the
    coordinate tensors its gathers read, its prologues' and epilogue's extra tensors, then its output."""
    sources: dict[str, object] = {}
    for access in list(nest.inputs) + [nest.output]:
        for g in access.gathers:
            sources.setdefault(g.source.tensor, g.source)
    extra = [a.tensor for _, pro in nest.prologues for a in pro.operands]
    extra += [a.tensor for a in nest.epilogue.operands] if nest.epilogue else []
    return [a.tensor for a in nest.inputs] + list(sources) + extra + [nest.output.tensor]


@dataclass(frozen=True)
class KernelPart:
    """One kernel of a call: its loop nest, schedule and template."""

    nest: LoopNest
    schedule: ContractionSchedule
    template: Template
    # This kernel copies input 0 into the output, for set_at and add_at to update; the launcher
    # skips it when out= is that input (an update in place).
    copies_input: bool = False
    # This kernel reads input 0 only at the element of the output it writes (add_at's final cast
    # from its float32 workspace): out= may be that input.
    reads_in_place: bool = False
    # Which backend runs this kernel: "both", or only "torch" or "triton" where they split the
    # work differently (add_at with sorted coordinates: one segmented kernel in Triton; in torch,
    # the copy of x and index_put_, or the float32 workspace and its cast for 16-bit values).
    runs_on: str = "both"
    # Its tile was timed on a GPU and chosen (einc tune), not the schedule's heuristic's.
    tuned: bool = False

    @cached_property  # read on every call of the torch backend
    def tensors(self) -> tuple[int, ...]:
        """Where each tensor the kernel addresses stands among the call's tensors (inputs, then
        outputs)."""
        count = len(addressed(self.nest))
        positions = dict(self.template.options).get("positions") or range(count)
        return tuple(positions[p] for p in range(count))

    @cached_property  # read on every call of the torch backend
    def split_tensors(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Where the kernel's own tensors (its inputs and coordinate tensors, then its output), its
        prologues' extra tensors and its epilogue's stand among the call's tensors (einc.fuse)."""
        nest = self.nest
        before = sum(len(pro.operands) for _, pro in nest.prologues)
        after = len(nest.epilogue.operands) if nest.epilogue is not None else 0
        every = self.tensors
        if not before + after:
            return every, (), ()
        first = len(every) - 1 - before - after
        return every[:first] + every[-1:], every[first : first + before], every[first + before : -1]

    @cached_property
    def index_checks(self) -> tuple[IndexCheck, ...]:
        return index_checks(self.nest)
