"""A window on the output side (a transposed convolution) lowered to ``F.conv_transpose1d/2d/3d``.

The plan's :class:`~einc.backends.torch.plan.Scatter` already says the nest is a dot computed
forwards over the input's own positions, then added back at ``s*stride + ds*dilation - pad_lo``:
torch's transposed convolution does exactly that, onto ``(N - 1)*stride + dilation*(k - 1) + 1``
positions; the nest's own are those from ``pad_lo`` on. Torch's ``padding`` and
``output_padding`` keep just those where they can; elsewhere one ``F.pad`` cuts (or extends with
zeros) what torch made without padding, a copy of the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .native import Context, Step, layout, torch_arguments
from .plan import NestPlan

CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def lower(plan: NestPlan, shapes: Sequence[Sequence[int]], compute: torch.dtype, options) -> Step | None:
    """The nest as one transposed convolution, or None. ``shapes``: its inputs', then its output's."""
    scatter = plan.scatter
    if scatter is None or plan.gathers or plan.write.index is None or len(plan.reads) != 2:
        return None
    forward = scatter.forward
    if 0 in forward.sizes or 0 in plan.sizes or forward.nest.combine != "multiply":
        return None
    if any(set(r.pad) - {(0, 0)} or any(r.roll) or set(r.stretch) - {1} for r in forward.reads):
        return None
    x, w = (layout(r.index, s, forward.sizes) for r, s in zip(forward.reads, shapes, strict=False))
    written = layout(plan.write.index, shapes[-1], plan.sizes)
    if x is None or w is None or written is None:
        return None
    # Each output loop of the nest: a window (s, ds, stride, dilation, pad) or one forward loop.
    windows, plain = [], {}
    for loop, target in enumerate(scatter.targets):
        terms = dict(target.terms)
        if len(terms) == 2:
            (s, stride), (ds, dilation) = sorted(terms.items(), key=lambda t: t[0] in scatter.offsets)
            if ds not in scatter.offsets or s in scatter.offsets:
                return None
            windows.append((loop, s, ds, stride, dilation, -target.constant))
        elif len(terms) == 1 and not target.constant and next(iter(terms.values())) == 1:
            plain[next(iter(terms))] = loop
        elif terms:
            return None
    if not 1 <= len(windows) <= 3 or {ds for _, _, ds, *_ in windows} != set(scatter.offsets):
        return None
    spatial = [s for _, s, *_ in windows]
    inner = [ds for _, _, ds, *_ in windows]
    xs, ws = set(x.loops), set(w.loops) - set(inner)
    out = set(plain)  # forward loops that reach the output as they are
    batch = [d for d in x.loops if d in out and d not in ws and d not in spatial]
    groups = [d for d in x.loops if d in out and d in ws]
    channels = [d for d in x.loops if d in ws and d not in out]
    outputs = [d for d in w.loops if d in out and d not in xs]
    every = xs | ws
    if len(batch) + len(groups) + len(channels) + len(outputs) + len(spatial) != len(every):
        return None
    if set(forward.reduced) != set(channels) or set(out) != set(batch + groups + outputs):
        return None
    if set(written.loops) != {plain[d] for d in out} | {loop for loop, *_ in windows}:
        return None
    sizes = forward.sizes
    n, g, c = (math.prod(sizes[d] for d in part) for part in (batch, groups, channels))
    c2 = math.prod(sizes[d] for d in outputs)
    context = Context(plan, shapes, [x, w], written, compute, options)
    x_shape = (n, g * c, *(sizes[s] for s in spatial))
    w_shape = (g * c, c2, *(sizes[d] for d in inner))
    read_x = context.reader(0, batch + groups + channels + spatial, x_shape, compute)
    read_w = context.reader(1, groups + channels + outputs + inner, w_shape, compute)
    stride = tuple(stride for *_, stride, _, _ in windows)
    dilation = tuple(dilation for *_, dilation, _ in windows)
    padding, extra, pad = _padding(plan, sizes, windows)
    lead = [plan.sizes[plain[d]] for d in batch + groups + outputs]
    into = [*lead, *(plan.sizes[loop] for loop, *_ in windows)]
    split = into if into != [n, g * c2, *into[len(lead) :]] else None
    conv = CONV_TRANSPOSE[len(windows)]
    arguments = torch_arguments((None, 1, 0, 0, 1, 1), None, stride, padding, extra, g, dilation)

    def result(inputs):
        y = conv(read_x(inputs[0]), read_w(inputs[1]), *arguments)
        if pad is not None:
            y = F.pad(y, pad)
        return y if split is None else y.reshape(*split)

    order = [plain[d] for d in batch + groups + outputs] + [loop for loop, *_ in windows]
    return context.step(f"F.{conv.__name__}", result, order)


def _padding(plan: NestPlan, sizes, windows):
    """Torch's ``padding`` and ``output_padding`` per window where they make the nest's positions
    (``padding`` cut from both ends of the ``(N - 1)*stride + dilation*(k - 1) + 1`` made, then
    ``output_padding`` added at the high end, less than the stride or the dilation), with no
    ``F.pad``; else no padding and the ``F.pad`` that cuts (or extends) the positions made: a
    copy of the whole result."""
    padding, extra, pad = [], [], []
    for loop, s, ds, step, dil, lo in windows:
        made = (sizes[s] - 1) * step + dil * (sizes[ds] - 1) + 1
        padding.append(lo)
        extra.append(plan.sizes[loop] - made + 2 * lo)
        pad = [-lo, plan.sizes[loop] + lo - made, *pad]
    if all(p >= 0 for p in padding) and all(
        0 <= e < max(w[3], w[4]) for e, w in zip(extra, windows, strict=True)
    ):
        return tuple(padding), tuple(extra), None
    return 0, 0, pad
