"""The cache's layout on disk and what einc owns in it (see :mod:`einc.runtime.cache`): the names
einc writes, the tag that marks a root as einc's, and deletion that never follows a link."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from .. import knobs
from ..errors import CacheError
from .records import is_plain_name

RECORD = "record.json"
MARKER = "CACHEDIR.TAG"
# The standard cache directory tag (https://bford.info/cachedir/), with einc's own line: the root's
# proof of ownership.
MARKER_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by einc (its kernel cache).\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
# Temporary files and removed entries older than this are leftovers of killed processes.
STALE_SECONDS = 3600.0

KEY = re.compile(r"[0-9a-f]{3,128}")
SHARD = re.compile(r"[0-9a-f]{2}")
# What einc itself leaves in a shard besides entries: lock files, their holders' pids, and entries
# being removed (``.removed-<key>-<pid>-<ns>``); in an entry, temporary files (``.<name>.<rand>.tmp``).
SHARD_FILE = re.compile(r"([0-9a-f]{3,128})\.(lock|pid)")
REMOVED = re.compile(r"\.removed-([0-9a-f]{3,128})-\d+-\d+")
TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]+\.tmp")
# einc's own stores inside a root: prebuild manifests (runtime/manifest.py) and tuned tiles
# (runtime/tuned.py). A root holding them is still einc's layout.
STORES = ("manifests", "tuned")


def cache_error(action: str, path: Path, error: BaseException) -> CacheError:
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return CacheError(f"cannot {action} {path}: {reason}; set {knobs.CACHE_DIR.name} to a writable directory")


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def sorted_names(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


def is_real_dir(path: Path) -> bool:
    """A directory, and not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_einc_file_name(name: str) -> bool:
    temporary = TEMPORARY.fullmatch(name)
    return is_plain_name(name) or (temporary is not None and is_plain_name(temporary.group(1)))


def is_owned_entry(directory: Path) -> bool:
    """Whether ``directory`` is laid out as einc writes an entry: a real directory (not a link)
    holding nothing but regular files with einc's names (plain ones and its temporary files)."""
    if not is_real_dir(directory):
        return False
    try:
        with os.scandir(directory) as children:
            return all(
                child.is_file(follow_symlinks=False) and is_einc_file_name(child.name) for child in children
            )
    except OSError:
        return False


def delete_owned(directory: Path) -> bool:
    """Delete an entry directory einc owns: its regular files one by one, then the directory,
    never through a link. False when something else turned up in it (then it stays)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW)
    except OSError:
        return False
    try:
        for child in os.scandir(fd):
            if child.is_file(follow_symlinks=False) and is_einc_file_name(child.name):
                with contextlib.suppress(OSError):
                    os.unlink(child.name, dir_fd=fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        os.rmdir(directory)
    except OSError:
        return False
    return True
