"""HTTP APIs described by OpenAPI (3.0, 3.1, Swagger 2.0) or a legacy ChatGPT `ai-plugin.json`,
as plugdeck plugins: one tool per operation.

    plugdeck plugins add openapi ./pizzeria/openapi.yaml --name pizzeria --base-url http://127.0.0.1:8100 --allow-private

Options of an added plugin (kept in PLUGDECK_HOME/plugins.json; never secrets):

    spec           the path or URL it was added from
    snapshot       the pinned copy under PLUGDECK_HOME (specs/NAME.json) that runs use, and its sha256
    base_url       the pinned base URL (default: the spec's first server)
    allow_private  false, true (any private address except cloud metadata), or a list of origins
                   (http://127.0.0.1:8100), hosts and networks (standard ports only): see ssrf.py
    ports          the ports requests and redirects may go to (default: any)
    auth           {scheme: {"env": VAR} | ...} (see auth.py)
    operations     an allowlist of tool names or operationIds
    ca_bundle      a CA certificate file to trust for HTTPS (default: the usual trust store)
    timeout, response_budget, max_response_bytes
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..base import Plugin
from .auth import AuthError, Authenticator
from .chatgpt import Manifest, is_manifest, load_manifest_spec
from .http import GuardedHTTP, OperationCaller, fetch_text, receipt
from .operations import Operation, Skipped, list_operations, operation_tool
from .spec import Resolver, Spec, SpecError, from_document, is_url, parse_text, read_text, server_url
from .ssrf import BlockedURL, Guard, Resolver as DNSResolver, origin_of, split_url

__all__ = ["build_plugin", "openapi_plugin", "prepare", "snapshot_spec", "load_source", "default_name", "guard_for",
           "metadata_texts", "NAME_LIMIT", "SpecError", "AuthError", "Guard", "BlockedURL"]

SNAPSHOT_DIR = "specs"


@dataclass
class Prepared:
    """Everything an import produced: the plugin's parts and what was left out (and why)."""

    name: str
    spec: Spec
    base_url: str
    operations: list[Operation]
    skipped: list[Skipped]
    guard: Guard
    auth: Authenticator
    manifest: Manifest | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def plugin(self) -> Plugin:
        http = GuardedHTTP(self.base_url, self.guard, timeout=float(self.options.get("timeout", 30.0)),
                           max_bytes=int(self.options.get("max_response_bytes", 1_000_000)),
                           ca_bundle=self.options.get("ca_bundle"))
        caller = OperationCaller(http, self.auth, budget=int(self.options.get("response_budget", 12_000)))
        timeout = float(self.options.get("timeout", 30.0))
        tools = [operation_tool(op, caller.bind(op), timeout=timeout + 5) for op in self.operations]
        for op, tool in zip(self.operations, tools):
            tool.summary = partial(receipt, op, base_url=self.base_url)  # shown when a person confirms
            tool.egress = origin_of(*split_url(self.base_url))  # where its arguments go (plugdeck.policy.flows)
        info = self.spec.document.get("info") or {}
        title = str(info.get("title") or self.name)
        about = " ".join(str(info.get("description") or "").split())
        return Plugin(
            name=self.name,
            tools=tools,
            version=str(info.get("version") or "0"),
            description=f"{title}: {about[:300]}" if about else title,
            source=f"openapi {self.options.get('spec') or self.spec.source}",
            needs={"network": sorted({origin_of(*split_url(u)) for u in [self.base_url, *self.auth.token_urls()]}),
                   "secrets": self.auth.env_names},
        )


def metadata_texts(prepared: Prepared) -> list[Any]:
    """What the model will read of this plugin, for the metadata scanner (R13/R26): each operation's
    name, description and parameter schema, and the plugin's own title and description (where a
    ChatGPT manifest's description_for_model goes)."""
    from ..scan import ToolText

    info = prepared.spec.document.get("info") or {}
    about = [(f"plugin {key}", str(info[key])) for key in ("title", "description") if info.get(key)]
    texts = [ToolText(prepared.name, about)] if about else []
    return texts + [ToolText.of(op.name, op.description, op.schema) for op in prepared.operations]


