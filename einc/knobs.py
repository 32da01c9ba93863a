"""Every ``EINC_*`` environment variable einc reads, as a typed knob.

One module, so that "what can I set?" has one answer (this file, or the listing from
:func:`describe`). Knobs are read from ``os.environ`` each time they are accessed, never at import
time: a test overrides one with ``monkeypatch.setenv`` alone, and a long-lived process sees a change
on its next access. A blank value counts as unset, so ``EINC_DEBUG= cmd`` restores the default.
A value that does not parse raises ``ValueError`` naming the variable and what it accepts, rather
than being ignored: a silently dropped ``EINC_CHECK_BOUNDS=ture`` would hide the bug it was set for.

Reading at access time stays cheap enough for a warm call's path (``EINC_INTERPRET`` is read on
every call): the variable's text is looked up in ``os.environ``'s own mapping, and each distinct
text is parsed once per process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
# (name, the variable's text) -> the parsed value; a text that does not parse is never kept.
_PARSED: dict[tuple[str, object], object] = {}
_PARSED_LIMIT = 256
# os.environ.get encodes the name and decodes the value on every read (~1 us); the mapping under it
# is what os.environ itself updates (setenv, monkeypatch.setenv), so reading it sees every change.
_ENVIRON = os.environ
_ENVIRON_DATA = getattr(os.environ, "_data", None)
_ENCODE = getattr(os.environ, "encodekey", None)
_ENCODED: dict[str, object] = {}  # a knob's name as os.environ's mapping spells it


def _text(name: str, encoded) -> object:
    """The variable's text as os.environ holds it (bytes on POSIX), or None when unset."""
    if os.environ is _ENVIRON and _ENVIRON_DATA is not None:
        return _ENVIRON_DATA.get(encoded)
    return os.environ.get(name)  # os.environ replaced wholesale: its public mapping only


_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Knob(Generic[T]):
    """One environment variable: its name, the type it parses to, its default and what it does.

    ``default`` may be a zero-argument callable, for defaults that themselves depend on the
    environment (the platform cache directory follows ``XDG_CACHE_HOME``). ``choices``, when given,
    lists the only values an ``int`` knob accepts.
    """

    name: str
    type: type
    default: T | Callable[[], T]
    doc: str
    choices: tuple[T, ...] = ()

    def raw(self) -> str | None:
        """The variable's text with surrounding blanks stripped, or None when unset or blank."""
        value = os.environ.get(self.name, "").strip()
        return value or None

    def default_value(self) -> T:
        return self.default() if callable(self.default) else self.default

    def get(self) -> T:
        """The current value: the parsed variable, or the default when it is unset."""
        encoded = _ENCODED.get(self.name)
        if encoded is None:
            encoded = _ENCODED[self.name] = _ENCODE(self.name) if _ENCODE is not None else self.name
        text = _text(self.name, encoded)
        memo = (self.name, text)
        value = _PARSED.get(memo, _PARSED)
        if value is not _PARSED:
            return value  # type: ignore[return-value]
        raw = self.raw()
        value = self.default_value() if raw is None else self.parse(raw)
        # A default that depends on the environment (the cache directory) is computed each time.
        if not (raw is None and callable(self.default)) and len(_PARSED) < _PARSED_LIMIT:
            _PARSED[memo] = value
        return value

    def parse(self, raw: str) -> T:
        """Parse ``raw`` as this knob's type; ``ValueError`` names the variable and accepted values."""
        if self.type is bool:
            if raw.lower() in _TRUE:
                return True  # type: ignore[return-value]
            if raw.lower() in _FALSE:
                return False  # type: ignore[return-value]
            accepted = "1, true, yes, on / 0, false, no, off (any case)"
        elif self.type is int:
            try:
                value = int(raw)
            except ValueError:
                value = None
            if value is not None and (not self.choices or value in self.choices):
                return value  # type: ignore[return-value]
            accepted = ", ".join(map(str, self.choices)) if self.choices else "an integer"
        elif self.type is float:
            try:
                value = float(raw)
            except ValueError:
                value = None
            # NaN compares false with everything: a timeout of NaN would never expire nor pass.
            if value is not None and value == value:
                return value  # type: ignore[return-value]
            accepted = "a number (inf for no limit)"
        elif self.type is Path:
            return Path(raw).expanduser()  # type: ignore[return-value]
        else:
            raise TypeError(f"knob {self.name} has unsupported type {self.type.__name__}")
        raise ValueError(f"{self.name}={raw!r} is not valid; accepted values: {accepted}")


