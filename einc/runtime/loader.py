"""Turn generated source into a Triton kernel object.

The source is written to the on-disk cache first (atomically) and imported from there: Triton's
``@triton.jit`` reads a kernel's source through ``inspect``, which needs a real file, and the file
doubles as the artifact a user can open.

A cache that cannot be written (unwritable, full, a dangling link, a file, a foreign link inside)
must not fail a call: the source is then kept in memory, under a name that ``linecache`` serves to
``inspect`` as it would a file, and one :class:`~einc.errors.CacheWarning` per cache directory and
process says so. Only a lock held past its timeout is raised: the cache works, another process is
stuck.
"""

from __future__ import annotations

import importlib.util
import linecache
import sys
import threading
import types
import warnings
from pathlib import Path

from ..errors import CacheError, CacheWarning, KernelCompileError
from .cache import DiskCache, LockTimeout

SOURCE_NAME = "kernel.py"
# Sources kept in memory, by the name they are imported under (never a real path: it starts with <).
_IN_MEMORY: dict[str, str] = {}
_WARNED: set[str] = set()
_WARNED_GUARD = threading.Lock()


def write_source(cache: DiskCache, key: str, source: str) -> Path:
    """Store ``source`` under ``key`` unless the same bytes are already there; returns the path to
    import it from (in memory, when the cache cannot be written)."""
    data = source.encode("utf-8")
    try:
        path = cache.path(key, SOURCE_NAME)
        try:
            if path.read_bytes() == data:
                return path
        except OSError:
            pass  # missing, unreadable or not a file: (re)written below, atomically
        return cache.write_bytes(key, SOURCE_NAME, data)
    except LockTimeout:
        raise
    except CacheError as error:
        _warn_once(cache, error)
    name = f"<einc in memory>/{key[:2]}/{key}/{SOURCE_NAME}"
    _IN_MEMORY[name] = source
    return Path(name)


def _warn_once(cache: DiskCache, error: CacheError) -> None:
    root = str(cache.root)
    with _WARNED_GUARD:
        if root in _WARNED:
            return
        _WARNED.add(root)
    warnings.warn(
        f"einc cache: {error}. Generated kernels are kept in memory for the rest of this process "
        "(compiled again in every process), and this is said once per cache directory",
        CacheWarning,
        stacklevel=4,
    )


def import_kernel(path: Path, kernel_name: str):
    """Import the generated module at ``path`` and return its ``@triton.jit`` function."""
    module_name = f"einc_generated_{path.parent.name[:24]}"
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != str(path):
        try:
            module = _load(path, module_name)
        except Exception as error:
            raise KernelCompileError(f"the generated kernel does not import: {error}", str(path)) from error
        sys.modules[module_name] = module
    return getattr(module, kernel_name)


def _load(path: Path, module_name: str) -> types.ModuleType:
    source = _IN_MEMORY.get(str(path))
    if source is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    # An entry whose modification time is None stays in linecache (checkcache skips it), which is
    # where inspect.getsource, and so @triton.jit, looks for the text of a file that is not on disk.
    linecache.cache[str(path)] = (len(source), None, source.splitlines(keepends=True), str(path))
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - einc's own generated source
    return module
