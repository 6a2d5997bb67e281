"""The layout holds: no import cycles in studio/, no SQL outside repositories (services and
routes ask repositories and services), no second HTTP stack."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "studio"

# Modules that hold business rules: they call repositories and never build or run SQL.
SERVICE_MODULES = sorted(
    {*ROOT.rglob("service.py"), ROOT / "domains/compliance/projection.py",
     ROOT / "domains/compliance/scoring.py", ROOT / "domains/evidence/workflow.py",
     ROOT / "ai/consumers.py", ROOT / "documents/processor.py"}
)
# The HTTP layer: it calls services only.
HTTP_MODULES = sorted(
    {*ROOT.rglob("routes.py"), *(ROOT / "web").glob("*.py"), *(ROOT / "http").glob("*.py"),
     *(ROOT / "gateway").glob("*.py")}
)
# What a service may take from SQLAlchemy: connection and row types for its signatures,
# and the driver's errors it turns into answers (a duplicate is a 409).
ALLOWED_SQLALCHEMY = {"sqlalchemy.engine", "sqlalchemy.exc"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports at run time (in functions too; not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_studio_has_no_import_cycles() -> None:
    modules = {module_name(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    graph = {name: sorted(m for m in imports_of(path) if m in modules and m != name)
             for name, path in modules.items()}
    # Tarjan's strongly connected components: any with two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert cycles == [], f"import cycles: {cycles}"


@pytest.mark.parametrize("path", SERVICE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_services_hold_no_sql(path: Path) -> None:
    sqlalchemy = {m for m in imports_of(path) if m == "sqlalchemy" or m.startswith("sqlalchemy.")}
    builders = {m for m in sqlalchemy if not any(m == a or m.startswith(a + ".") for a in ALLOWED_SQLALCHEMY)}
    assert builders == set(), f"{path.name} builds SQL; move the query into a repository"
    calls = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Attribute) and node.attr in {"execute", "exec_driver_sql", "scalar"}]
    assert calls == [], f"{path.name} runs statements on lines {calls}; a repository should"


@pytest.mark.parametrize("path", HTTP_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_http_layer_calls_services_not_repositories(path: Path) -> None:
    reached = {m for m in imports_of(path)
               if m.startswith("sqlalchemy") or m.endswith(".repository") or ".repository." in m
               or m.endswith(".models") or ".models." in m or m.startswith("studio.db")}
    assert reached == set(), f"{path.name} reaches below the services: {sorted(reached)}"


def test_one_dispatch_path() -> None:
    gone = ["direct_routes.py", "wire.py", "compiled.py"]
    assert [name for name in gone if list(ROOT.rglob(name))] == []
