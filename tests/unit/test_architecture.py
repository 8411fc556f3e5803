"""The layout keeps its promises: imports point downward only, there are no cycles, nothing outside the
CLI imports it, and the top of the package stays small. docs/ARCHITECTURE.md draws the same layers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "berth"

# bottom → top; a module may import from its own layer or any layer below (longest prefix decides)
LAYERS = [
    ["berth", "berth.errors", "berth.secrets", "berth.secrets.masking"],
    ["berth.model"],  # what the user's files mean
    ["berth.configuration"],  # what they configured
    ["berth.ui", "berth.remote", "berth.configuration.masker"],  # printing; what runs on the server
    ["berth.check"],  # is it sound
    ["berth.scaffold.secrets"],
    ["berth.deploy"],  # in what order
    ["berth.ops", "berth.k8s", "berth.scaffold"],  # what is there now; other engines; new projects
    ["berth.sandbox"],
    ["berth.cli"],  # what the user typed
    ["berth.__main__"],
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """module → the berth modules it imports, at module level or inside functions, not under TYPE_CHECKING."""
    root = package.parent
    modules = {module_name(p, root): p for p in package.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        edges = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                edges |= {resolve(a.name) for a in node.names if a.name.split(".")[0] == package.name}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package.name:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    edges.add(full if full in modules else resolve(node.module))
        graph[name] = edges - {None, name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    best, length = None, -1
    for n, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = n, len(prefix)
    assert best is not None, f"{module} is in no layer of LAYERS: add it where it belongs"
    return best


GRAPH = import_graph(PACKAGE)


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_imports_point_downward_only():
    upward = sorted(f"{a} → {b}" for a, targets in GRAPH.items() for b in targets if layer_of(b) > layer_of(a))
    assert upward == []


def test_nothing_outside_the_cli_imports_it():
    outside = sorted(f"{a} → {b}" for a, targets in GRAPH.items() for b in targets
                     if (b == "berth.cli" or b.startswith("berth.cli.")) and not a.startswith("berth.cli")
                     and a != "berth.__main__")
    assert outside == []


def test_the_top_of_the_package_stays_small():
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists())
    assert len(top) <= 16, top
    assert not [p for p in top if p.endswith(".py") and p not in ("__init__.py", "__main__.py", "errors.py")], top


def test_cycle_detection_sees_imports_inside_functions(tmp_path):
    pkg = tmp_path / "berth"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "one.py").write_text("from berth.a import two\n")
    (pkg / "a" / "two.py").write_text("def f():\n    from berth.a.one import g\n")
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from berth.a import one\n")
    graph = import_graph(pkg)
    assert cycles(graph) == [["berth.a.one", "berth.a.two"]]
    assert graph["berth.typed"] == set()  # annotations only: no runtime edge


def test_every_layer_names_modules_that_exist():
    prefixes = [p for layer in LAYERS for p in layer]
    missing = [p for p in prefixes if not any(m == p or m.startswith(p + ".") for m in GRAPH)]
    assert missing == []