def guard_for(options: dict[str, Any], resolver: DNSResolver | None = None) -> Guard:
    allow = options.get("allow_private", False)
    if not isinstance(allow, (bool, list)):
        raise SpecError("allow_private must be true, false or a list of origins (http://host:port), hosts "
                        "and networks")
    try:
        return Guard(allow, resolver=resolver, ports=options.get("ports"))
    except ValueError as exc:
        raise SpecError(str(exc)) from None


def load_source(source: str | dict[str, Any], guard: Guard, openapi: str | None = None) -> tuple[Spec, Manifest | None]:
    """Read an OpenAPI document or an ai-plugin.json (file, URL or an already parsed dict)."""
    fetch = lambda url: fetch_text(url, guard)  # noqa: E731
    if isinstance(source, dict):
        document, label = source, "the given document"
    else:
        label = str(source)
        if is_url(label):
            guard.pin(label)  # the person named this URL: its origin is the plugin's own
        try:
            document = parse_text(read_text(label, fetch), label)
        except (BlockedURL, SpecError):
            raise
        except Exception as exc:  # a network failure while fetching
            raise SpecError(f"{label}: could not be fetched: {getattr(exc, 'message', exc)}") from None
    if is_manifest(document):
        return load_manifest_spec(document, label, fetch, openapi)
    url = label if isinstance(source, str) and is_url(label) else None
    return from_document(document, label, url=url), None


def snapshot_spec(name: str, spec: Spec, home: Path) -> dict[str, str]:
    """Pin the spec: write it under home and return the options that point to it."""
    data = {"source": spec.source, "url": spec.url, "version": spec.version, "document": spec.document}
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)
    folder = Path(home) / SNAPSHOT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, encoding="utf-8", suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, folder / f"{name}.json")
    return {"snapshot": f"{SNAPSHOT_DIR}/{name}.json", "sha256": hashlib.sha256(text.encode()).hexdigest()}


def load_snapshot(name: str, options: dict[str, Any], home: Path) -> Spec:
    path = Path(home) / options["snapshot"]
    try:
        raw = path.read_bytes()
    except OSError:
        raise SpecError(f"plugin {name!r}: its pinned spec {path} is missing; add the plugin again") from None
    if options.get("sha256") and hashlib.sha256(raw).hexdigest() != options["sha256"]:
        raise SpecError(f"plugin {name!r}: its pinned spec {path} changed since it was added; review it and add "
                        "the plugin again (plugdeck plugins add openapi ... --replace)")
    data = json.loads(raw)
    return Spec(data["document"], data.get("source") or str(path), data.get("version") or "", data.get("url"))


def prepare(name: str, options: dict[str, Any], home: Path | None = None, *, spec: Spec | None = None,
            guard: Guard | None = None) -> Prepared:
    """Read (or reuse) the spec, pin the base URL, check it, and build the operations."""
    guard = guard or guard_for(options)
    manifest = None
    if spec is None:
        if options.get("snapshot") and home is not None:
            spec = load_snapshot(name, options, Path(home))
        elif options.get("spec"):
            spec, manifest = load_source(options["spec"], guard, options.get("openapi"))
        else:
            raise SpecError(f"plugin {name!r}: no 'spec' given (a path or URL of an OpenAPI document)")
    base_url = str(options.get("base_url") or server_url(spec) or "")
    if not base_url:
        raise SpecError(f"{spec.source} names no server URL; give the API's base URL with --base-url")
    if not is_url(base_url):
        raise SpecError(f"{spec.source}: the server URL {base_url!r} is not absolute; give the full base URL "
                        "with --base-url (for example https://api.example.com/v1)")
    try:
        guard.pin(base_url)  # the plugin's own origin; every other private origin must be listed
        guard.check_static(base_url)
    except BlockedURL as exc:
        raise SpecError(f"plugin {name!r}: base URL refused: {exc}") from None
    schemes = (spec.document.get("components") or {}).get("securitySchemes") or {}
    auth = Authenticator(schemes, options.get("auth") or {}, base_url, spec.source)
    operations, skipped = list_operations(spec, Resolver(spec))
    wanted = options.get("operations")
    if wanted:
        known = {n for op in operations for n in (op.name, op.operation_id) if n}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            shown = ", ".join(sorted(op.name for op in operations)[:30])
            raise SpecError(f"{spec.source} has no operation named {', '.join(unknown)} (it has: {shown})")
        operations = [op for op in operations if op.name in wanted or op.operation_id in wanted]
    if not operations:  # a plugin without tools would only look added
        if skipped:
            reasons = "; ".join(f"{s.label}: {s.reason}" for s in skipped[:5]) + (" …" if len(skipped) > 5 else "")
            raise SpecError(f"{spec.source}: no tool could be made from it: every operation was left out ({reasons})")
        only_webhooks = " (only webhooks: calls the API makes, not ones to make)" if spec.document.get("webhooks") else ""
        raise SpecError(f"{spec.source} has no operations{only_webhooks}, so it would make a plugin without tools")
    return Prepared(name, spec, base_url, operations, skipped, guard, auth, manifest, options)


