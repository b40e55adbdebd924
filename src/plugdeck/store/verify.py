"""The registry's publish-time run of a package: does it install, do its tools load as its manifest says,
and what does it try to touch when each tool is called once?

For a Python package the wheel is unpacked (no code runs for that), then everything that runs the
publisher's code runs in the sandbox (plugins/sandbox):

1. `describe`: the runner loads the entry point and lists its tools; each is compared, definition for
   definition (the digest a lock pins), with the manifest's. A tool missing, extra or different fails
   the check: the client would refuse that package at install anyway.
2. each tool is called once with arguments made from its schema (default, then first example, then
   first enum value, then a plain value of its type). The egress proxy is there, but lets nothing out
   during the check: every attempt is recorded, and a host the manifest does not declare is flagged.
   Errors that show the sandbox refusing a file (read-only, permission, a host path it hides) are
   reported too.

Where the sandbox cannot run here, the result says so (`status: unavailable`): it never passes silently.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from typing import Any

CALL_TIMEOUT = 10.0  # seconds per tool call during the check
MAX_CALLS = 50  # tools called per package; the rest are listed as not called
# A call's error that shows the sandbox refusing file access: a read-only root, a permission, or an
# absolute path outside scratch that the sandbox does not show.
_FILE_REFUSAL = re.compile(r"Read-only file system|Permission denied|Operation not permitted|"
                           r"No such file or directory: '(?!/tmp/)/[^']*'")
# Stands in for "no host" so that the proxy (and its record of attempts) exists for every package.
_NO_HOST = "declared-nothing.invalid"


def verify_package(manifest, artifact: bytes) -> dict[str, Any]:
    """The sandbox check's result for the listing: status ok | failed | unavailable | skipped, with why."""
    if manifest.kind == "mcp":
        return {"status": "skipped", "detail": "an MCP server's package comes from PyPI or npm at install; "
                                               "its tools are pinned by the client on first connection"}
    if manifest.kind == "openapi":
        return _verify_openapi(manifest, artifact)
    from ..plugins.sandbox.check import check_sandbox

    check = check_sandbox()
    if not check.ok:
        return {"status": "unavailable", "detail": f"the sandbox cannot run on this registry: {check.problem}; "
                                                   "the package's code was not run"}
    from .unpack import UnpackError, unpack_wheel

    with tempfile.TemporaryDirectory(prefix="plugdeck-verify-") as tmp:
        try:
            unpack_wheel(artifact, Path(tmp))
        except UnpackError as exc:
            return {"status": "failed", "detail": f"the package does not install: {exc}"}
        Path(tmp).chmod(0o755)  # the sandbox runs as its own unprivileged UID
        for folder in Path(tmp).rglob("*"):
            folder.chmod(0o755 if folder.is_dir() else 0o644)
        return asyncio.run(_verify_python(manifest, str(Path(tmp) / "lib")))


async def _verify_python(manifest, lib: str) -> dict[str, Any]:
    from ..plugins.sandbox.plugin import SandboxError, SandboxRuntime, describe
    from ..plugins.sandbox.settings import SandboxSettings

    try:
        described = describe(manifest.entry_point, manifest.plugin, paths=[lib])
    except SandboxError as exc:
        return {"status": "failed", "detail": f"its tools do not load: {exc.message}"}
    tools = compare_tools(manifest, described.get("tools", []))
    if tools:
        return {"status": "failed", "detail": "the tools the code defines differ from the manifest's", "tools": tools}
    permissions = manifest.permissions
    needs = {"network": list(permissions.network) or [_NO_HOST], "secrets": list(permissions.secrets)}
    settings = SandboxSettings(breaker_failures=MAX_CALLS + 1)  # a crashing tool must not hide the rest
    runtime = SandboxRuntime(manifest.plugin, manifest.entry_point, {**described, "needs": needs},
                             settings=settings, paths=[lib])
    runtime.proxy.allowances = []  # record every attempt, let none out: the check reaches nothing
    calls = []
    try:
        for tool in manifest.tools[:MAX_CALLS]:
            arguments = sample_arguments(tool.parameters)
            try:
                await runtime.call(tool.name, arguments, min(CALL_TIMEOUT, tool.timeout or CALL_TIMEOUT))
                calls.append({"tool": tool.name, "arguments": arguments, "outcome": "ok"})
            except Exception as exc:  # the tool's own error is a finding to show, not the check's failure
                calls.append({"tool": tool.name, "arguments": arguments,
                              "outcome": "error", "error": str(getattr(exc, "message", exc))[:300]})
    finally:
        await runtime.close()
    return {"status": "ok", "detail": f"{len(described.get('tools', []))} tools load in the sandbox as declared",
            "calls": calls, "not_called": [t.name for t in manifest.tools[MAX_CALLS:]],
            **observed(runtime.events, list(permissions.network), calls)}


