"""Where plugins are loaded, a third-party entry point becomes a sandboxed plugin (R20).

Built-in plugins (plugdeck's own entry points) and the person's own tools made in code stay in
plugdeck's process. Every other package's entry point is never imported here: its runner imports
it inside the sandbox. Where the sandbox does not work, such a plugin is refused with the reason;
only the operator's explicit PLUGDECK_UNSANDBOXED_PLUGINS=1 loads it in process, with a warning
logged each time. A manifest asking for `inprocess: true` is refused: no plugin chooses that itself.
"""

from __future__ import annotations

from typing import Any

from ...errors import UserError
from .check import override_set, require_sandbox


class InProcessRefused(UserError, ValueError):
    pass


def third_party_plugin(name: str, target: str, load: Any, dist: Any = None):
    """The Plugin for a third-party entry point `name = target` of the package `dist`; `load()` imports
    it in process (used only under the operator's override)."""
    if override_set():
        from ..base import plugin_from

        return plugin_from(load(), name=name)
    require_sandbox()
    from .plugin import sandboxed_plugin

    plugin = sandboxed_plugin(target, name, source=f"entry point {target} (sandboxed)", dist=dist)
    if plugin.needs.get("inprocess"):
        raise InProcessRefused(f"plugin {name!r} asks to run inside plugdeck's process (inprocess: true); "
                               "third-party plugins always run in the sandbox")
    return plugin
