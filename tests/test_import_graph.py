"""The package's internal imports, read from the source (AST, imports inside functions included; only those under
``if TYPE_CHECKING:``, which never run, are left out): no cycle between modules, none between subpackages, and the
layering the architecture promises (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "efficientpose"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):  # noqa: ANN202 - yields ast nodes
    """Every node of ``tree`` except those inside ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
            else:
                todo.append(child)


def _imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body (a package import names its __init__)."""
    files = {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                # ``from pkg import sub`` depends on the submodule; the parent package runs first for every
                # import of its modules alike, so it is not counted for any
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                if target in files and target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _layer(module: str) -> str:
    """The subpackage a module belongs to (``efficientpose.codec.heatmap`` -> ``codec``); flat modules are their own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = _imports()


def test_the_graph_is_read_from_the_source() -> None:
    assert "efficientpose.models.efficientpose" in GRAPH["efficientpose.weights.hub"]
    assert "efficientpose.weights.hub" in GRAPH["efficientpose.inference.estimator"]  # an import inside a function


def test_no_cycle_between_modules() -> None:
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH) or [])


def test_no_cycle_between_subpackages() -> None:
    layers: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        if module == PACKAGE:
            continue  # the package's own lazy entry points may name anything
        layers.setdefault(_layer(module), set()).update(_layer(t) for t in targets if t != PACKAGE)
    for layer in layers:
        layers[layer].discard(layer)
    assert _cycle(layers) is None, " -> ".join(_cycle(layers) or [])


@pytest.mark.parametrize("low, high", [
    ("models", "weights"), ("codec", "models"), ("codec", "inference"), ("io", "inference"), ("data", "evaluation"),
    ("data", "train"), ("inference", "evaluation"), ("inference", "reference"), ("models", "reference"),
])
def test_layers_point_one_way(low: str, high: str) -> None:
    """``low`` never imports ``high`` (weights imports models, never the reverse; training reads datasets through
    data/, not evaluation/; the product path never imports the oracles in reference/)."""
    offenders = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if _layer(m) == low for t in ts if _layer(t) == high)
    assert not offenders, offenders
