"""`plugdeck plugins add openapi SPEC`: add an HTTP API described by OpenAPI (or an ai-plugin.json)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import typer

from .common import fail as _fail


def add(
    spec: str = typer.Argument(..., help="OpenAPI 3.x / Swagger 2.0 file or URL (YAML or JSON), or a ChatGPT ai-plugin.json."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Plugin name (default: from the spec's title)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="The API's base URL (default: the spec's first server)."),
    allow_private: bool = typer.Option(False, "--allow-private", help="Allow the base URL's origin (scheme, host and "
                                       "port) even if it is private or loopback (e.g. http://127.0.0.1:8100). Other "
                                       "private origins, other ports of the same host included, stay refused."),
    auth: Optional[list[str]] = typer.Option(None, "--auth", help="SCHEME=ENVVAR: where a security scheme's secret is "
                                             "(basic: SCHEME=USER_VAR:PASSWORD_VAR; oauth2 client credentials: "
                                             "SCHEME=CLIENT_ID_VAR:CLIENT_SECRET_VAR). Repeatable."),
    operations: Optional[str] = typer.Option(None, "--operations", help="Only these operations (comma-separated tool "
                                             "names or operationIds)."),
    openapi: Optional[str] = typer.Option(None, "--openapi", help="For an ai-plugin.json: a local copy of its OpenAPI spec."),
    replace: bool = typer.Option(False, "--replace", help="Replace a plugin of the same name (re-pins the spec)."),
    allow_flagged: bool = typer.Option(False, "--allow-flagged", help="Add it even if the metadata scanner flags an "
                                       "operation high (after reading every finding it shows)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Add an OpenAPI service: one tool per operation, base URL and spec pinned now."""
    from ..config import load_config
    from ..plugins import registry
    from ..plugins.openapi import (AuthError, BlockedURL, SpecError, default_name, guard_for, load_source,
                                   metadata_texts, prepare, snapshot_spec)
    from ..plugins.openapi.spec import server_url

    home = load_config({}).home
    spec = _absolute(spec)
    try:
        allowed: list[str] | bool = _origins(spec) if allow_private else False
        loaded, manifest = load_source(spec, guard_for({"allow_private": allowed}), openapi and _absolute(openapi))
        base = base_url or server_url(loaded)
        if allow_private:  # exactly the origins the user pointed at, nothing else
            allowed = sorted({*allowed, *_origins(base)})
        schemes = (loaded.document.get("components") or {}).get("securitySchemes") or {}
        options: dict[str, Any] = {"spec": spec, "allow_private": allowed, "auth": _auth_options(auth or [], schemes)}
        if base_url:
            options["base_url"] = base_url
        if openapi:
            options["openapi"] = _absolute(openapi)
        if operations:
            options["operations"] = [o.strip() for o in operations.split(",") if o.strip()]
        plugin_name = name or default_name(loaded, manifest)
        prepared = prepare(plugin_name, options, spec=loaded)
        prepared.plugin()  # the tools build: schemas valid, names unique
    except (BlockedURL, SpecError, AuthError, ValueError) as exc:
        _fail(str(exc))
    findings = _scan(metadata_texts(prepared), registry.tool_owners(home, skip=plugin_name), plugin_name,
                     allow_flagged, as_json)
    try:
        if plugin_name in registry.configured(home) and not replace:
            _fail(f"a plugin named {plugin_name!r} is already added; choose another --name, or --replace it")
        options["base_url"] = prepared.base_url
        options.update(snapshot_spec(plugin_name, prepared.spec, home))
        registry.add(home, plugin_name, "openapi", options, replace=replace)
    except registry.RegistryError as exc:
        _fail(str(exc))
    missing = [env for env in prepared.auth.env_names if not os.environ.get(env)]
    if as_json:
        print(json.dumps({
            "name": plugin_name, "base_url": prepared.base_url, "snapshot": options["snapshot"],
            "sha256": options["sha256"],
            "tools": [{"name": op.name, "method": op.method.upper(), "path": op.path, "effect": op.effect}
                      for op in prepared.operations],
            "skipped": [{"operation": s.label, "reason": s.reason} for s in prepared.skipped],
            "unset_environment": missing,
            "findings": [{"severity": f.severity, "tool": f.tool, "where": f.where, "rule": f.rule, "detail": f.detail}
                         for f in findings],
        }, indent=2))
        return
    _print_summary(prepared, plugin_name, options, missing, schemes)


