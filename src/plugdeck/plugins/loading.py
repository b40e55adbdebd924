"""Find installed plugins through the `plugdeck.plugins` entry-point group (read by plugdeck.extensions).

Built-in plugins are registered there too, so a third-party plugin is just a pip package that
declares an entry point. A plugin that fails to load is reported and skipped; the rest load.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import extensions
from .base import Plugin, plugin_from

GROUP = extensions.PLUGINS


@dataclass
class LoadProblem:
    name: str
    source: str
    message: str


def installed_plugins() -> tuple[list[Plugin], list[LoadProblem]]:
    plugins: list[Plugin] = []
    problems: list[LoadProblem] = []
    owners: dict[str, str] = {}  # plugin name -> the distribution that has it
    # plugdeck's own entry points come first: a built-in keeps its name, whatever else claims it.
    for extension in extensions.declared(GROUP):
        source = f"entry point {extension.target}"
        if extension.name in owners:
            problems.append(LoadProblem(extension.name, source, _taken(extension.name, owners[extension.name])))
            continue
        try:
            if extension.builtin:
                plugin = plugin_from(extension.load(), name=extension.name)
            else:  # never imported here: its code runs in the sandbox (plugins/sandbox/loader.py)
                from .sandbox.loader import third_party_plugin

                plugin = third_party_plugin(extension.name, extension.target, extension.load,
                                            getattr(extension.entry_point, "dist", None))
        except Exception as exc:
            problems.append(LoadProblem(extension.name, source, f"{type(exc).__name__}: {exc}"))
            continue
        if plugin.name in owners:  # the entry point's name was free, the plugin's own is not
            problems.append(LoadProblem(extension.name, source, _taken(plugin.name, owners[plugin.name])))
            continue
        owners[extension.name] = owners[plugin.name] = extension.package
        plugin.source = plugin.source or source
        plugin.set_origin("builtin" if extension.builtin else "third-party")
        plugins.append(plugin)
    return plugins, problems


def _taken(name: str, owner: str) -> str:
    # Two plugins of one name would share qualified tool names and the policy written for them (R12).
    return (f"{name!r} is already the name of a plugin from {owner}; this one is skipped so that it cannot take "
            "that plugin's tool names and the policy written for them")
