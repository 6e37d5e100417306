"""The architecture the tree shows, kept: who may import whom, and no import cycles.

Layers, bottom up: the vocabulary (``bridge.errors``, ``bridge.model``), the pure engine, the
edges, the connector framework, the config file, the pipeline, the CLI. A layer imports only
layers below it; the core never imports a connector (they register through entry points);
a connector declares and never drives the pipeline.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

VOCABULARY = {"bridge.errors", "bridge.model", "bridge._version"}
LAYERS = [  # (prefix, what it may import besides itself and the vocabulary)
    ("bridge.engine", set()),
    ("bridge.edges", {"bridge.engine"}),
    ("bridge.framework", {"bridge.engine", "bridge.edges"}),
    ("bridge.config", {"bridge.engine", "bridge.edges", "bridge.framework"}),
    ("bridge.pipeline", {"bridge.engine", "bridge.edges", "bridge.framework", "bridge.config"}),
    ("bridge.cli", {"bridge.engine", "bridge.edges", "bridge.framework", "bridge.config", "bridge.pipeline"}),
]


def modules() -> dict[str, Path]:
    found = {}
    for package in ("bridge", "connectors"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path) -> set[str]:
    """Every project module a file imports, at any depth of the file (lazy imports count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    known = modules()
    return {name for name in names if name in known and name.split(".")[0] in ("bridge", "connectors")}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


GRAPH = {name: imports(path) for name, path in modules().items()}


@pytest.mark.parametrize(("layer", "allowed"), LAYERS, ids=[layer for layer, _ in LAYERS])
def test_each_layer_imports_only_layers_below_it(layer, allowed):
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items() if within(module, layer)
        for target in targets
        if not within(target, layer) and target not in VOCABULARY and not any(within(target, a) for a in allowed)
    )
    assert wrong == []


def test_the_core_never_imports_a_connector():
    assert sorted(f"{m} imports {t}" for m, ts in GRAPH.items() if within(m, "bridge") for t in ts if within(t, "connectors")) == []


def test_a_connector_declares_and_never_drives_the_pipeline():
    drivers = ("bridge.pipeline", "bridge.cli", "bridge.config")
    wrong = sorted(f"{m} imports {t}" for m, ts in GRAPH.items()
                   if within(m, "connectors") and not within(m, "connectors.kit.conformance")
                   for t in ts if any(within(t, d) for d in drivers))
    assert wrong == []


def test_no_module_imports_itself_round_a_cycle():
    edges = {module: {t for t in targets if t != module and t in GRAPH} for module, targets in GRAPH.items()}
    # a package imports its own modules to re-export them: not a cycle of the design
    edges = {m: {t for t in ts if not within(t, m)} for m, ts in edges.items()}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(edges[node]):
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif target not in done:
                visit(target, [*trail, target])
        done.add(node)

    done: set[str] = set()
    for module in sorted(edges):
        if module not in done:
            visit(module, [module])
    assert cycles == []
