"""The `store` plugin kind (registry.BUILDERS): a package installed from a store, loaded for a run only
when its files and its tools still match plugdeck.lock. Its consent is the install's, so the plugin
is `added` for the policy; a package that was never installed has no lock entry and never loads.

A Python package's code never runs in plugdeck's process: after the lock check it is described and
served by the sandbox's runner (plugins/sandbox), with the permissions consented to at install as
its policy (sandboxed.py). Only the operator's PLUGDECK_UNSANDBOXED_PLUGINS=1 loads it in process.
"""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from ..plugins.base import Plugin, plugin_from
from . import lock
from .manifest import ToolDefinition


def build_plugin(name: str, options: dict[str, Any], home: Path) -> Plugin:
    package = options.get("package", "")
    entry = lock.read(home)["packages"].get(package)
    if entry is None:
        raise lock.LockError(f"{package or name} is not in plugdeck.lock; install it with plugdeck install {package}")
    from .audit import ensure_fresh

    entry = ensure_fresh(home, package, entry)
    if entry.get("disabled"):
        raise lock.LockError(f"{package} is disabled: {entry['disabled']}")
    folder = lock.package_dir(home, package, entry["version"])
    lock.check_files(folder, entry["files"], package)
    if entry["kind"] == "python":
        from ..plugins.sandbox.check import override_set, require_sandbox

        if override_set():
            plugin = _in_process(folder, entry)
        else:
            require_sandbox()
            from .sandboxed import sandboxed_store_plugin

            plugin = sandboxed_store_plugin(home, package, entry, folder)
    elif entry["kind"] == "openapi":
        from ..extras import require

        require("openapi", f"the plugin {name!r} ({package}, an OpenAPI package)")
        from ..plugins.openapi import build_plugin as openapi_plugin

        from .publish import openapi_options

        plugin = openapi_plugin(entry["plugin"], openapi_options(str(folder / "lib" / entry["spec"]), entry["base_url"],
                                                                 entry["permissions"]["network"]), home)
    else:
        raise lock.LockError(f"{package}: store packages of kind {entry['kind']!r} cannot run yet")
    if plugin.name != name:
        raise lock.LockError(f"{package}: the package's plugin is named {plugin.name!r}, not {name!r}")
    if getattr(plugin, "runtime", None) is None:  # a sandboxed plugin's described tools were checked already
        check_tools(plugin, entry["tools"], package)
    plugin.version = entry["version"]
    sandboxed = " (sandboxed)" if getattr(plugin, "runtime", None) is not None else ""
    plugin.source = f"store {entry['store']}: {package} {entry['version']}{sandboxed}"
    return plugin


def _in_process(folder: Path, entry: dict[str, Any]) -> Plugin:
    """Only under the operator's logged override (check.override_set)."""
    lib = str(folder / "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    module, _, attr = entry["entry_point"].partition(":")
    return plugin_from(getattr(import_module(module), attr), name=entry["plugin"])


def tool_definitions(plugin: Plugin | list[dict[str, Any]]) -> list[ToolDefinition]:
    """The definitions of a plugin's tools, or of the tools a sandboxed runner described."""
    tools = plugin if isinstance(plugin, list) else plugin.manifest()["tools"]
    return [ToolDefinition.model_validate({k: t[k] for k in ("name", "description", "effect", "parameters", "timeout")
                                           if k in t}) for t in tools]


def check_tools(plugin: Plugin | list[dict[str, Any]], locked: dict[str, str], package: str) -> None:
    """The tools the code defines now are the ones consented to, definition for definition (R11)."""
    live = {t.name: t.digest() for t in tool_definitions(plugin)}
    if live != locked:
        changed = sorted(n for n in set(live) | set(locked) if live.get(n) != locked.get(n))
        raise lock.LockError(f"{package}: tool definitions differ from those consented to at install "
                             f"({', '.join(changed)}); refusing to load it")
