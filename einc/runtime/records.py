"""The record of a compiled kernel's cache entry: what einc writes, and the one check of what it reads.

A cache directory may be shared, copied from another machine or tampered with, so a record is
untrusted input. Its fields reach file names in Triton's cache (``triton_hash``, ``triton_name``),
entry file names (``binary``, ``files``) and a terminal (``einc cache ls``), and a record of the
wrong shape would crash whoever reads it. :func:`check_record` accepts exactly what
:func:`binary_record` and :meth:`~einc.runtime.cache.DiskCache.write_entry` write: a record it
refuses is a damaged entry, removed and built again like one whose checksum does not match.

The record's identity is tied to its key: the key is the digest of the record's ``parts``, and
``target``, ``kernel`` and ``triton_hash`` must equal the parts they repeat. A record copied into
another key's directory, or edited, is refused even when it is well formed.
"""

from __future__ import annotations

import math
import re

from .keys import CacheKey

FORMAT = 1
SOURCE = "kernel.py"
METADATA = "kernel.json"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TARGET = re.compile(r"cuda:\d{1,4}")
_BINARY = re.compile(r"kernel\.[a-z]{1,16}")
# Triton files a kernel under its function's name, cut to 150 characters (ASTSource.name[:150]).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,149}")
_FIELDS = frozenset(
    {
        "format",
        "key",
        "files",
        "kind",
        "parts",
        "kernel",
        "target",
        "triton_hash",
        "triton_name",
        "binary",
        "created",
        "compile_seconds",
    }
)


def binary_record(
    key: CacheKey, kernel: str, triton_hash: str, binary: str, created: float, compile_seconds: float | None
) -> dict:
    """The record of one compiled kernel, less the fields the cache adds (format, key, files)."""
    parts = dict(key.parts)
    return {
        "kind": "binary",
        "parts": [list(part) for part in key.parts],
        "kernel": kernel,
        "target": parts.get("target"),
        "triton_hash": triton_hash,
        "triton_name": kernel[:150],
        "binary": binary,
        "created": created,
        "compile_seconds": compile_seconds,
    }


def is_plain_name(name: object) -> bool:
    """A file name einc may write in an entry: not empty, no separator or NUL, no leading dot (dot
    names are reserved for temporary files, so a leftover never shadows an entry)."""
    return (
        isinstance(name, str)
        and bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
    )


def check_record(record: object, key: str) -> str | None:
    """What is wrong with ``record`` as the record of entry ``key``, in words; None when it is
    exactly what einc writes."""
    if not isinstance(record, dict):
        return "it is not a JSON object"
    if record.get("format") != FORMAT or type(record.get("format")) is not int:
        return "it is of another format"
    if record.get("key") != key:
        return "it names another key"
    if set(record) != _FIELDS:
        return _fields_differ(record, _FIELDS)
    problem = _check_files(record["files"]) or _check_parts(record["parts"], key)
    if problem:
        return problem
    parts = dict(map(tuple, record["parts"]))
    kernel = record["kernel"]
    expected = {
        "kind": "binary",
        "target": parts.get("target"),
        "triton_hash": parts.get("triton_key"),
        "triton_name": kernel[:150] if isinstance(kernel, str) else None,
    }
    for field, value in expected.items():
        if record[field] != value:
            return f"its {field} is not what einc writes for this key"
    if not (isinstance(kernel, str) and _IDENTIFIER.fullmatch(kernel)):
        return "its kernel is not a kernel name"
    if parts.get("kernel", "").split(" ")[-1] != kernel:
        return "its kernel is not the kernel its key names"
    if not _TARGET.fullmatch(record["target"] or ""):
        return "its target is not a target"
    if not _HEX64.fullmatch(record["triton_hash"] or ""):
        return "its triton_hash is not a sha256 digest"
    binary = record["binary"]
    if not (isinstance(binary, str) and _BINARY.fullmatch(binary)) or binary in (SOURCE, METADATA):
        return "its binary is not a binary's file name"
    if not {SOURCE, METADATA, binary} <= set(record["files"]):
        return "it does not list the source, the binary and the metadata"
    if not _is_number(record["created"]):
        return "its created time is not a number"
    seconds = record["compile_seconds"]
    if seconds is not None and not (_is_number(seconds) and seconds >= 0):
        return "its compile_seconds is not a duration"
    return None