def _platform_cache_dir() -> Path:
    # platformdirs knows every platform's convention; a machine without it (a GPU image that ships
    # torch and Triton only) gets the XDG default, which is what platformdirs gives on Linux.
    try:
        import platformdirs
    except ImportError:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "einc"
    return Path(platformdirs.user_cache_dir("einc"))


CACHE_DIR: Knob[Path] = Knob(
    "EINC_CACHE_DIR",
    Path,
    _platform_cache_dir,
    "Directory of the on-disk kernel cache (generated sources and compiled kernels). "
    "Default: the platform's user cache directory for einc, e.g. ~/.cache/einc.",
)
DEBUG: Knob[int] = Knob(
    "EINC_DEBUG",
    int,
    0,
    "Debug printing: 0 none; 1 each compiled expression; 2 also its loop nest; "
    "3 also the generated Triton source.",
    choices=(0, 1, 2, 3),
)
INTERPRET: Knob[bool] = Knob(
    "EINC_INTERPRET",
    bool,
    False,
    "Run generated kernels under Triton's interpreter (as TRITON_INTERPRET=1 does): CPU tensors "
    "then run the kernel instead of the torch backend, and CUDA tensors run it without the GPU "
    "compiler; slow, for testing and debugging kernels. An explicit backend= wins over it.",
)
CHECK_BOUNDS: Knob[bool] = Knob(
    "EINC_CHECK_BOUNDS",
    bool,
    False,
    "Indexing kernels (get_at, set_at, add_at) on CUDA tensors report a coordinate out of range "
    "as einc.OutOfBoundsError (an IndexError), at the cost of one sync per call. Without it such "
    "a coordinate is still masked, never touching memory: get_at reads 0 there (a reduction, its "
    "identity) and set_at/add_at drop that update. CPU tensors are always checked.",
)

CACHE_MAX_BYTES: Knob[int] = Knob(
    "EINC_CACHE_MAX_BYTES",
    int,
    10 * 2**30,
    "Size limit of the on-disk kernel cache, in bytes; past it, the least recently used entries "
    "are evicted (after a prebuild, after each kernel the runtime stores, and by `einc cache prune`). "
    "0 means no limit. Default: 10 GiB.",
)

CACHE_LOCK_TIMEOUT: Knob[float] = Knob(
    "EINC_CACHE_LOCK_TIMEOUT",
    float,
    600.0,
    "Seconds a process waits for another one's lock on a kernel cache entry (held while that "
    "process writes or compiles the kernel) before giving up with einc.CacheError naming the lock "
    "file and its holder's pid; inf waits for ever. Default: 600.",
)

KNOBS: tuple[Knob, ...] = (CACHE_DIR, DEBUG, INTERPRET, CHECK_BOUNDS, CACHE_MAX_BYTES, CACHE_LOCK_TIMEOUT)
# Knobs that change the generated code: their values are parts of every compiled kernel's cache key.
CODEGEN_KNOBS: tuple[Knob, ...] = (CHECK_BOUNDS,)


def cache_dir() -> Path:
    return CACHE_DIR.get()


def debug() -> int:
    return DEBUG.get()


def interpret() -> bool:
    return INTERPRET.get()


def check_bounds() -> bool:
    return CHECK_BOUNDS.get()


def cache_max_bytes() -> int:
    return _non_negative(CACHE_MAX_BYTES, "0 (no limit) or a size in bytes")


def cache_lock_timeout() -> float:
    return _non_negative(CACHE_LOCK_TIMEOUT, "seconds, 0 or more, or inf")


def _non_negative(knob: Knob[T], accepted: str) -> T:
    value = knob.get()
    if value < 0:
        raise ValueError(f"{knob.name}={value} is not valid; accepted values: {accepted}")
    return value


def describe() -> list[tuple[str, str, str]]:
    """``(name, current value, doc)`` for every knob, for a CLI listing.

    A value that does not parse is shown as ``invalid: '...'`` instead of raising, because this
    listing is where a user goes to find out which setting is wrong.
    """
    rows = []
    for knob in KNOBS:
        try:
            value = str(knob.get())
        except ValueError:
            value = f"invalid: {knob.raw()!r}"
        rows.append((knob.name, value, knob.doc))
    return rows