def _print_summary(prepared, plugin_name: str, options: dict[str, Any], missing: list[str],
                   schemes: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..plugins.openapi.auth import scheme_kind
    from .render import consoles

    out, _ = consoles()
    out.print(f"added [bold]{plugin_name}[/]: {len(prepared.operations)} tool(s) from {escape(prepared.spec.source)} "
              f"({prepared.spec.version}), base URL {escape(prepared.base_url)}")
    table = Table(box=None, pad_edge=False)
    for column in ("tool", "method", "path", "effect"):
        table.add_column(column)
    for op in prepared.operations:
        effect = "[yellow]write[/] (asks first)" if op.effect == "write" else "read"
        table.add_row(f"{plugin_name}.{op.name}", op.method.upper(), escape(op.path), effect)
    out.print(table)
    for skipped in prepared.skipped:
        out.print(f"[yellow]skipped[/] {escape(skipped.label)}: {escape(skipped.reason)}")
    unused = sorted(set(schemes) - set(options.get("auth") or {}))
    if unused:
        kinds = ", ".join(f"{n} ({scheme_kind(schemes[n])})" for n in unused)
        out.print(f"[dim]security schemes not configured: {escape(kinds)}; add --auth SCHEME=ENVVAR if needed[/]")
    for env in missing:
        out.print(f"[yellow]note:[/] environment variable {env} is not set now; set it before using the tools")
    out.print(f"[dim]spec pinned at {escape(str(options['snapshot']))} (sha256 {options['sha256'][:12]}…)[/]")
    hint = _try_hint(prepared, plugin_name)
    if hint:
        out.print(f"[dim]Try: {escape(hint)}[/]", soft_wrap=True)


def _try_hint(prepared, plugin_name: str) -> str:
    """A first call to try: a read (never a write, which would act), preferably one needing no arguments."""
    reads = [op for op in prepared.operations if op.effect == "read"]
    if not reads:
        return ""
    op = next((op for op in reads if not op.schema.get("required")), reads[0])
    example = {arg: _example(op.schema["properties"].get(arg) or {}) for arg in op.schema.get("required", [])}
    return f"plugdeck tools call {plugin_name}.{op.name} '{json.dumps(example, ensure_ascii=False)}'"


def _example(schema: dict[str, Any]) -> Any:
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(kind, "text")


def _scan(texts, owners: dict[str, str], plugin_name: str, allow_flagged: bool, as_json: bool):
    """R13/R26: every finding is shown; a high one stops the add unless the person overrides it."""
    from ..plugins.scan import blocking, report, scan_tools

    findings = scan_tools(texts, owners)
    shown = [f for f in findings if f.severity != "low"]  # URLs in API docs are common: listed in --json only
    high = blocking(findings)
    if shown and (not as_json or high):  # with --json, stdout stays JSON: the report goes to stderr
        stream = sys.stderr if as_json else sys.stdout
        print(f"the metadata scanner found, in what the model will read of {plugin_name!r}:", file=stream)
        print(report(shown), file=stream)
    if high and not allow_flagged:
        _fail(f"{len(high)} high finding(s) in the operations of {plugin_name!r} (above): they read like hidden "
              "instructions to the model. Nothing was added. If you have read every finding and still trust this "
              "API, add it anyway with --allow-flagged.")
    return findings


def _absolute(source: str) -> str:
    from pathlib import Path

    if source.lower().startswith(("http://", "https://")):
        return source
    return str(Path(source).expanduser().resolve())


def _origins(url: str | None) -> list[str]:
    """The origin (scheme://host:port) of an http(s) URL, as a list (empty for a file path or no URL).

    Never a cloud metadata endpoint: a spec that points there is refused, --allow-private or not."""
    from ..plugins.openapi.ssrf import BlockedURL, is_metadata_host, origin_of, split_url

    if not url or not url.lower().startswith(("http://", "https://")):
        return []
    try:
        scheme, host, port = split_url(url)
    except BlockedURL:
        return []
    return [] if is_metadata_host(host) else [origin_of(scheme, host, port)]


def _auth_options(pairs: list[str], schemes: dict[str, Any]) -> dict[str, Any]:
    """SCHEME=VAR (or VAR1:VAR2 for basic and client credentials) -> auth options naming variables.

    Messages never repeat what was given after '=': it may be a secret typed by mistake.
    """
    import re

    from ..plugins.openapi.auth import AuthError, scheme_kind

    variable = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
    options: dict[str, Any] = {}
    for pair in pairs:
        scheme, sep, variables = (part.strip() for part in pair.partition("="))
        if not sep or not scheme or not variables:
            raise AuthError("--auth takes SCHEME=ENVVAR: the security scheme's name, then the name of the "
                            "environment variable that holds the secret")
        if scheme not in schemes:
            raise AuthError(f"--auth {scheme}=...: the spec has no security scheme {scheme!r} "
                            f"(it has: {', '.join(schemes) or 'none'})")
        names = variables.split(":")
        if not all(variable.match(n) for n in names) or len(names) > 2:
            raise AuthError(f"--auth {scheme}=...: give the name of an environment variable (letters, digits, _), "
                            "not the secret itself; the secret stays in the environment")
        kind = scheme_kind(schemes[scheme])
        if len(names) == 2 and kind == "http basic":
            options[scheme] = {"username_env": names[0], "password_env": names[1]}
        elif len(names) == 2 and kind == "oauth2":
            options[scheme] = {"client_id_env": names[0], "client_secret_env": names[1]}
        elif len(names) == 2:
            raise AuthError(f"--auth {scheme}=...: {scheme} ({kind}) takes one variable")
        elif kind in ("oauth2", "openIdConnect"):
            options[scheme] = {"token_env": names[0]}
        else:
            options[scheme] = {"env": names[0]}
    return options
