"""The house's import rules (ARCHITECTURE rule 7), read from the source, not by importing:
no import circle among qure's modules, and `qure/core/` imports no domain.

Every import counts, at module level and inside functions alike: a function-level
import is a dependency all the same, only a hidden one.
"""

from __future__ import annotations

import ast
from pathlib import Path

QURE = Path(__file__).resolve().parents[2] / "qure"
# Core stands on the ground floor only: the extension objects (db, redis, mongo), which
# import nothing of qure. The app factory (`qure`), `qure.cli` and `qure.demo` stand above
# every domain, so core may not import them either.
CORE_MAY_IMPORT = ("qure.core", "qure.extensions")


def _module_name(path: Path) -> str:
    parts = path.relative_to(QURE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(QURE.rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The qure modules that `path` imports anywhere in its body. `from a import b` is an
    import of the module `a.b` when that is a module, else of `a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def _loop(graph: dict[str, set[str]], circle: list[str]) -> str:
    """One shortest loop through the circle's first module, as `a -> b -> a`."""
    members, start = set(circle), circle[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return " -> ".join([*paths[node], start])
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    return start


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    """The rules below are only as good as the walker: it must see an import hidden in
    a function, `from package import module`, and a relative import."""
    room = tmp_path / "room.py"
    room.write_text(
        "from qure.core import audit\n"
        "def later():\n"
        "    from qure.queue.service import close_day\n"
        "    from . import store\n"
    )
    known = {"qure.core", "qure.core.audit", "qure.queue.service", "qure.queue.store"}
    assert _imports(room, "qure.queue.room", known) == {
        "qure.core.audit",
        "qure.queue.service",
        "qure.queue.store",
    }
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]
    assert _loop(graph, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_no_import_circle_among_qure_modules():
    graph = _graph()
    assert len(graph) > 50, "the walker found too few modules"
    circles = _circles(graph)
    described = [f"{len(c)} modules, for example {_loop(graph, c)}" for c in circles]
    assert circles == [], "import circles: " + " | ".join(described)


def test_core_imports_no_domain():
    graph = _graph()
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module == "qure.core" or module.startswith("qure.core.")
        for target in targets
        if not any(target == ok or target.startswith(ok + ".") for ok in CORE_MAY_IMPORT)
    )
    assert wrong == []


def test_the_ground_floor_imports_nothing_of_qure_above_it():
    """core stands on `qure.extensions`; it and the settings import no qure module that
    could import core back."""
    graph = _graph()
    assert graph["qure.extensions"] == set()
    assert graph["qure.config"] == set()
