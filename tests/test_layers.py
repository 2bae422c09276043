"""Layers that only point down: no module imports a module of a higher layer, at module level or
inside a function, and no modules import each other in a cycle. Read with `ast`, nothing imported."""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import Edge, cycles, edges, module_graph, modules

PACKAGE = Path(__file__).resolve().parents[1] / "fabula"

# Lowest first. A module belongs to the longest entry naming it or a package above it; the root
# package (`fabula`, empty) only to itself. A module may import its own layer or any layer below.
LAYERS = [
    ("base", ["fabula", "fabula.paths", "fabula.versions", "fabula.jsonl", "fabula.stats", "fabula.progress"]),
    ("config", ["fabula.config"]),
    ("backends", ["fabula.backends"]),
    ("evals", ["fabula.evals", "fabula.contamination"]),
    ("train, data", ["fabula.train", "fabula.data"]),
    ("organism, experiment", ["fabula.organism", "fabula.experiment"]),
    ("analysis", ["fabula.analysis"]),
    ("report", ["fabula.report"]),
    ("cli", ["fabula.cli", "fabula.terminal", "fabula.options", "fabula.data.commands", "fabula.inspect_task", "fabula._registry"]),
]


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> tuple[int, str] | None:
    """(rank, layer name) of the longest matching entry; None when no entry names the module."""
    best = None
    for rank, (name, entries) in enumerate(layers):
        for entry in entries:
            covers = module == entry or ("." in entry and module.startswith(entry + "."))
            if covers and (best is None or len(entry) > best[0]):
                best = (len(entry), rank, name)
    return None if best is None else best[1:]


def layer_problems(package: Path, layers: list[tuple[str, list[str]]]) -> list[str]:
    """Modules without a layer, imports of a higher layer, and import cycles, one line each."""
    root = package.parent
    found = edges(package)
    problems = [f"{path.relative_to(root)}: {module} is in no layer of the table"
                for module, path in modules(package).items() if layer_of(module, layers) is None]
    for edge in found:
        source, target = layer_of(edge.source, layers), layer_of(edge.target, layers)
        if source and target and target[0] > source[0]:
            where = "inside a function" if edge.nested else "at module level"
            problems.append(f"{edge.path.relative_to(root)}:{edge.line}: {edge.source} ({source[1]}) imports "
                            f"{edge.target} ({target[1]}), a higher layer, {where}")
    for component in cycles(module_graph(found)):
        inside: list[Edge] = [e for e in found if e.source in component and e.target in component]
        lines = ", ".join(sorted({f"{e.path.relative_to(root)}:{e.line} -> {e.target}" for e in inside}))
        problems.append(f"import cycle between {', '.join(component)}: {lines}")
    return problems


def test_fabula_layers_only_point_down():
    problems = layer_problems(PACKAGE, LAYERS)
    assert not problems, "\n".join(problems)


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "pkg"
    package.mkdir()
    for name, text in {"__init__.py": "", **files}.items():
        (package / name).write_text(text)
    return package


TOY = [("low", ["pkg", "pkg.low"]), ("high", ["pkg.high"])]


def test_checker_reports_an_upward_import_inside_a_function(tmp_path):
    package = _package(tmp_path, {
        "low.py": "def f():\n    from .high import g\n    return g\n",
        "high.py": "def g():\n    return 1\n",
    })
    problems = layer_problems(package, TOY)
    assert problems == ["pkg/low.py:2: pkg.low (low) imports pkg.high (high), a higher layer, inside a function"]


def test_checker_reports_a_cycle_and_an_unmapped_module(tmp_path):
    package = _package(tmp_path, {
        "low.py": "X = 1\n",
        "high.py": "import pkg.other\n",
        "other.py": "from pkg import high\n",
    })
    problems = layer_problems(package, TOY)
    assert "pkg/other.py: pkg.other is in no layer of the table" in problems
    assert any(p.startswith("import cycle between pkg.high, pkg.other:") and "pkg/high.py:1 -> pkg.other" in p
               and "pkg/other.py:1 -> pkg.high" in p for p in problems), problems


def test_checker_accepts_downward_imports(tmp_path):
    package = _package(tmp_path, {"low.py": "X = 1\n", "high.py": "from pkg.low import X\n\ndef f():\n    import pkg.low\n"})
    assert layer_problems(package, TOY) == []
