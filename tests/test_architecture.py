"""The house rules, read from the sources: the engine alone changes its state and makes
verdicts; adapters import nothing above the error table, the statement record and the
hosts' roles; no import loop."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilient_dbapi.engine import Engine

PACKAGE = Path(__file__).resolve().parent.parent / "resilient_dbapi"
_MUTATORS = frozenset({"add", "update", "clear", "pop", "discard", "append", "extend", "remove"})
_MUTATORS |= {"setdefault", "popitem", "insert", "__setitem__", "__delitem__"}


ROOT = PACKAGE.parent
HARNESS = ROOT / "tests" / "fault_matrix"


def _modules(package: Path = PACKAGE) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(package.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        yield name.removesuffix(".__init__"), ast.parse(path.read_text(), str(path))


def _is_engine(node: ast.expr) -> bool:
    """``engine``, ``_engine`` or ``<anything>._engine``: a reference to an engine."""
    if isinstance(node, ast.Name):
        return node.id in ("engine", "_engine")
    return isinstance(node, ast.Attribute) and node.attr == "_engine"


def _engine_field(node: ast.expr) -> bool:
    """``<engine>.<field>``, or an item of one."""
    while isinstance(node, ast.Subscript):
        node = node.value
    return isinstance(node, ast.Attribute) and _is_engine(node.value)


def _edits(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
            while any(isinstance(t, ast.Tuple | ast.List | ast.Starred) for t in targets):
                targets = [
                    part
                    for t in targets
                    for part in (
                        t.elts
                        if isinstance(t, ast.Tuple | ast.List)
                        else [t.value]
                        if isinstance(t, ast.Starred)
                        else [t]
                    )
                ]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            if isinstance(target, ast.Attribute | ast.Subscript) and _engine_field(target):
                yield node.lineno, f"assigns {ast.unparse(target)}"
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MUTATORS
            and _engine_field(node.func.value)
        ):
            yield node.lineno, f"mutates {ast.unparse(node.func.value)}"
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "Verdict"
        ):
            yield node.lineno, f"makes a verdict: {ast.unparse(node)}"


def test_the_checker_sees_each_kind_of_edit() -> None:
    code = """
engine.lost = True
self._engine.txn_writes = x
conn._engine.unrestorable.add("t")
engine.journal["k"] = 1
a, engine.tls = 1, 2
engine.last_used += 1
verdict = Verdict.OUTCOME_UNKNOWN
engine.done(s, True, True, 1.0)
x = engine.lost
"""
    found = [what for _, what in _edits(ast.parse(code))]
    assert len(found) == 7, found


def test_only_the_engine_changes_engine_state_or_makes_verdicts() -> None:
    found = [
        f"{name}:{line}: {what}"
        for name, tree in _modules()
        if name != "resilient_dbapi.engine"
        for line, what in _edits(tree)
    ]
    assert found == []


def test_engine_fields_are_all_slots() -> None:
    # The checker names fields by reference; every engine field is a declared slot, so
    # none can appear on an engine from outside (an assignment would raise).
    engine = Engine([], __import__("resilient_dbapi").MYSQL_ERRORS)
    with pytest.raises(AttributeError):
        engine.made_up_field = 1  # type: ignore[attr-defined]


def _imports(name: str, tree: ast.Module) -> Iterator[tuple[str, int]]:
    """The package modules ``name`` imports, at import time or later inside a function
    (not those under ``if TYPE_CHECKING:``, which only the type checker follows)."""
    is_package = (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()
    package = name if is_package else name.rsplit(".", 1)[0]

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                for other in child.orelse:
                    yield other
                    yield from walk(other)
                continue
            yield child
            yield from walk(child)

    for stmt in walk(tree):
        if isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                base = package.split(".")
                base = base[: len(base) - stmt.level + 1]
                module = ".".join([*base, *([stmt.module] if stmt.module else [])])
            else:
                module = stmt.module or ""
            if not module.startswith(("resilient_dbapi", "tests")):
                continue
            yield module, stmt.lineno
            for alias in stmt.names:  # `from . import events` imports a submodule
                sub = f"{module}.{alias.name}"
                if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists():
                    yield sub, stmt.lineno
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name.startswith(("resilient_dbapi", "tests")):
                    yield alias.name, stmt.lineno


def _graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    return {name: {m for m, _ in _imports(name, tree)} - {name} for name, tree in _modules(package)}


def test_adapters_import_nothing_above_the_error_table_and_the_statement_record() -> None:
    # Each allowed module is a leaf: it imports nothing of ours (``hosts`` for Role).
    allowed = {
        "resilient_dbapi.error_kinds",
        "resilient_dbapi.statements",
        "resilient_dbapi.errors",
        "resilient_dbapi.hosts",
    }
    found = {
        f"{name} imports {target}"
        for name, targets in _graph().items()
        if name.startswith("resilient_dbapi.adapters")
        for target in targets
        if not target.startswith("resilient_dbapi.adapters") and target not in allowed
    }
    assert found == set()


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    done: set[str] = set()
    loops: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            loops.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, [*path, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])
    return loops


def test_the_loop_finder_finds_a_loop() -> None:
    assert _loops({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _loops({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


@pytest.mark.parametrize("package", [PACKAGE, HARNESS], ids=["library", "fault_matrix"])
def test_no_import_loop(package: Path) -> None:
    graph = _graph(package)
    # A submodule importing its own package's __init__ is how Python packages work: the
    # package is already being imported, and that edge is no loop.
    for name, targets in graph.items():
        targets.discard(name.rsplit(".", 1)[0])
    assert _loops(graph) == []


def test_the_runtime_package_never_imports_the_test_harness() -> None:
    found = {
        f"{name} imports {target}"
        for name, targets in _graph().items()
        if not name.startswith("resilient_dbapi.testing")
        for target in targets
        if target.startswith(("resilient_dbapi.testing", "tests"))
    }
    assert found == set()
