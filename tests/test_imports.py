"""The package's import graph has no cycle (issue 30): every ``import`` and ``from ...
import`` in ``pipeline/``, module level or inside a function, is an arrow; ``from package
import submodule`` points at the submodule, not at the package's ``__init__``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package's own modules (dotted names)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                submodules = [f"{node.module}.{a.name}" for a in node.names
                              if f"{node.module}.{a.name}" in modules]
                targets = submodules + ([node.module] if len(submodules) < len(node.names)
                                        else [])
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.b import g\n")
    (package / "b.py").write_text("from pkg import a\n")
    (package / "c.py").write_text("from pkg import a, b\n")
    graph = import_graph(package)
    assert graph["pkg.c"] == {"pkg.a", "pkg.b"}
    assert find_cycle(graph) in (["pkg.a", "pkg.b", "pkg.a"], ["pkg.b", "pkg.a", "pkg.b"])


# Each subpackage's layer: a module imports only from lower layers or its own subpackage.
# Training and inference share a layer, so neither imports the other (issue 30).
LAYERS = {"core": 0, "signal": 1, "corpus": 2, "network": 3, "training": 4, "inference": 4,
          "evaluation": 5, "cli": 6, "__main__": 7}


def layer_of(module: str) -> tuple[str, int]:
    """``(subpackage, layer)`` of a dotted module name; the package root is below all."""
    parts = module.split(".")
    if len(parts) == 1:
        return "", -1
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module} is in no layer: put it in a subpackage of LAYERS")
    return parts[1], LAYERS[parts[1]]


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes to a higher layer, or sideways to another subpackage."""
    found = []
    for module, targets in sorted(graph.items()):
        package, layer = layer_of(module)
        for target in sorted(targets):
            target_package, target_layer = layer_of(target)
            if target_package != package and target_layer >= layer:
                found.append(f"{module} -> {target}")
    return found


def test_imports_go_only_downward():
    assert upward_arrows(import_graph()) == []


def test_an_upward_or_sideways_arrow_is_found():
    graph = {"pipeline.core.a": {"pipeline.signal.b"}, "pipeline.signal.b": {"pipeline.core.a"},
             "pipeline.training.t": {"pipeline.inference.i"}, "pipeline.inference.i": set(),
             "pipeline.cli.c": {"pipeline", "pipeline.training.t"}, "pipeline": set()}
    assert upward_arrows(graph) == ["pipeline.core.a -> pipeline.signal.b",
                                    "pipeline.training.t -> pipeline.inference.i"]


def test_every_module_is_in_a_layer():
    for module in import_graph():
        layer_of(module)


def test_inference_imports_no_torch_at_module_level():
    """Scoring must be able to run without the training stack: importing every inference
    module leaves torch unloaded (it is imported inside the functions that need it)."""
    import subprocess
    import sys

    modules = sorted(m for m in import_graph() if m.startswith("pipeline.inference."))
    program = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
               + "print(sorted(m for m in ('torch', 'h5py', 'joblib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          cwd=PACKAGE.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
