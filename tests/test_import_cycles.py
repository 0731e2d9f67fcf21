"""No import cycle anywhere in nursery_core, function-level imports included (HOUSE_STYLE: dependencies point
one way; `jobs/` uses `cloud/`, never the reverse).

Every `import` / `from ... import` statement of every module is read with `ast` (module level, inside
functions, under TYPE_CHECKING alike) and resolved to a module of the package; a package's `__init__` counts
only when it is imported itself (as `from pkg import name` where name is no submodule). A cycle fails the test
with the modules that form it, in import order.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "nursery_core"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__.py)."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, files: dict[str, Path]) -> bool:
    return name in files and files[name].name == "__init__.py"


def imported_modules(name: str, path: Path, files: dict[str, Path]) -> set[str]:
    """The package modules `name` imports anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if _is_package(name, files) else name.rpartition(".")[0]
    found: set[str] = set()

    def nearest(dotted: str) -> str | None:
        while dotted:
            if dotted in files:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    target = nearest(alias.name)
                    if target:
                        found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in files:
                    found.add(sub)
                else:
                    target = nearest(base)
                    if target:
                        found.add(target)
    found.discard(name)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = module_files(root)
    return {name: imported_modules(name, path, files) for name, path in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_one_cycle(graph, set(comp), comp[0]) for comp in sccs]


def _one_cycle(graph: dict[str, set[str]], comp: set[str], start: str) -> list[str]:
    """A shortest path start -> ... -> start inside the component (breadth first)."""
    prev: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in seen:
                    seen.add(w)
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def test_the_cycle_finder_finds_a_function_level_cycle(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "c.py").write_text("import nursery_core.a\n")
    graph = import_graph(tmp_path)
    assert graph["nursery_core.sub.b"] == {"nursery_core.a"}
    assert graph["nursery_core.c"] == {"nursery_core.a"}
    assert find_cycles(graph) == [["nursery_core.a", "nursery_core.sub.b", "nursery_core.a"]]


def test_nursery_core_has_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_cloud_is_transport_and_imports_nothing_of_jobs_store_or_training():
    graph = import_graph()
    job_aware = ("nursery_core.jobs", "nursery_core.store", "nursery_core.training", "nursery_core.status")
    offenders = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("nursery_core.cloud")
                       for t in targets if t.startswith(job_aware))
    assert offenders == []
