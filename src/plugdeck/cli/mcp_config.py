"""`plugdeck mcp serve --print-config`: the JSON block a desktop MCP client needs to start plugdeck.

Claude Desktop, Cursor and Claude Code read `{"mcpServers": {NAME: {"command", "args", "env"}}}`; VS Code
reads `{"servers": {NAME: {"type": "stdio", ...}}}`. The command is this very installation (the `plugdeck`
script beside the running Python, else `python -m plugdeck.cli.main`), so the client starts the same
plugdeck with the same home. Secrets appear only as references to the variables that hold them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

SERVER_KEY = "plugdeck"


def plugdeck_command() -> list[str]:
    """The absolute command that starts this installation of plugdeck."""
    beside = Path(sys.executable).parent / ("plugdeck.exe" if os.name == "nt" else "plugdeck")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("plugdeck")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "plugdeck.cli.main"]


def secret_variables(config: Any, agent: Any, model: str | None) -> list[str]:
    """The variables the served plugdeck reads secrets from: its plugins' and its model's key."""
    found = {var for plugin in getattr(agent, "plugins", []) for var in (plugin.needs or {}).get("secrets") or []}
    name = model or config.model
    if name != "rules":
        profile = config.profiles.get(name)
        variable = getattr(profile, "api_key_env", None) or "PLUGDECK_API_KEY"
        if profile is not None or os.environ.get(variable):
            found.add(variable)
    return sorted(found)


def _reference(variable: str, vscode: bool) -> str:
    return f"${{env:{variable}}}" if vscode else f"${{{variable}}}"


def client_config(flags: dict[str, Any], config: Any, agent: Any, http: tuple[str, int] | None,
                  vscode: bool) -> dict[str, Any]:
    """The block for these `plugdeck mcp serve` options (`http`: the host and port, for the URL form)."""
    if http is not None:
        host, port = http
        shown = f"[{host}]" if ":" in host else host
        entry: dict[str, Any] = {"type": "http", "url": f"http://{shown}:{port}/mcp"}
        from ..server.keys import KeyStore

        if KeyStore(config.home).any_active():
            entry["headers"] = {"Authorization": f"Bearer {_reference('PLUGDECK_KEY', vscode)}"}
    else:
        command, *prefix = plugdeck_command()
        args = [*prefix, "mcp", "serve"]
        for flag, value in flags.items():
            if value is True:
                args.append(flag)
            elif isinstance(value, list):
                args += [part for item in value for part in (flag, item)]
            elif value:
                args += [flag, str(value)]
        env = {"PLUGDECK_HOME": str(Path(config.home).resolve())}
        env.update({var: _reference(var, vscode) for var in secret_variables(config, agent, flags.get("--model"))})
        entry = {**({"type": "stdio"} if vscode else {}), "command": command, "args": args, "env": env}
    return {"servers" if vscode else "mcpServers": {SERVER_KEY: entry}}


def print_client_config(block: dict[str, Any], http: bool, vscode: bool) -> None:
    """The block on stdout (to paste or pipe); where it goes, and what to export, on stderr."""
    print(json.dumps(block, indent=2))
    entry = next(iter(next(iter(block.values())).values()))
    where = (".vscode/mcp.json (or your user mcp.json)" if vscode else
             "claude_desktop_config.json (Claude Desktop: Settings > Developer > Edit Config), "
             ".cursor/mcp.json (Cursor) or .mcp.json (Claude Code)")
    print(f"Add this to {where}; merge it into an existing block by hand.", file=sys.stderr)
    if http:
        print("Start the server first with the same options: plugdeck mcp serve --http PORT ...", file=sys.stderr)
    references = [v for v in (entry.get("env") or {}) if v != "PLUGDECK_HOME"]
    if "headers" in entry:
        references.append("PLUGDECK_KEY (a key from: plugdeck keys create)")
    if references:
        print(f"The client must pass {', '.join(references)} from its environment. Claude Desktop does not expand "
              "${...}: start it from a shell where they are exported, or put the values in its config yourself.",
              file=sys.stderr)
