"""MCP server packages: the official MCP registry's `server.json` read and written, and the server run.

A server.json (https://static.modelcontextprotocol.io/schemas/.../server.schema.json) names the server
(`io.github.owner/name`), its version and its `packages`: each a registryType (npm, pypi, ...), an
identifier, a version, a transport and its arguments and environment variables. plugdeck takes one
package whose registry is PyPI or npm and whose transport is stdio; its environment variables become
the package's declared secrets. The server.json itself is the package's artifact, so TUF signs it.

Running one: an npm package with `npx -y IDENTIFIER@VERSION`; a PyPI package is installed with pip into
its own virtual environment under the package's folder (plugdeck's environment is visible beneath it,
so an SDK already here is not fetched again) and started through its console script, named as the
package (what `uvx IDENTIFIER` runs). The tools it lists are the manifest's, at publish; at install
they must still be, and are then pinned as for any MCP server (plugins/mcp/pinning.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError

SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json"
RUNNABLE = ("pypi", "npm")


class MCPPackageError(UserError, ValueError):
    """A server.json plugdeck cannot make a package of, or a server that does not start as published."""


def read_server_json(data: bytes | str) -> dict[str, Any]:
    """The parts of a server.json a store package needs: name, description, version, and the chosen
    package as {registry, identifier, version, transport, arguments} plus its secrets (variable names)."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MCPPackageError(f"the server.json is not JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("server"), dict):  # the registry API's wrapped form
        doc = doc["server"]
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise MCPPackageError("the server.json has no server name")
    packages = [p for p in doc.get("packages") or [] if isinstance(p, dict)]
    usable = [p for p in packages if p.get("registryType") in RUNNABLE
              and (p.get("transport") or {}).get("type", "stdio") == "stdio"]
    if not usable:
        found = ", ".join(f"{p.get('registryType')}/{(p.get('transport') or {}).get('type')}" for p in packages) or "none"
        raise MCPPackageError(f"{doc['name']}: no package plugdeck can run (a PyPI or npm package with the stdio "
                              f"transport); found {found}")
    chosen = usable[0]
    version = str(chosen.get("version") or doc.get("version") or "")
    arguments: list[str] = []
    for argument in chosen.get("packageArguments") or []:
        arguments += _argument(argument, doc["name"])
    secrets = sorted({str(v["name"]) for v in chosen.get("environmentVariables") or [] if isinstance(v, dict)
                      and v.get("name")})
    return {"name": doc["name"], "description": str(doc.get("description") or ""), "version": str(doc.get("version") or ""),
            "server": {"registry": chosen["registryType"], "identifier": str(chosen.get("identifier") or ""),
                       "version": version, "transport": "stdio", "arguments": arguments},
            "secrets": secrets}


def _argument(argument: Any, server: str) -> list[str]:
    """One packageArguments entry as argv words; one that needs the person's input is refused (a store
    package runs as published)."""
    if not isinstance(argument, dict):
        raise MCPPackageError(f"{server}: a package argument is not an object")
    value = argument.get("value", argument.get("default"))
    if value is None:
        raise MCPPackageError(f"{server}: the package argument {argument.get('name') or argument.get('valueHint')!r} "
                              "has no value; a store package must run without asking for one")
    if argument.get("type") == "named":
        return [str(argument.get("name")), str(value)]
    return [str(value)]


def write_server_json(manifest) -> dict[str, Any]:
    """A server.json for an mcp package, for the official MCP registry or another client."""
    server = manifest.server
    package: dict[str, Any] = {"registryType": server.registry, "identifier": server.identifier,
                               "version": server.version, "transport": {"type": server.transport}}
    if server.arguments:
        package["packageArguments"] = [{"type": "positional", "value": a} for a in server.arguments]
    if manifest.permissions.secrets:
        package["environmentVariables"] = [{"name": s, "isRequired": True, "isSecret": True}
                                           for s in manifest.permissions.secrets]
    return {"$schema": SCHEMA_URL, "name": manifest.name, "description": manifest.description,
            "version": manifest.version, "packages": [package]}


