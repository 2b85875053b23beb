"""No import cycle in ``anytouch/``: the module-level import graph of the package (read with ``ast``, nothing is
imported) has no strongly connected component of more than one module.

Imports inside functions are left out: they are allowed for start-up time or an optional dependency, with a comment
saying so. ``from pkg import sub`` counts as an edge to the submodule ``pkg.sub``; ``from pkg import name`` as an
edge to ``pkg`` itself.
"""
import ast
import pathlib
from typing import Dict, List, Set

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def module_graph(root: pathlib.Path, package: str) -> Dict[str, Set[str]]:
    """``{module: modules it imports at module level}`` for every module of ``package`` under ``root``."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    graph = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - node.level + 1] + ([node.module] if node.module else [])
                    target = ".".join(base)
                else:
                    target = node.module
                subs = [f"{target}.{a.name}" for a in node.names]
                edges.update(s for s in subs if s in files)
                if any(s not in files for s in subs):
                    edges.add(target)
        graph[mod] = {e for e in edges if e in files and e != mod}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_checker_finds_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import c\n\n\ndef f():\n    from ..a import x  # a late import\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = module_graph(tmp_path, "pkg")
    assert graph["pkg.sub.b"] == {"pkg.c"}  # the import inside f() is not an edge
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (pkg / "c.py").write_text("X = 1\n")
    assert cycles(module_graph(tmp_path, "pkg")) == []


@pytest.mark.parametrize("package", ["anytouch"])
def test_no_import_cycle(package):
    graph = module_graph(ROOT, package)
    assert len(graph) > 50 and "anytouch.data.registry" in graph
    assert cycles(graph) == [], "import cycles (module-level imports) in anytouch/"
    # the data package is layered: the declarations never reach the registry built from them
    assert "anytouch.data.registry" not in graph["anytouch.data.tag"]


def function_level_imports(root: pathlib.Path, package: str):
    """``(file, line, source)`` of every import inside a function of ``package`` with no comment saying why: none
    on the import's own line or on the three lines above it (above the first line, for a run of imports)."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                k = node.lineno - 1
                while k > 0 and lines[k - 1].strip().startswith(("import ", "from ")):
                    k -= 1  # a run of imports shares the comment above its first line
                context = lines[max(0, k - 3):k] + lines[k:node.lineno]
                if not any("#" in line for line in context):
                    found.append((str(path.relative_to(root)), node.lineno, lines[node.lineno - 1].strip()))
    return found


def test_every_import_inside_a_function_says_why():
    """Issue 10: an import inside a function is there for start-up time or an optional dependency, and says so."""
    bare = function_level_imports(ROOT, "anytouch")
    assert not bare, "imports inside functions without a comment saying why:\n" + "\n".join(
        f"  {f}:{n}: {src}" for f, n, src in bare)
