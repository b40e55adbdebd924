"""Legacy ChatGPT plugin manifests (`ai-plugin.json`): the OpenAPI spec they point to, plus their
auth description turned into an OpenAPI security scheme that plugdeck's auth options can fill.

| manifest `auth.type`                       | security scheme (named after the type) | configure with            |
|--------------------------------------------|----------------------------------------|---------------------------|
| `none`                                     | none                                   |                           |
| `service_http` / `user_http`, bearer/basic | http bearer / http basic               | `--auth user_http=VAR`    |
| `oauth`                                    | oauth2 authorization code              | `--auth oauth=TOKEN_VAR`  |

The manifest's `verification_tokens` are ChatGPT's own and are never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from .spec import Fetch, Spec, SpecError, from_document, is_url, parse_text, read_text


@dataclass
class Manifest:
    name: str  # name_for_model
    description: str  # description_for_model
    api_url: str
    auth: dict[str, Any]


def is_manifest(document: dict[str, Any]) -> bool:
    return isinstance(document.get("api"), dict) and ("name_for_model" in document or "schema_version" in document)


def read_manifest(document: dict[str, Any], source: str) -> Manifest:
    api = document.get("api") or {}
    if api.get("type", "openapi") != "openapi" or not api.get("url"):
        raise SpecError(f"{source}: the manifest's 'api' must be {{\"type\": \"openapi\", \"url\": ...}}")
    return Manifest(
        name=str(document.get("name_for_model") or ""),
        description=str(document.get("description_for_model") or document.get("description_for_human") or ""),
        api_url=str(api["url"]),
        auth=document.get("auth") if isinstance(document.get("auth"), dict) else {"type": "none"},
    )


def security_scheme(auth: dict[str, Any], source: str) -> tuple[str, dict[str, Any]] | None:
    kind = str(auth.get("type", "none"))
    if kind == "none":
        return None
    if kind in ("service_http", "user_http"):
        how = str(auth.get("authorization_type", "bearer")).lower()
        if how not in ("bearer", "basic"):
            raise SpecError(f"{source}: auth authorization_type {how!r} is not supported (bearer or basic)")
        return kind, {"type": "http", "scheme": how, "description": f"ChatGPT plugin {kind} auth"}
    if kind == "oauth":
        flow = {"authorizationUrl": str(auth.get("client_url", "")), "tokenUrl": str(auth.get("authorization_url", "")),
                "scopes": {s: "" for s in str(auth.get("scope", "")).split() if s}}
        return kind, {"type": "oauth2", "flows": {"authorizationCode": flow},
                      "description": "ChatGPT plugin OAuth: give a ready access token"}
    raise SpecError(f"{source}: manifest auth type {kind!r} is not supported (none, service_http, user_http, oauth)")


def load_manifest_spec(document: dict[str, Any], source: str, fetch: Fetch | None,
                       openapi: str | None = None) -> tuple[Spec, Manifest]:
    """The manifest's OpenAPI spec (or `openapi`, a local copy of it), with the manifest's auth added."""
    manifest = read_manifest(document, source)
    spec_source = openapi or _locate(manifest.api_url, source)
    try:
        text = read_text(spec_source, fetch)
    except Exception as exc:
        raise SpecError(f"{source}: could not read the OpenAPI spec the manifest names ({spec_source}): {exc}. "
                        "Download it and pass it with --openapi FILE.") from None
    spec = from_document(parse_text(text, spec_source), spec_source, url=spec_source if is_url(spec_source) else None)
    document = dict(spec.document)
    if not document.get("servers"):  # the API lives where the manifest says
        parts = urlsplit(manifest.api_url)
        document["servers"] = [{"url": f"{parts.scheme}://{parts.netloc}"}]
    scheme = security_scheme(manifest.auth, source)
    if scheme is not None:
        name, definition = scheme
        components = dict(document.get("components") or {})
        schemes = dict(components.get("securitySchemes") or {})
        schemes.setdefault(name, definition)
        components["securitySchemes"] = schemes
        document["components"] = components
        document["security"] = [{name: []}, *(document.get("security") or [])]
        document["paths"] = _also_accept(document.get("paths") or {}, name)
    info = dict(document.get("info") or {})
    if manifest.description:
        info["description"] = manifest.description
    document["info"] = info
    return Spec(document, spec.source, spec.version, spec.url), manifest


def _also_accept(paths: dict[str, Any], scheme: str) -> dict[str, Any]:
    """ChatGPT sent the manifest's auth on every call: operations with their own `security` list
    get the manifest's scheme as the first alternative."""
    out = {}
    for path, item in paths.items():
        if isinstance(item, dict):
            item = {
                method: {**op, "security": [{scheme: []}, *op["security"]]}
                if isinstance(op, dict) and isinstance(op.get("security"), list) else op
                for method, op in item.items()
            }
        out[path] = item
    return out


def _locate(api_url: str, source: str) -> str:
    """Where to read the spec: beside a local manifest if a file of that name is there, else the URL."""
    if is_url(source):
        return urljoin(source, api_url)
    beside = Path(source).expanduser().parent / Path(urlsplit(api_url).path).name
    return str(beside) if beside.is_file() else api_url
