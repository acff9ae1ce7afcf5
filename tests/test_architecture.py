"""The package's layering: runtime imports form no cycle, and the core imports no integration.

Read from the source with ``ast``, so that an import inside a function counts as much as one
at the top of a module; only imports under ``if TYPE_CHECKING:`` are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "crossprefetch"

#: The data path: specs, plans, groups, the fetch chain and the engine that runs them.
CORE = ["crossprefetch.engine", "crossprefetch._fetch"]
INTEGRATIONS = ("rest_framework", "pytest", "_pytest", "debug_toolbar", "drf_spectacular")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _runtime_imports(child)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def _imports(module: str) -> set[str]:
    """Every module, in the package or not, that ``module`` imports at run time."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{base}" if base else anchor
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            found.add(candidate if candidate in MODULES else base)
    return found


def _internal(imported: set[str]) -> set[str]:
    """Package modules only; importing ``a.b.c`` also runs ``a.b``'s ``__init__``."""
    result: set[str] = set()
    for name in imported:
        parts = name.split(".")
        for i in range(2, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in MODULES:
                result.add(prefix)
    return result


GRAPH = {module: _internal(_imports(module)) - {module} for module in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(GRAPH[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [m for m in MODULES if any(m == r or m.startswith(f"{r}.") for r in roots)]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(GRAPH[module])
    return seen


def test_the_graph_is_read() -> None:
    assert "crossprefetch.engine" in MODULES
    assert "crossprefetch._fetch" in MODULES
    assert "crossprefetch.spec" in GRAPH["crossprefetch.engine"]


def test_no_import_cycle() -> None:
    assert _cycles() == []


def test_a_cycle_is_found() -> None:
    """The check itself: a cycle added to the graph is reported."""
    GRAPH["crossprefetch.spec"].add("crossprefetch.engine")
    try:
        assert any({"crossprefetch.engine", "crossprefetch.spec"} <= set(c) for c in _cycles())
    finally:
        GRAPH["crossprefetch.spec"].discard("crossprefetch.engine")


@pytest.mark.parametrize("integration", INTEGRATIONS)
def test_the_core_imports_no_integration(integration: str) -> None:
    offenders = {
        module
        for module in _closure(CORE)
        if any(
            name == integration or name.startswith(f"{integration}.") for name in _imports(module)
        )
    }
    assert offenders == set()


def test_a_deprecation_warning_from_crossprefetch_code_fails_the_run() -> None:
    """pyproject.toml turns deprecation warnings attributed to crossprefetch's modules into
    errors, so a Django or DRF API it still calls fails the newest-Django run the day it is
    deprecated; the same warning from another package stays a warning."""
    import warnings

    code = compile("warnings.warn('old API', DeprecationWarning)", "<deprecated call>", "exec")
    with pytest.raises(DeprecationWarning, match="old API"):
        exec(code, {"warnings": warnings, "__name__": "crossprefetch._keys.sql"})
    with pytest.warns(DeprecationWarning, match="old API"):
        exec(code, {"warnings": warnings, "__name__": "somebody_else"})
