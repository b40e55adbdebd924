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
    seen: set[str] = set()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        source = f"entry point {ep.value}"
        if ep.name in seen:
            continue  # the same distribution seen twice on sys.path (editable installs)
        seen.add(ep.name)
        try:
            plugin = plugin_from(ep.load(), name=ep.name)
        except Exception as exc:
            problems.append(LoadProblem(ep.name, source, f"{type(exc).__name__}: {exc}"))
            continue
        plugin.source = plugin.source or source
        own = ep.dist is not None and ep.dist.name == "plugdeck"
        plugin.set_origin("builtin" if own else "third-party")
        plugins.append(plugin)
    return plugins, problems


def find_plugin(name: str) -> Plugin:
    plugins, problems = installed_plugins()
    for plugin in plugins:
        if plugin.name == name:
            return plugin
    for problem in problems:
        if problem.name == name:
            raise LookupError(f"plugin {name!r} failed to load: {problem.message}")
    known = ", ".join(p.name for p in plugins) or "none"
    raise LookupError(f"no plugin named {name!r} is installed (installed: {known})")
