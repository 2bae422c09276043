"""The import graph of a package, read with `ast` (nothing is imported or run).

Every `import`/`from` statement counts, at module level or inside a function; relative imports
are resolved. Run it as a script for the numbers: `python tests/import_graph.py [PACKAGE_DIR]`.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    source: str      # importing module, e.g. fabula.train.mix
    target: str      # imported module, e.g. fabula.organism.arms
    path: Path       # file of the importing module
    line: int
    nested: bool     # inside a function or class, not at module level


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file for every .py file under `package` (a folder with __init__.py)."""
    root = package.parent
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that `name` is, or lies in (`a.b.func` -> `a.b`)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def edges(package: Path) -> list[Edge]:
    known = modules(package)
    found: dict[tuple[str, str, int], Edge] = {}   # `from a import b, c` is one edge
    for source, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        nested_lines = {node.lineno for outer in ast.walk(tree)
                        if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                        for node in ast.walk(outer) if isinstance(node, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = source.split(".") if is_package else source.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # `from a import b` may import the module a.b or a name in a
                targets = [f"{stem}.{alias.name}" for alias in node.names]
            for target in targets:
                module = _resolve(target, known)
                if module is not None and module != source:
                    found[source, module, node.lineno] = Edge(source, module, path, node.lineno,
                                                             node.lineno in nested_lines)
    return list(found.values())


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def module_graph(found: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in found:
        graph.setdefault(edge.source, set()).add(edge.target)
    return graph


def package_of(module: str, depth: int = 2) -> str:
    """fabula.train.mix -> fabula.train; fabula.config -> fabula.config (a top-level module is its own unit)."""
    return ".".join(module.split(".")[:depth])


def package_graph(found: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in found:
        a, b = package_of(edge.source), package_of(edge.target)
        if a != b and a != "fabula" and b != "fabula":   # fabula/__init__ is the whole package
            graph.setdefault(a, set()).add(b)
    return graph


def main(argv: list[str]) -> int:
    package = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "fabula"
    found = edges(package)
    by_module = cycles(module_graph(found))
    by_package = cycles(package_graph(found))
    print(f"{len(modules(package))} modules, {len(found)} import edges "
          f"({sum(e.nested for e in found)} inside functions)")
    print(f"module-level cycles (SCCs > 1 module): {len(by_module)}")
    for component in by_module:
        print("  ", " ".join(component))
    print(f"package-level cycles (SCCs > 1 package): {len(by_package)}")
    for component in by_package:
        print("  ", " ".join(component))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
