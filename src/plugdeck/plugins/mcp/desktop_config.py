"""The `mcpServers` block desktop clients use, read into the options `plugdeck plugins add mcp` stores.

Claude Desktop (`claude_desktop_config.json`), Cursor (`.cursor/mcp.json`) and Claude Code (`.mcp.json`)
write `{"mcpServers": {NAME: {"command", "args", "env"} | {"url", "headers"}}}`; VS Code (`mcp.json`)
writes `{"servers": {NAME: {"type": "stdio" | "http" | "sse", ...}}}`, with comments allowed.

plugdeck never stores a secret: every value in `env` (and `headers`) becomes the name of an environment
variable that holds it. A reference already in the block (`${VAR}`, `${env:VAR}`) is kept as it is; a
literal becomes a variable named after its key, and the person is told what to export. The literal
values stay in this process only (`Imported.literals`), so the server can be started once to list its
tools for approval.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ...errors import UserError

WHOLE_REFERENCE = re.compile(r"^\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}$")
ANY_REFERENCE = re.compile(r"\$\{[^}]*\}")
VSCODE_INPUT = re.compile(r"^\$\{input:([^}]+)\}$")
HTTP_TYPES = {"http", "streamable-http", "streamablehttp", "streamable_http"}


class ConfigBlockError(UserError, ValueError):
    """The pasted or imported JSON is not an MCP servers block plugdeck can read."""


@dataclass
class Imported:
    """One server of the block: the options to store, or why it cannot be added."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)  # command/url, env/headers_env: names of variables
    literals: dict[str, str] = field(default_factory=dict)  # variable -> the value the block held (never stored)
    exports: dict[str, str] = field(default_factory=dict)  # variable -> what to put in it, in words
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None


def read_block(text: str, source: str = "the input") -> list[Imported]:
    """Every server of the block in `text`, in the order written."""
    try:
        data = json.loads(_without_comments(text))
    except json.JSONDecodeError as exc:
        raise ConfigBlockError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
                               'Paste the whole block, starting with { and "mcpServers".') from None
    servers = _servers_of(data, source)
    imported = [_server(str(name), entry) for name, entry in servers.items()]
    _separate_clashing_variables(imported)
    return imported


def _servers_of(data: Any, source: str) -> dict[str, Any]:
    if isinstance(data, dict):
        for path in (("mcpServers",), ("servers",), ("mcp", "servers")):
            found: Any = data
            for key in path:
                found = found.get(key) if isinstance(found, dict) else None
            if isinstance(found, dict):
                return found
        if data and all(isinstance(v, dict) and ("command" in v or "url" in v) for v in data.values()):
            return data  # just the servers, pasted without the "mcpServers" around them
    raise ConfigBlockError(f'{source} has no MCP servers: expected {{"mcpServers": {{NAME: {{"command": ...}}}}}} '
                           '(Claude Desktop, Cursor) or {"servers": {NAME: {"type": "stdio", ...}}} (VS Code)')


def _server(name: str, entry: Any) -> Imported:
    item = Imported(name)
    if not isinstance(entry, dict):
        item.skipped = "its entry is not a JSON object"
        return item
    if entry.get("disabled") is True:
        item.skipped = "it is marked disabled in the block"
        return item
    kind = str(entry.get("type") or entry.get("transport") or ("stdio" if "command" in entry else "http")).lower()
    if kind == "sse":
        item.skipped = ("it uses the old SSE transport, which plugdeck does not speak; if the server also offers "
                        "Streamable HTTP, add that URL (often ending in /mcp) with plugdeck plugins add mcp --url")
    elif kind == "stdio":
        _stdio(item, entry)
    elif kind in HTTP_TYPES:
        _http(item, entry)
    else:
        item.skipped = f"its type {kind!r} is not one plugdeck knows (stdio, http)"
    return item