def build_plugin(name: str, options: dict[str, Any], home: Path) -> Plugin:
    """The registry's builder for plugins added with `plugdeck plugins add openapi`."""
    return prepare(name, options, home).plugin()


def openapi_plugin(
    spec: str | dict[str, Any],
    *,
    name: str | None = None,
    base_url: str | None = None,
    allow_private: bool | list[str] = False,
    auth: dict[str, Any] | None = None,
    operations: list[str] | None = None,
    timeout: float = 30.0,
    response_budget: int = 12_000,
    ca_bundle: str | None = None,
    resolver: DNSResolver | None = None,
    allow_flagged: bool = False,
) -> Plugin:
    """A plugin from an OpenAPI spec (path, URL or parsed dict) or an ai-plugin.json, for Python use.

    Operations whose text the metadata scanner flags high refuse the plugin unless `allow_flagged` (R13)."""
    options: dict[str, Any] = {"base_url": base_url, "allow_private": allow_private, "auth": auth or {},
                               "operations": operations, "timeout": timeout, "response_budget": response_budget,
                               "ca_bundle": ca_bundle}
    guard = guard_for(options, resolver)
    loaded, manifest = load_source(spec, guard)
    options["spec"] = spec if isinstance(spec, str) else None
    plugin_name = name or default_name(loaded, manifest)
    prepared = prepare(plugin_name, options, spec=loaded, guard=guard)
    if not allow_flagged:
        from ..scan import blocking, report, scan_tools

        high = blocking(scan_tools(metadata_texts(prepared)))
        if high:
            raise SpecError(f"{prepared.spec.source}: the metadata scanner found what reads like hidden instructions "
                            f"to the model:\n{report(high)}\nPass allow_flagged=True to use it anyway.")
    return prepared.plugin()


# When two plugins share a tool name the model sees PLUGIN_TOOL, and models accept function names of
# at most 64 characters: a plugin name of at most 32 leaves the tool at least 31.
NAME_LIMIT = 32
_SUBTITLE = re.compile(r"\s[-–—|:]\s|:\s|[(\[]|\s(?:with|for|from|by|using|via|powered)\s", re.IGNORECASE)
_JOINERS = {"with", "and", "or", "for", "from", "by", "of", "the", "a", "an", "to", "in", "on", "using", "via"}


def default_name(spec: Spec, manifest: Manifest | None) -> str:
    """A readable slug from the manifest's name_for_model or the spec's title, in whole words:
    "Spotify Web API with fixes and improvements" -> `spotify_web_api`, "Swagger Petstore - OpenAPI
    3.0" -> `swagger_petstore` (the title before a subtitle, at most NAME_LIMIT characters)."""
    raw = (manifest.name if manifest else "") or spec.title or "api"
    words = re.findall(r"[a-z0-9]+", _SUBTITLE.split(raw, maxsplit=1)[0].lower()) or re.findall(r"[a-z0-9]+", raw.lower())
    kept: list[str] = []
    for word in words:
        if len("_".join([*kept, word])) > NAME_LIMIT:
            break
        kept.append(word)
    while len(kept) > 1 and kept[-1] in _JOINERS:
        kept.pop()
    if not kept:  # one word longer than the limit: cut it, there is no word boundary to keep
        return words[0][:NAME_LIMIT] if words else "api"
    return "_".join(kept)
