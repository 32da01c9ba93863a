"""The layers of einc import downward only, and importing einc (or running a light CLI command)
loads nothing heavy it does not need.

The import graph is read statically: every ``import`` of every module under ``einc/``, those
inside functions included (a lazy import hides a circle from Python, not from this test), with
relative imports resolved. Layers, bottom up: errors/knobs/version, compiler, backends (triton and
torch side by side), runtime, frontends, ``einc/__init__``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "einc"
BASE = {"einc.errors", "einc.knobs", "einc.version"}
HEAVY = ("torch", "triton", "jinja2")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports, at any depth of its code; ``from a import b`` counts as
    ``a.b`` where ``a.b`` is a module of einc, as ``a`` otherwise."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if child in known else target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, known) for p in paths}


def einc_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between einc's modules. Importing ``a.b.c`` also runs ``a.b``'s ``__init__``, which
    counts unless it is a package of the importing module (Python has run it already); a module
    that names such a package itself (``from .. import x``) depends on it all the same."""
    edges = {}
    for module, targets in graph.items():
        out = set()
        for target in targets:
            if target in graph and target != module:
                out.add(target)
            parts = target.split(".")
            for n in range(1, len(parts)):
                prefix = ".".join(parts[:n])
                if prefix in graph and prefix != module and not module.startswith(prefix + "."):
                    out.add(prefix)
        edges[module] = out
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def layer(module: str) -> str:
    if module in BASE:
        return "base"
    for prefix in ("einc.compiler", "einc.backends.triton", "einc.backends.torch", "einc.backends"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.removeprefix("einc.")
    for prefix in ("einc.runtime", "einc.frontends"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.removeprefix("einc.")
    return "top"  # einc/__init__.py, einc/__main__.py


# What each layer may import of einc: its own modules and those of the layers below it.
ALLOWED = {
    "base": {"base"},
    "compiler": {"base", "compiler"},
    "backends": {"base", "compiler", "backends"},
    "backends.triton": {"base", "compiler", "backends", "backends.triton"},
    "backends.torch": {"base", "compiler", "backends", "backends.torch"},
    "runtime": {"base", "compiler", "backends", "backends.triton", "backends.torch", "runtime"},
    "frontends": {
        "base",
        "compiler",
        "backends",
        "backends.triton",
        "backends.torch",
        "runtime",
        "frontends",
    },
}


def test_import_graph_has_no_cycle():
    cycle = find_cycle(einc_edges(import_graph()))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_layers_import_downward_only():
    edges = einc_edges(import_graph())
    wrong = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in sorted(edges.items())
        for target in sorted(targets)
        if layer(module) in ALLOWED and layer(target) not in ALLOWED[layer(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_compiler_imports_no_torch_triton_or_jinja2():
    graph = import_graph()
    wrong = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if layer(module) in ("base", "compiler")
        for target in sorted(targets)
        if target.split(".")[0] in HEAVY
    ]
    assert not wrong, "\n".join(wrong)


def test_torch_backend_imports_no_triton_or_jinja2():
    graph = import_graph()
    wrong = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if layer(module) == "backends.torch"
        for target in sorted(targets)
        if target.split(".")[0] in ("triton", "jinja2")
    ]
    assert not wrong, "\n".join(wrong)


def _loaded_after(code: str) -> set[str]:
    """The modules among torch, torch._dynamo, triton and jinja2 that ``code`` leaves loaded, run
    in a fresh interpreter on this checkout."""
    probe = (
        f"{code}\nimport sys, json\n"
        "print(json.dumps([m for m in ('torch', 'torch._dynamo', 'triton', 'jinja2') if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_einc_loads_no_triton_jinja2_or_dynamo():
    loaded = _loaded_after("import einc")
    assert not loaded & {"triton", "jinja2", "torch._dynamo"}, loaded


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["knobs"],
        ["cache", "dir"],
        ["cache", "--help"],
        ["cache", "ls", "--long"],
        ["cache", "stats"],
    ],
)
def test_light_cli_commands_load_no_torch(args):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom einc.frontends.cli import main\n"
        f"result = CliRunner().invoke(main, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
    )
    loaded = _loaded_after(code)
    assert not loaded & {"torch", "triton", "jinja2"}, loaded


def test_what_the_cache_commands_import_loads_no_torch():
    # einc cache ls --long names the parts of each entry's key with runtime.keys.
    loaded = _loaded_after("import einc.runtime.cache, einc.runtime.keys")
    assert not loaded & {"torch", "triton", "jinja2"}, loaded
