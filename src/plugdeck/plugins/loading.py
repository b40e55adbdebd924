"""Find installed plugins through the `plugdeck.plugins` entry-point group.

Built-in plugins are registered there too, so a third-party plugin is just a pip package that
declares an entry point. A plugin that fails to load is reported and skipped; the rest load.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from .base import Plugin, plugin_from

GROUP = "plugdeck.plugins"


@dataclass
class LoadProblem:
    name: str
    source: str
    message: str


def installed_plugins() -> tuple[list[Plugin], list[LoadProblem]]:
    plugins: list[Plugin] = []
    problems: list[LoadProblem] = []
    owners: dict[str, str] = {}  # plugin name -> the distribution that has it
    # plugdeck's own entry points first: a built-in keeps its name, whatever else claims it.
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (not _own(e), e.name)):
        source = f"entry point {ep.value}"
        dist = ep.dist.name if ep.dist is not None else "an unknown package"
        if owners.get(ep.name) == dist:
            continue  # the same distribution seen twice on sys.path (editable installs)
        if ep.name in owners:
            problems.append(LoadProblem(ep.name, source, _taken(ep.name, owners[ep.name])))
            continue
        try:
            plugin = plugin_from(ep.load(), name=ep.name)
        except Exception as exc:
            problems.append(LoadProblem(ep.name, source, f"{type(exc).__name__}: {exc}"))
            continue
        if plugin.name in owners:  # the entry point's name was free, the plugin's own is not
            problems.append(LoadProblem(ep.name, source, _taken(plugin.name, owners[plugin.name])))
            continue
        owners[ep.name] = owners[plugin.name] = dist
        plugin.source = plugin.source or source
        plugin.set_origin("builtin" if _own(ep) else "third-party")
        plugins.append(plugin)
    return plugins, problems


def _own(ep) -> bool:
    return ep.dist is not None and ep.dist.name == "plugdeck"


def _taken(name: str, owner: str) -> str:
    # Two plugins of one name would share qualified tool names and the policy written for them (R12).
    return (f"{name!r} is already the name of a plugin from {owner}; this one is skipped so that it cannot take "
            "that plugin's tool names and the policy written for them")
