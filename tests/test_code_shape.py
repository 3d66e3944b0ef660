"""The package stays a house a newcomer can live in: no class over 300 lines, no function over
80, no module over 600 (issue #25). Measured with ``ast`` over every module of mirror_cli."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import mirror_cli

ROOT = Path(mirror_cli.__file__).parent
MAX_CLASS, MAX_FUNCTION, MAX_MODULE = 300, 80, 600

# Rooms still being opened up, each with the issue item that shrinks it. Remove an entry the day
# it is fixed (``oversized()`` lists what is still over); a new entry needs the lead's word.
PENDING: dict[str, str] = {}


def _span(node: ast.AST) -> int:
    return int(getattr(node, "end_lineno", 0)) - int(getattr(node, "lineno", 0)) + 1


def oversized() -> dict[str, int]:
    """Every module, class and function over its limit, with its length in lines."""
    found: dict[str, int] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE:
            found[f"module {rel}"] = len(text.splitlines())
        for node in ast.walk(ast.parse(text, rel)):
            if isinstance(node, ast.ClassDef) and _span(node) > MAX_CLASS:
                found[f"class {rel}:{node.name}"] = _span(node)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _span(node) > MAX_FUNCTION:
                found[f"function {rel}:{node.name}"] = _span(node)
    return found


def test_no_class_function_or_module_over_its_limit():
    over = {k: n for k, n in oversized().items() if k not in PENDING}
    assert over == {}, f"over the limits (class {MAX_CLASS}, function {MAX_FUNCTION}, module {MAX_MODULE}): {over}"


def test_the_measure_sees_an_oversized_function(tmp_path, monkeypatch):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION + 1))
    (tmp_path / "big.py").write_text(f"def big():\n{body}\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert oversized() == {"function big.py:big": MAX_FUNCTION + 2}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
    return [base, *(f"{base}.{a.name}" for a in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Which of our modules each module imports, at import time or lazily inside a function;
    imports under ``if TYPE_CHECKING`` do not run and do not count, nor does a module's own
    package (always imported before it)."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {
            id(n)
            for branch in ast.walk(tree)
            if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
            for stmt in branch.body
            for n in ast.walk(stmt)
        }
        graph[module] = {
            name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped
            for name in _imported(module, path.name == "__init__.py", node)
            if name in paths and name != module and not module.startswith(name + ".")
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_so_no_import_points_up():
    """Without a cycle the modules stand on floors, each importing only from floors below."""
    graph = import_graph()
    assert {"mirror_cli.wiring", "mirror_cli.usecases.runs"} <= graph["mirror_cli.core"]  # the graph sees imports
    assert cycles(graph) == []
    assert not any(m.startswith(("mirror_cli.core", "mirror_cli.usecases")) for m in graph["mirror_cli.wiring"])


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
