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


# Private names of other packages ------------------------------------------------------------

#: The one module allowed to touch them (each use with a line on what breaks if it changes).
COMPAT = "crossprefetch._compat"
#: Underscored names that Django documents as public API, and Python's own.
PUBLIC_UNDERSCORED = frozenset(
    {"_meta", "_default_manager", "_base_manager", "_getframe", "_asdict", "_replace", "_fields"}
)
#: Names without an underscore that belong to Django's internals all the same.
INTERNAL = frozenset(
    {
        "alias_map",
        "alias_refcount",
        "atomic_blocks",
        "execute_wrappers",
        "run_on_commit",
        "get_compiler",
        "get_initial_alias",
        "sql_with_params",
        "ModelIterable",
        "ValuesListIterable",
        "FlatValuesListIterable",
        "NamedValuesListIterable",
    }
)


def _own_names(trees: dict[str, ast.AST]) -> set[str]:
    """Names crossprefetch defines itself (functions, classes, attributes it sets, slots)."""
    names: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.alias) and node.name.startswith("crossprefetch"):
                names.add(node.asname or node.name.rpartition(".")[2])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "crossprefetch"
            ):
                names.update(alias.asname or alias.name for alias in node.names)
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith("_crossprefetch")
            ):
                names.add(node.value)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
            ):
                names.update(
                    c.value
                    for c in ast.walk(node.value)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                )
    return names


def _private_uses(tree: ast.AST, own: set[str]) -> Iterator[tuple[int, str]]:
    """``(line, name)`` of each private name of another package that ``tree`` uses."""

    def foreign_private(name: str) -> bool:
        return (
            name.startswith("_")
            and not name.startswith("__")
            and name not in PUBLIC_UNDERSCORED
            and name not in own
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
                continue
            if foreign_private(node.attr) or node.attr in INTERNAL:
                yield node.lineno, node.attr
        elif isinstance(node, ast.ImportFrom) and not (node.module or "").startswith(
            "crossprefetch"
        ):
            for alias in node.names:
                if foreign_private(alias.name) or alias.name in INTERNAL:
                    yield node.lineno, f"{node.module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr", "setattr"}
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and foreign_private(node.args[1].value)
        ):
            yield node.lineno, node.args[1].value
        elif isinstance(node, ast.Compare) and any(
            isinstance(part, ast.Attribute) and part.attr == "co_name"
            for part in [node.left, *node.comparators]
        ):
            yield node.lineno, "a frame matched by its function's name"


TREES = {module: ast.parse(path.read_text(), str(path)) for module, path in MODULES.items()}
OWN_NAMES = _own_names(TREES)


def test_private_names_of_other_packages_only_in_the_compat_module() -> None:
    offenders = [
        f"{module}:{line}: {name}"
        for module, tree in sorted(TREES.items())
        if module != COMPAT
        for line, name in _private_uses(tree, OWN_NAMES)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "source",
    [
        "queryset._iterable_class",
        "getattr(match, '_func_path', None)",
        "query.alias_map[alias] = join",
        "from django.test.utils import _TestState",
        "frame.f_code.co_name == 'connect'",
        "connection.execute_wrappers.append(wrapper)",
    ],
)
def test_a_private_name_is_found(source: str) -> None:
    """The check itself: each way of reaching a private name is reported."""
    assert list(_private_uses(ast.parse(source), OWN_NAMES))


def test_our_own_and_documented_names_are_not_reported() -> None:
    source = "model._meta.label; Model._default_manager.all(); plan._normalize; sys._getframe(1)"
    tree = ast.parse(source)
    assert list(_private_uses(tree, {"_normalize"})) == []


def test_every_compat_function_says_what_breaks() -> None:
    tree = TREES[COMPAT]
    functions = [n for n in ast.iter_child_nodes(tree) if isinstance(n, ast.FunctionDef)]
    assert functions
    assert [f.name for f in functions if "Breaks if" not in (ast.get_docstring(f) or "")] == []


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
