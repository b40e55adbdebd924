"""A server's start with sandboxed plugins: the sandbox checked and said, their sandboxes started warm.

`plugdeck serve` calls `at_server_start(plugins)` once its agents are built: it runs the self-test
(check.py) and returns the lines to log: whether the sandbox holds here, and which plugins run in it.
Each sandboxed plugin's sandbox is started then (SandboxRuntime.start), so the first request does not
pay the cold start; one that fails to start is said, and starts again on its first call.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable


def sandboxed(plugins: Iterable[Any]) -> list[Any]:
    """The plugins among these that run in a sandbox (each once, by name)."""
    found: dict[str, Any] = {}
    for plugin in plugins:
        if getattr(plugin, "runtime", None) is not None and plugin.name not in found:
            found[plugin.name] = plugin
    return list(found.values())


async def at_server_start(plugins: Iterable[Any]) -> list[str]:
    from .check import OVERRIDE, check_sandbox

    running = sandboxed(plugins)
    found = await asyncio.to_thread(check_sandbox)
    if not found.ok:
        import os

        how = (f"third-party plugins run unsandboxed ({OVERRIDE}=1)" if os.environ.get(OVERRIDE) == "1"
               else "third-party plugins are refused")
        return [f"sandbox: not available here, {how}: {found.problem}"]
    if not running:
        return ["sandbox: checked, it holds here (no sandboxed plugin is loaded)"]
    lines = [f"sandbox: checked, it holds here; sandboxed: {', '.join(p.name for p in running)}"]
    started = await asyncio.gather(*(p.runtime.start() for p in running), return_exceptions=True)
    for plugin, outcome in zip(running, started):
        if isinstance(outcome, BaseException):
            lines.append(f"sandbox: plugin {plugin.name!r} did not start ({outcome}); it is tried again on its "
                         "first call")
    return lines