def _stdio(item: Imported, entry: dict[str, Any]) -> None:
    command, args = entry.get("command"), entry.get("args") or []
    if not isinstance(command, str) or not command.strip():
        item.skipped = "it has no command"
        return
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
        item.skipped = "its args are not a list of strings"
        return
    if any(ANY_REFERENCE.search(str(a)) for a in args):
        item.skipped = ("its args contain ${...} references, which plugdeck does not expand in a command line; "
                        "write the value into the args or pass it through env")
        return
    env = entry.get("env") or {}
    if not isinstance(env, dict):
        item.skipped = "its env is not an object"
        return
    if entry.get("cwd"):
        item.notes.append(f"it sets cwd {entry['cwd']!r}; plugdeck starts it in its own working folder, so give "
                          "paths in args in full")
    if entry.get("envFile"):
        item.notes.append(f"its envFile {entry['envFile']!r} is not read: export those variables yourself")
    item.options = {"command": [command, *map(str, args)], "url": None,
                    "env": {key: _variable(item, "env", key, value) for key, value in env.items()},
                    "headers_env": {}}


def _http(item: Imported, entry: dict[str, Any]) -> None:
    url = entry.get("url") or entry.get("serverUrl")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        item.skipped = "it has no http(s) url"
        return
    headers = entry.get("headers") or {}
    if not isinstance(headers, dict):
        item.skipped = "its headers are not an object"
        return
    item.options = {"command": None, "url": url, "env": {},
                    "headers_env": {key: _variable(item, "header", key, value) for key, value in headers.items()}}


def _variable(item: Imported, where: str, key: str, value: Any) -> str:
    """The name of the environment variable that will hold this value."""
    text = "" if value is None else str(value)
    found = WHOLE_REFERENCE.match(text)
    if found:  # already a reference: the person keeps the variable they chose
        variable = found.group(1)
        item.exports.setdefault(variable, "already referenced in the block")
        return variable
    variable = _name_for(key if where == "env" else f"{item.name}_{key}")  # a header's name says little
    asked = VSCODE_INPUT.match(text)
    if asked:  # VS Code asks the person for it at start: here it comes from the environment
        item.exports[variable] = f"what VS Code asks for as its input {asked.group(1)!r}"
        return variable
    if ANY_REFERENCE.search(text):  # e.g. "Bearer ${env:TOKEN}": the whole value goes in one variable
        variable = _name_for(f"{item.name}_{key}")
        item.exports[variable] = f"the {where} value {text!r} with the reference filled in"
        return variable
    item.literals[variable] = text
    item.exports[variable] = f"the value of {where} {key!r} of {item.name!r} in the block"
    return variable


def _name_for(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper() or "VALUE"
    return f"_{name}" if name[0].isdigit() else name


def _separate_clashing_variables(items: list[Imported]) -> None:
    """Two servers that hold different literal values under one key get a variable each (NAME_KEY)."""
    values: dict[str, set[str]] = {}
    for item in items:
        for variable, value in item.literals.items():
            values.setdefault(variable, set()).add(value)
    clashing = {variable for variable, seen in values.items() if len(seen) > 1}
    for item in items:
        for variable in clashing & set(item.literals):
            renamed = _name_for(f"{item.name}_{variable}")
            item.literals[renamed] = item.literals.pop(variable)
            item.exports[renamed] = item.exports.pop(variable)
            for mapping in (item.options.get("env") or {}, item.options.get("headers_env") or {}):
                for key, used in mapping.items():
                    if used == variable:
                        mapping[key] = renamed


def _without_comments(text: str) -> str:
    """JSON with comments and trailing commas (VS Code's JSONC) as plain JSON; strings are left alone."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i] == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i:end + 1])
            i = end + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(text[i])
            i += 1
    # With the comments gone, every quote left opens or closes a string: drop commas before } or ].
    parts = re.split(r'("(?:\\.|[^"\\])*")', "".join(out))
    return "".join(part if k % 2 else re.sub(r",(\s*[}\]])", r"\1", part) for k, part in enumerate(parts))
