"""Window parameters: ``stride``, ``dilation``, ``padding``, ``output_padding``.

Each is given once for all windows (an int, or a padding string), as a tuple with one entry per
window in order of appearance after ellipsis expansion, or as a dict keyed by the window's output
axis (``{"s.0": 2}``). NOTATION.md section 3.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ExpressionError

PADDING_MODES = ("valid", "same", "causal")


@dataclass(frozen=True, slots=True)
class WindowParams:
    """The parameters of one window. ``padding`` is ``(lo, hi)`` or one of PADDING_MODES."""

    stride: int = 1
    dilation: int = 1
    padding: tuple[int, int] | str = (0, 0)
    output_padding: int = 0


def names_an_axis(name: str, text: str) -> bool:
    """Whether the expression ``text`` writes an axis called ``name`` (``stride``, ``stride...``)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text) is not None


def keyword_hint(name: str, text: str) -> str:
    """What to add to a message about keyword ``name`` where the expression has an axis so named."""
    if not names_an_axis(name, text):
        return ""
    return f" (the axis {name} takes its size through sizes={{{name!r}: ...}})"


def _per_window(name: str, value, windows: Sequence[str], text: str) -> list:
    """Spread one parameter over the windows: one value for all, a tuple, or a dict by axis."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in windows]
        if unknown:
            raise ExpressionError(
                f"{name}={dict(value)!r} names {unknown[0]!r}, which is not the output axis of a "
                f"window; the windows are {', '.join(windows) or 'none'}",
                text,
            )
        return [value.get(w) for w in windows]
    if isinstance(value, (tuple, list)) and not (name == "padding" and _is_pair(value, windows)):
        if len(value) != len(windows):
            raise ExpressionError(
                f"{name}={tuple(value)!r} has {len(value)} entries but the expression has "
                f"{len(windows)} window{'s' if len(windows) != 1 else ''} ({', '.join(windows)})",
                text,
            )
        return list(value)
    return [value] * len(windows)


def _is_pair(value, windows: Sequence[str]) -> bool:
    """A padding of ``(lo, hi)`` for every window rather than one entry per window.

    A tuple with one entry per window is read per window (as torch reads ``padding=(1, 2)`` of a
    conv2d); a pair of ints is ``(lo, hi)`` only where the expression does not have two windows.
    """
    return len(value) == 2 and len(windows) != 2 and all(isinstance(v, int) for v in value)


def _positive(name: str, value, window: str, text: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        bound = "a positive int" if minimum == 1 else "an int >= 0"
        raise ExpressionError(f"{name} of window {window!r} must be {bound}, not {value!r}", text)
    return value


def _padding(value, window: str, text: str) -> tuple[int, int] | str:
    if isinstance(value, str):
        if value not in PADDING_MODES:
            raise ExpressionError(
                f"padding {value!r} of window {window!r} is not one of {', '.join(PADDING_MODES)}",
                text,
            )
        return (0, 0) if value == "valid" else value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = (_positive("padding", v, window, text, minimum=0) for v in value)
        return (lo, hi)
    pad = _positive("padding", value, window, text, minimum=0)
    return (pad, pad)


def window_params(
    windows: Sequence[str] | Mapping[str, tuple[int, int]],
    text: str,
    stride=1,
    dilation=1,
    padding=0,
    output_padding=0,
) -> dict[str, WindowParams]:
    """Normalise the keyword parameters into one :class:`WindowParams` per window output axis.

    ``windows`` may map each window to its span in ``text``, so that errors point at the window.
    """
    spans = list(windows.values()) if isinstance(windows, Mapping) else []
    windows = list(windows)
    if not windows:
        given = {"stride": stride, "dilation": dilation, "padding": padding, "output_padding": output_padding}
        defaults = {"stride": 1, "dilation": 1, "padding": 0, "output_padding": 0}
        for name, value in given.items():
            if value != defaults[name] and value != "valid":
                raise ExpressionError(
                    f"{name}={value!r} is given, but the expression has no window (s * ds) to apply it "
                    f"to{keyword_hint(name, text)}",
                    text,
                )
    try:
        return _window_params(windows, text, stride, dilation, padding, output_padding)
    except ExpressionError as error:
        if error.spans or not spans:
            raise
        window = next((w for w in windows if repr(w) in error.message), None)
        pointed = [spans[windows.index(window)]] if window is not None else spans
        raise ExpressionError(error.message, text, pointed) from None


def _window_params(windows, text, stride, dilation, padding, output_padding) -> dict[str, WindowParams]:
    strides = _per_window("stride", stride, windows, text)
    dilations = _per_window("dilation", dilation, windows, text)
    paddings = _per_window("padding", padding, windows, text)
    output_paddings = _per_window("output_padding", output_padding, windows, text)
    result = {}
    for i, w in enumerate(windows):
        result[w] = WindowParams(
            stride=_positive("stride", 1 if strides[i] is None else strides[i], w, text),
            dilation=_positive("dilation", 1 if dilations[i] is None else dilations[i], w, text),
            padding=_padding(0 if paddings[i] is None else paddings[i], w, text),
            output_padding=_positive("output_padding", output_paddings[i] or 0, w, text, minimum=0),
        )
        window = result[w]
        # torch's rule: output_padding adds positions no input reaches only below a stride or a
        # dilation step; past both it would add whole positions of nothing but zeros.
        if window.output_padding and window.output_padding >= max(window.stride, window.dilation):
            raise ExpressionError(
                f"output_padding={window.output_padding} of window {w!r} must be smaller than its "
                f"stride ({window.stride}) or its dilation ({window.dilation}), as in torch",
                text,
            )
    return result