def observed(events: list[dict[str, Any]], declared: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Network attempts split by whether the manifest declares their host, and file refusals seen."""
    from ..plugins.openapi.ssrf import BlockedURL, split_url

    undeclared, used = [], []
    for event in events:
        if event.get("kind") != "egress":
            continue
        try:
            _, host, port = split_url(event.get("url", ""))
        except BlockedURL:
            host, port = event.get("url", "?"), None
        entry = {"tool": event.get("tool", ""), "method": event.get("method", ""), "url": event.get("url", "")}
        (used if _declares(declared, host, port) else undeclared).append(entry)
    files = [{"tool": c["tool"], "error": c["error"]} for c in calls
             if c["outcome"] == "error" and _FILE_REFUSAL.search(c["error"])]
    return {"network": {"undeclared": undeclared, "declared": used}, "filesystem_refused": files}


def _declares(declared: list[str], host: str, port: int | None) -> bool:
    for entry in declared:
        name, _, want = entry.partition(":")
        if want and port is not None and int(want) != port:
            continue
        if name == host or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


def compare_tools(manifest, described: list[dict[str, Any]]) -> dict[str, list[str]]:
    """{missing, extra, different}: tool names where the code and the manifest disagree; {} when equal."""
    from pydantic import ValidationError

    from .manifest import ToolDefinition

    live = {}
    for tool in described:
        try:
            live[tool["name"]] = ToolDefinition.model_validate(
                {k: tool[k] for k in ("name", "description", "effect", "parameters", "timeout")
                 if tool.get(k) is not None}).digest()
        except (ValidationError, KeyError):
            live[str(tool.get("name"))] = "invalid"
    declared = manifest.tool_digests()
    found = {"missing": sorted(set(declared) - set(live)), "extra": sorted(set(live) - set(declared)),
             "different": sorted(n for n in set(live) & set(declared) if live[n] != declared[n])}
    return {k: v for k, v in found.items() if v}


def sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments a tool's JSON schema accepts: every required property, and any optional one that has a
    default, an example or an enum."""
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    arguments = {}
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        value = _sample(prop)
        if name in required or any(k in prop for k in ("default", "examples", "enum")):
            arguments[name] = value
    return arguments


_PLAIN = {"string": "example", "integer": 1, "number": 1.0, "boolean": False, "array": [], "null": None}


def _sample(prop: dict[str, Any]) -> Any:
    if "default" in prop:
        return prop["default"]
    if prop.get("examples"):
        return prop["examples"][0]
    if prop.get("enum"):
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    for union in ("anyOf", "oneOf"):
        options = [o for o in prop.get(union) or [] if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return _sample(options[0])
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return sample_arguments(prop)
    if kind == "array" and isinstance(prop.get("items"), dict) and prop.get("minItems"):
        return [_sample(prop["items"])] * int(prop["minItems"])
    if kind in ("integer", "number") and "minimum" in prop:
        return prop["minimum"]
    return _PLAIN.get(kind, "example")


def _verify_openapi(manifest, artifact: bytes) -> dict[str, Any]:
    """An OpenAPI package's tools are what plugdeck makes of its spec: made again here and compared."""
    import io
    import zipfile

    from ..extras import missing

    if missing("openapi"):
        return {"status": "unavailable", "detail": "the openapi extra is not installed on this registry; "
                                                   "the spec was not read"}
    from ..plugins.openapi import build_plugin

    from .publish import openapi_options

    with tempfile.TemporaryDirectory(prefix="plugdeck-verify-") as tmp:
        try:
            zipfile.ZipFile(io.BytesIO(artifact)).extract(manifest.spec, tmp)
            plugin = build_plugin(manifest.plugin, openapi_options(str(Path(tmp) / manifest.spec), manifest.base_url,
                                                                   list(manifest.permissions.network)), Path(tmp))
        except Exception as exc:
            return {"status": "failed", "detail": f"the spec does not make a plugin: {exc}"}
    tools = compare_tools(manifest, plugin.manifest()["tools"])
    if tools:
        return {"status": "failed", "detail": "the tools the spec defines differ from the manifest's", "tools": tools}
    return {"status": "ok", "detail": f"{len(manifest.tools)} tools made from the spec as declared"}
