"""The layers hold: every import between plugdeck's top-level parts goes down the table below (or
stays in its layer), and no two parts import each other, directly or round a loop.

Imports are read from the source with ast, so imports inside functions (lazy ones) and under
TYPE_CHECKING count too: a lazy import is still a dependency, only a later one. The table is the one
in docs/architecture.md; a new top-level module or package must be given a layer here.
"""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

import plugdeck

ROOT = Path(plugdeck.__file__).parent

# Lowest first. A part may import its own layer and the layers below it, never one above.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"errors", "usage", "redaction", "loopback", "extras", "events", "schemas", "tools", "config",
                    "checks", "embedding", "words", "extensions", "files", "secret_store", "retry"}),
    ("policy", {"policy"}),
    ("models", {"models"}),
    ("plugins", {"plugins", "sandbox", "store"}),
    ("agent", {"agent"}),
    ("ops", {"ops"}),
    ("assemble", {"assemble"}),
    ("surfaces", {"cli", "server"}),
]
LAYER_OF = {part: index for index, (_, parts) in enumerate(LAYERS) for part in parts}
# The agent sees plugins only through their public types (Plugin), never a plugin's internals.
AGENT_MAY_IMPORT_OF_PLUGINS = {"plugdeck.plugins", "plugdeck.plugins.base"}


def part_of(module: str) -> str:
    """`plugdeck.agent.run` -> 'agent'; `plugdeck` itself -> ''."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT.parent).with_suffix("")
    pieces = list(relative.parts)
    return ".".join(pieces[:-1] if pieces[-1] == "__init__" else pieces)


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative / "__init__.py").is_file()


def resolve_root_name(name: str) -> str | None:
    """`from plugdeck import X`: the module X comes from (the root re-exports lazily, which would hide
    an upward import); None for plain values such as __version__."""
    value = getattr(plugdeck, name)
    if isinstance(value, types.ModuleType):
        return value.__name__
    owner = getattr(value, "__module__", None)
    return owner if isinstance(owner, str) and owner.startswith("plugdeck.") else None


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported plugdeck module, line) for every import in the file."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "plugdeck"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "plugdeck":
                continue
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if is_module(submodule):
                    found.append((submodule, node.lineno))
                elif module == "plugdeck":
                    resolved = resolve_root_name(alias.name)
                    if resolved:
                        found.append((resolved, node.lineno))
                else:
                    found.append((module, node.lineno))
    return found


def import_graph() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> where, as `path:line` (the root package's own facade left out)."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = part_of(module_name(path))
        if not source:
            continue
        for module, line in imports_of(path):
            target = part_of(module)
            if target and target != source:
                where = f"{path.relative_to(ROOT)}:{line} imports {module}"
                edges.setdefault((source, target), []).append(where)
    return edges


def violations(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    found = []
    for (source, target), where in sorted(edges.items()):
        if source not in LAYER_OF or target not in LAYER_OF:
            continue  # reported by test_every_part_has_a_layer
        if LAYER_OF[target] > LAYER_OF[source]:
            found += [f"{source} ({LAYERS[LAYER_OF[source]][0]}) -> {target} ({LAYERS[LAYER_OF[target]][0]}): {w}"
                      for w in where]
        if source == "agent" and target == "plugins":
            found += [f"agent -> a plugin's internals (only {', '.join(sorted(AGENT_MAY_IMPORT_OF_PLUGINS))}): {w}"
                      for w in where if w.rsplit(" ", 1)[1] not in AGENT_MAY_IMPORT_OF_PLUGINS]
        if source == "agent" and target in LAYERS[LAYER_OF["plugins"]][1] - {"plugins"}:
            found += [f"agent -> {target} (not a public plugin type): {w}" for w in where]
    return found


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Each strongly connected group of parts (Tarjan): parts that reach each other by imports."""
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def describe_cycle(group: list[str], edges: dict[tuple[str, str], list[str]]) -> str:
    inside = [f"    {a} -> {b}: {where[0]}" for (a, b), where in sorted(edges.items()) if a in group and b in group]
    return " <-> ".join(group) + "\n" + "\n".join(inside)


def top_level_parts() -> set[str]:
    return {p.stem for p in ROOT.glob("*.py") if p.name != "__init__.py"} | {
        p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


# ---- the tests ------------------------------------------------------------------------------------


def test_every_part_has_a_layer():
    unplaced = sorted(top_level_parts() - set(LAYER_OF))
    assert not unplaced, f"give these top-level parts a layer in LAYERS (and docs/architecture.md): {unplaced}"


def test_no_part_imports_a_layer_above_it():
    found = violations(import_graph())
    assert not found, f"{len(found)} import(s) against the layers:\n" + "\n".join(found)


def test_no_import_cycles_between_top_level_parts():
    edges = import_graph()
    found = cycles(edges)
    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(describe_cycle(g, edges) for g in found)


def test_the_package_ships_py_typed():
    assert (ROOT / "py.typed").is_file()
    import tomllib

    pyproject = tomllib.loads((ROOT.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = pyproject["tool"]["setuptools"]["package-data"].get("plugdeck", [])
    assert "py.typed" in shipped, "pyproject.toml must ship py.typed: [tool.setuptools.package-data] plugdeck"


# ---- the checker itself finds what it must find ---------------------------------------------------


def test_the_walker_sees_lazy_relative_and_root_imports(tmp_path, monkeypatch):
    package = tmp_path / "plugdeck"
    (package / "policy").mkdir(parents=True)
    (package / "agent").mkdir()
    (package / "__init__.py").write_text("")
    (package / "agent" / "__init__.py").write_text("")
    (package / "agent" / "run.py").write_text("")
    (package / "policy" / "__init__.py").write_text("")
    (package / "policy" / "bad.py").write_text(
        "def later():\n    from ..agent.run import Run\n    from ..agent import run\n    import plugdeck.agent\n")
    monkeypatch.setitem(globals(), "ROOT", package)
    found = [m for m, _ in imports_of(package / "policy" / "bad.py")]
    assert found == ["plugdeck.agent.run", "plugdeck.agent.run", "plugdeck.agent"]
    edges = import_graph()
    assert set(edges) == {("policy", "agent")}
    assert len(violations(edges)) == 3


def test_a_cycle_is_found_and_shown():
    edges = {("a", "b"): ["a.py:1"], ("b", "c"): ["b.py:1"], ("c", "a"): ["c.py:1"], ("c", "d"): ["c.py:2"]}
    assert cycles(edges) == [["a", "b", "c"]]
    assert "a -> b: a.py:1" in describe_cycle(["a", "b", "c"], edges)


@pytest.mark.parametrize("name", ["__version__", "Agent", "Plugin"])
def test_names_imported_from_the_root_count_as_their_own_modules(name):
    resolved = resolve_root_name(name)
    assert resolved is None if name == "__version__" else part_of(resolved) in LAYER_OF
    if resolved:
        importlib.import_module(resolved)
