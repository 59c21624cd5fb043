"""The package's layers, read from the source: every import goes to the same layer or one below it, no two
files import each other (directly or around a cycle), and only ``simpool/cli/`` imports argparse.

Layers, top to bottom (the architecture in README.md): cli > experiments > train > evaluate, visualize, analysis >
data, models > pooling. ``train`` may use ``evaluate`` (its pure metrics, for the monitors); ``data`` and
``models`` know nothing of each other; the top-level helpers (``simpool/utils.py``) sit under everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "simpool"

# layer -> rank; a file may import from layers of lower or equal rank, and from the exceptions below
RANK = {
    "cli": 6,
    "experiments": 5,
    "train": 4,
    "evaluate": 3,
    "visualize": 3,
    "analysis": 3,
    "data": 2,
    "models": 2,
    "pooling": 1,
    "utils": 0,
}
# same-rank layers that may not import each other
SEPARATE = {frozenset({"data", "models"}), frozenset({"evaluate", "visualize"}), frozenset({"evaluate", "analysis"})}
SEPARATE |= {frozenset({"visualize", "analysis"})}
ALLOWED = {("visualize", "evaluate"), ("analysis", "evaluate")}  # maps and counts use the metrics' pure helpers


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__init__", "utils", "__main__"):
        return "utils" if len(parts) > 1 and parts[1] == "utils" else "top"
    return parts[1]


def imports_of(path: Path) -> list[str]:
    """The ``simpool`` modules a file imports (relative imports resolved), at any depth of the file."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "simpool"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == "simpool":
                found.append(target)
                found += [f"{target}.{alias.name}" for alias in node.names]  # submodules imported by name
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return sorted({name for name in found if name in modules})


FILES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(path): imports_of(path) for path in FILES}


def test_no_file_imports_an_upper_layer():
    wrong = []
    for module, targets in GRAPH.items():
        source = layer_of(module)
        if source == "top":
            continue
        for target in targets:
            destination = layer_of(target)
            if destination in ("top", source):
                continue
            upward = RANK.get(destination, 99) > RANK.get(source, 99)
            apart = frozenset({source, destination}) in SEPARATE and (source, destination) not in ALLOWED
            if upward or apart:
                wrong.append(f"{module} ({source}) imports {target} ({destination})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_files():
    # package __init__ files re-export their children: an edge into a package is an edge into its __init__ only
    graph = {m: [t for t in ts if t != m and not m.startswith(t + ".")] for m, ts in GRAPH.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def imports_argparse(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(alias.name == "argparse" for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    return False


# argparse.Namespace is the safe global torch.load needs for official checkpoints (they pickle their args)
ARGPARSE_EXEMPT = {"simpool.models.checkpoint"}


def test_argparse_only_under_cli():
    users = [module_name(path) for path in FILES if imports_argparse(path)]
    assert [m for m in users if not m.startswith("simpool.cli") and m not in ARGPARSE_EXEMPT] == []


def test_importing_draws_nothing_from_the_global_rng():
    import subprocess
    import sys

    code = (
        "import torch; torch.manual_seed(0); before = torch.get_rng_state().clone();"
        "import simpool, simpool.pooling.framework, simpool.cli.main;"
        "assert torch.equal(before, torch.get_rng_state()), 'an import drew from the global RNG'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