def prepare(server, folder: Path) -> list[str]:
    """The command that starts the server, installing its PyPI package into `folder`/env first."""
    if server.registry == "npm":
        npx = shutil.which("npx")
        if npx is None:
            raise MCPPackageError(f"{server.identifier} is an npm package; npx (Node.js) is not installed")
        return [npx, "-y", f"{server.identifier}@{server.version}", *server.arguments]
    env = Path(folder) / "env"
    python = env / "bin" / "python"
    if not python.exists():
        done = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], capture_output=True, text=True)
        if done.returncode != 0:
            raise MCPPackageError(f"cannot make an environment for {server.identifier}: {done.stderr.strip()[-500:]}")
        import site
        import sysconfig

        inner = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
        inner.mkdir(parents=True, exist_ok=True)
        (inner / "_plugdeck_beneath.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                           "--disable-pip-version-check", f"{server.identifier}=={server.version}"],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise MCPPackageError(f"pip could not install {server.identifier}=={server.version}:\n"
                              f"{done.stderr.strip()[-1500:]}")
    script = env / "bin" / re.sub(r"[^A-Za-z0-9._-]", "-", server.identifier)
    if not script.exists():
        raise MCPPackageError(f"{server.identifier}=={server.version} installs no command named "
                              f"{script.name!r} (the server's console script must be named as its package)")
    return [str(script), *server.arguments]


def live_tools(name: str, command: list[str], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Start the server once and return its tool definitions (wire form), by name."""
    import asyncio

    from ..plugins.mcp.client import MCPConnection, ServerSpec
    from ..tools import ToolError

    async def probe():
        connection = MCPConnection(ServerSpec(name=name, command=command, env=env))
        try:
            return await connection.list_tools()
        finally:
            await connection.close()

    try:
        return asyncio.run(probe())
    except ToolError as exc:
        raise MCPPackageError(f"the MCP server {name!r} did not list its tools: {exc.message}") from None


def tool_definitions(live: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's tools from an MCP listing: read only when the server says readOnlyHint, as plugdeck
    treats MCP tools at run time."""
    return [{"name": name, "description": str(tool.get("description") or ""),
             "effect": "read" if (tool.get("annotations") or {}).get("readOnlyHint") is True else "write",
             "parameters": tool.get("inputSchema") or {"type": "object", "properties": {}}}
            for name, tool in sorted(live.items())]


def build_mcp(server_json: Path, namespace: str, *, package: str | None = None):
    """`plugdeck store import-mcp`: a store Package from a server.json, its tools listed by starting the
    server here (the publisher's machine)."""
    import hashlib
    import tempfile

    from .manifest import ManifestError, parse_manifest
    from .publish import Package, PublishError

    data = Path(server_json).read_bytes()
    info = read_server_json(data)
    short = package or info["name"].rpartition("/")[2].lower()
    short = re.sub(r"[^a-z0-9_-]", "-", short).strip("-_") or "server"
    plugin = short.replace("-", "_")[:64]
    try:
        manifest_server = parse_manifest({
            "name": f"{namespace}/{short}", "version": info["version"], "kind": "mcp", "plugin": plugin,
            "server": info["server"], "tools": [{"name": "placeholder"}],
            "artifact": {"file": "server.json", "sha256": "0" * 64, "length": 1}}).server
    except ManifestError as exc:
        raise PublishError(str(exc)) from None
    import os

    missing = [s for s in info["secrets"] if not os.environ.get(s)]
    if missing:
        raise PublishError(f"the server needs {', '.join(missing)} set to start and list its tools")
    with tempfile.TemporaryDirectory(prefix="plugdeck-mcp-") as tmp:
        command = prepare(manifest_server, Path(tmp))
        live = live_tools(plugin, command, {s: s for s in info["secrets"]})
    raw = {"name": f"{namespace}/{short}", "version": info["version"], "description": info["description"][:2000],
           "kind": "mcp", "plugin": plugin, "server": manifest_server.model_dump(),
           "tools": tool_definitions(live), "permissions": {"secrets": info["secrets"]},
           "artifact": {"file": "server.json", "sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}}
    try:
        return Package(parse_manifest(raw), data)
    except ManifestError as exc:
        raise PublishError(str(exc)) from None