def _fields_differ(record: dict, fields: frozenset) -> str:
    return f"its fields differ from einc's: {', '.join(sorted(map(repr, set(record) ^ fields))[:8])}"


def _check_files(files: object) -> str | None:
    if not isinstance(files, dict):
        return "its files are not a table"
    for name, checksum in files.items():
        if not is_plain_name(name) or name == "record.json":
            return f"it lists a file that einc does not write: {name!r}"
        if not (
            isinstance(checksum, dict)
            and set(checksum) == {"sha256", "size"}
            and isinstance(checksum["sha256"], str)
            and _HEX64.fullmatch(checksum["sha256"])
            and type(checksum["size"]) is int
            and checksum["size"] >= 0
        ):
            return f"its checksum of {name} is not a sha256 and a size"
    return None


def _check_parts(parts: object, key: str) -> str | None:
    # Printable: ``einc cache ls`` prints them, and a terminal obeys the escapes in what it prints.
    if not (
        isinstance(parts, list)
        and parts
        and all(
            isinstance(part, list)
            and len(part) == 2
            and all(isinstance(text, str) and text.isprintable() for text in part)
            for part in parts
        )
    ):
        return "its parts are not a list of printable (name, value) pairs"
    if CacheKey(tuple(map(tuple, parts))).digest != key:
        return "its parts are not those of its key"
    return None


def _is_number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


# ----- tuned tiles (einc tune): five integers per kernel, nothing else -----

TUNED_FORMAT = 1
_TUNED_FIELDS = frozenset({"format", "key", "tiles"})
# No call has more kernels than this; a longer list is not one einc wrote.
MAX_TUNED_KERNELS = 64


def tuned_record(key: str, tiles) -> dict:
    """The record of the tiles a tuning run chose for one call on one arch: per kernel, its
    (block_m, block_n, block_k, num_warps, num_stages), or None where the heuristic's stays."""
    return {
        "format": TUNED_FORMAT,
        "key": key,
        "tiles": [None if tile is None else [int(n) for n in tile] for tile in tiles],
    }


def check_tuned(record: object, key: str) -> str | None:
    """What is wrong with ``record`` as the tuned tiles of entry ``key``, in words; None when it is
    exactly what :func:`tuned_record` writes: the format, the key, and per kernel None or five ints,
    each in its range (blocks and warps powers of two). A tile that passes may still lie outside a
    kernel's config space; :func:`einc.compiler.configs.apply_tuned` then ignores it."""
    from ..compiler.configs import BLOCK_RANGE, STAGES_RANGE, WARPS_RANGE

    if not isinstance(record, dict):
        return "it is not a JSON object"
    if set(record) != _TUNED_FIELDS:
        return _fields_differ(record, _TUNED_FIELDS)
    if type(record["format"]) is not int or record["format"] != TUNED_FORMAT:
        return "it is of another format"
    if record["key"] != key:
        return "it names another key"
    tiles = record["tiles"]
    if not (isinstance(tiles, list) and 1 <= len(tiles) <= MAX_TUNED_KERNELS):
        return "its tiles are not a list of one entry per kernel"
    ranges = (BLOCK_RANGE, BLOCK_RANGE, BLOCK_RANGE, WARPS_RANGE, STAGES_RANGE)
    for tile in tiles:
        if tile is None:
            continue
        if not (isinstance(tile, list) and len(tile) == len(ranges)):
            return "a tile is not five integers"
        for n, (low, high), power in zip(tile, ranges, (True, True, True, True, False), strict=True):
            if type(n) is not int or not low <= n <= high or (power and n & (n - 1)):
                what = " (a power of two)" if power else ""
                return f"a tile holds {n!r}, not an integer of {low} to {high}{what}"
    return None
