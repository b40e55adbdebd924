"""A stdio MCP server added with `plugins add mcp --sandbox` runs in the sandbox too (R16 with R18).

The same bubblewrap launch as a third-party Python plugin (launch.py): an unprivileged UID of its
own, no home, no PLUGDECK_HOME, read-only /usr and Python, the folders its command names (read-only),
a private /tmp, the operator's ceiling as its limits (sandbox.toml), and the seccomp allowlist, put in
place by confine.py before the server's program starts. It gets no network: its own HTTP cannot be
made to go through the egress proxy, which serves plugdeck's http client (plugdeck.sandbox.http); a
server that needs the network stays unsandboxed, by the operator's choice. Its mapped secrets reach it
in its environment, as for any MCP server.
"""

from __future__ import annotations

from pathlib import Path

from .launch import Launch, command
from .limits import Limits
from .settings import SandboxSettings


def sandboxed_server_command(name: str, server: list[str], *, settings: SandboxSettings | None = None) -> list[str]:
    """The command line that starts the MCP server `server` (its argv) in the sandbox. Raises
    SandboxUnavailable where the sandbox does not work here (fail closed: never unsandboxed silently)."""
    from .check import require_sandbox

    require_sandbox()
    settings = settings or SandboxSettings.load()
    folders = []
    for arg in server:
        path = Path(arg)
        if path.is_absolute() and path.exists():  # the program and the files it is told about
            folder = str(path if path.is_dir() else path.parent)
            if folder not in folders:
                folders.append(folder)
    return command(Launch(name=f"mcp-{name}", entry_point="", limits=Limits().within(settings.ceiling),
                          paths=folders, server=list(server)))
