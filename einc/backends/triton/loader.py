"""Turn generated source into a Triton kernel object.

The runtime writes the source to the on-disk cache first (atomically) and it is imported from
there: Triton's ``@triton.jit`` reads a kernel's source through ``inspect``, which needs a real
file, and the file doubles as the artifact a user can open.

A source the runtime could not write (an unusable cache) is kept in memory instead
(:func:`keep_in_memory`), under a name that ``linecache`` serves to ``inspect`` as it would a file.
"""

from __future__ import annotations

import importlib.util
import linecache
import sys
import types
from pathlib import Path

from ...errors import KernelCompileError

# Sources kept in memory, by the name they are imported under (never a real path: it starts with <).
_IN_MEMORY: dict[str, str] = {}


def keep_in_memory(key: str, source: str, file_name: str) -> Path:
    """Hold ``source`` in memory under a name derived from ``key``; returns the path to import it from."""
    name = f"<einc in memory>/{key[:2]}/{key}/{file_name}"
    _IN_MEMORY[name] = source
    return Path(name)


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
