"""The layers hold (docs/architecture.md): SQL only in ``gateway/store``, the store free of FHIR
and HL7, ``fhir`` and ``domain`` free of the store, and no import cycle between modules.

Read from the source with ``ast``, so a test fails on the line that breaks a rule, before any
behaviour does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"

#: SQLAlchemy's statement and expression builders: whoever imports one writes SQL.
STATEMENT_BUILDERS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "text",
        "bindparam",
        "and_",
        "or_",
        "not_",
        "func",
        "exists",
        "case",
        "literal",
        "null",
        "true",
        "false",
        "union",
        "union_all",
    }
)


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(GATEWAY.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic migrations are the store's own history and write DDL by design
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def _imports(tree: ast.AST) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) of every import, wherever it is (function-level ones too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]


def _name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_statement_builders_or_tables_outside_the_store() -> None:
    found = []
    for path, tree in _modules():
        if path.startswith("gateway/store/"):
            continue
        for line, module, names in _imports(tree):
            builders = sorted(STATEMENT_BUILDERS.intersection(names))
            if module.startswith("sqlalchemy") and builders:
                found.append(f"{path}:{line} imports {', '.join(builders)} from {module}")
            if module == "gateway.store.tables" or ("tables" in names and module == "gateway.store"):
                found.append(f"{path}:{line} imports the store's tables")
    assert found == []


@pytest.mark.parametrize("layer", ["gateway/fhir/", "gateway/domain/"])
def test_fhir_and_domain_do_not_import_the_store(layer: str) -> None:
    found = [
        f"{path}:{line} imports {module}"
        for path, tree in _modules()
        if path.startswith(layer)
        for line, module, _ in _imports(tree)
        if module == "gateway.store" or module.startswith("gateway.store.")
    ]
    assert found == []


def test_the_store_imports_neither_fhir_nor_hl7_nor_anything_above_it() -> None:
    above = (
        "gateway.fhir",
        "gateway.journal_adapter",
        "gateway.api",
        "gateway.service",
        "gateway.service.processing",
    )
    found = [
        f"{path}:{line} imports {module}"
        for path, tree in _modules()
        if path.startswith("gateway/store/")
        for line, module, _ in _imports(tree)
        if module.startswith(above)
    ]
    assert found == []


def test_no_import_cycle_between_modules() -> None:
    """Module-level imports only (function-level ones are how a lazy edge is cut on purpose)."""
    trees = dict(_modules())
    names = {_name(path): tree for path, tree in trees.items()}
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, tree in names.items():
        for node in tree.body:
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from package import module`` depends on the module, not on the package
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module
                    for a in node.names
                ]
            graph[name].update(t for t in targets if t in names and t != name)
    cycles = _cycles(graph)
    assert cycles == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative enough here)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


#: The development wiring: the built-in mocks for the demo, the tests and a dev server.
_DEV_WIRING = "gateway/dev.py"


def test_only_the_development_wiring_imports_the_mocks() -> None:
    found = [
        f"{path}:{line} imports {module}"
        for path, tree in _modules()
        if path != _DEV_WIRING
        for line, module, _ in _imports(tree)
        if module == "mocks" or module.startswith("mocks.")
    ]
    assert found == []


def test_the_composition_root_loads_the_development_wiring_only_when_asked() -> None:
    """``bootstrap.py`` names ``gateway.dev`` in one function (the mocks-or-not decision) and for
    type checking; a production start with the mocks off never imports it."""
    tree = ast.parse((GATEWAY / "bootstrap.py").read_text(encoding="utf-8"))
    top_level = [
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway.dev")
    ]
    assert top_level == []
