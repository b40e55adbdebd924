"""Plugins that a person added with `plugdeck plugins add KIND ...` (OpenAPI specs, MCP servers, SQL
databases), kept in `PLUGDECK_HOME/plugins.json` and rebuilt on each run.

Each kind has a builder `build_plugin(name, options, home) -> Plugin` in its own module. The options
never hold secrets: they name the environment variables that do.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any, Iterable

from ..errors import UserError
from ..files import write_atomically
from .base import Plugin
from .loading import LoadProblem

BUILDERS = {
    "openapi": "plugdeck.plugins.openapi:build_plugin",
    "mcp": "plugdeck.plugins.mcp:build_plugin",
    "sql": "plugdeck.plugins.sql:build_plugin",
    "store": "plugdeck.store.runtime:build_plugin",  # installed from a store (plugdeck install)
}


class RegistryError(UserError, ValueError):
    pass


def registry_path(home: Path) -> Path:
    return Path(home) / "plugins.json"


def configured(home: Path) -> dict[str, dict[str, Any]]:
    path = registry_path(home)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("plugins", {})
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path} is not valid JSON ({exc}); fix or remove it") from None


def save(home: Path, plugins: dict[str, dict[str, Any]]) -> None:
    write_atomically(registry_path(home), json.dumps({"plugins": plugins}, indent=2))  # a crash leaves no half file


def add(home: Path, name: str, kind: str, options: dict[str, Any], *, replace: bool = False) -> dict[str, Any]:
    if kind not in BUILDERS:
        raise RegistryError(f"unknown plugin kind {kind!r} (known: {', '.join(BUILDERS)})")
    plugins = configured(home)
    if name in plugins and not replace:
        raise RegistryError(f"a plugin named {name!r} is already added; remove it first or choose another --name")
    if name in installed_names():  # it would share that plugin's tool names and policy (R12)
        raise RegistryError(f"{name!r} is the name of an installed plugin; choose another --name")
    entry = {"kind": kind, "options": options, "added_at": time.time()}
    plugins[name] = entry
    save(home, plugins)
    return entry


def update(home: Path, name: str, **fields: Any) -> None:
    plugins = configured(home)
    if name not in plugins:
        raise RegistryError(f"no added plugin named {name!r}")
    plugins[name].update(fields)
    save(home, plugins)


def remove(home: Path, name: str) -> None:
    plugins = configured(home)
    entry = plugins.pop(name, None)
    if entry is None:
        raise RegistryError(f"no added plugin named {name!r} (see: plugdeck plugins)")
    save(home, plugins)
    snapshot = entry.get("options", {}).get("snapshot")  # a pinned copy of a spec, kept under home
    if snapshot and Path(home).resolve() in (Path(home) / snapshot).resolve().parents:
        (Path(home) / snapshot).resolve().unlink(missing_ok=True)


def build(name: str, entry: dict[str, Any], home: Path) -> Plugin:
    from ..extras import MODULES, require

    if entry["kind"] in MODULES:  # the kinds that need an optional part are named like it
        require(entry["kind"], f"the plugin {name!r} ({entry['kind']}, added with plugdeck plugins add)")
    module, _, function = BUILDERS[entry["kind"]].partition(":")
    builder = getattr(importlib.import_module(module), function)
    plugin = builder(name, entry.get("options", {}), Path(home))
    plugin.source = plugin.source or f"{entry['kind']} (plugdeck plugins add)"
    plugin.set_origin("added")  # the person added it on purpose: that is its consent
    return plugin


def installed_names() -> set[str]:
    from .loading import installed_plugins

    return {plugin.name for plugin in installed_plugins()[0]}


def build_all(home: Path, taken: Iterable[str] = ()) -> tuple[list[Plugin], list[LoadProblem]]:
    """Every added plugin; one that cannot be built is reported and the rest still load. One named
    like a plugin in `taken` (the installed ones) is skipped: names are unique (R12)."""
    plugins, problems = [], []
    taken = set(taken)
    for name, entry in configured(home).items():
        if name in taken:
            problems.append(LoadProblem(name, entry.get("kind", "?"), f"{name!r} is also the name of an installed "
                                        "plugin; rename one of them (plugdeck plugins remove, then add it again)"))
            continue
        try:
            plugins.append(build(name, entry, home))
        except Exception as exc:
            problems.append(LoadProblem(name, entry.get("kind", "?"), f"{type(exc).__name__}: {exc}"))
    return plugins, problems


def tool_owners(home: Path, *, skip: str | None = None) -> dict[str, str]:
    """Tool name -> plugin, over every installed and added plugin but `skip`: what a plugin being
    added is compared with (same names, and descriptions that speak of other plugins' tools, R12)."""
    from .loading import installed_plugins

    plugins, _ = installed_plugins()
    for name, entry in configured(home).items():
        if name != skip:
            try:
                plugins.append(build(name, entry, home))
            except Exception:  # a broken entry is reported where plugins load; it has no tools to shadow
                continue
    return {tool.name: plugin.name for plugin in plugins if plugin.name != skip for tool in plugin.tools}
