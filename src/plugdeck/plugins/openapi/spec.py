"""OpenAPI documents: read one (a file or an http(s) URL, YAML or JSON), tell its version, bring
Swagger 2.0 into OpenAPI 3 form, and resolve local `$ref`s into plain JSON Schema.

References are inlined; a reference that leads back into itself is cut with a placeholder schema
(`{"description": "(recursive: see Node)"}`) so circular specs neither hang nor blow up.
References into other files are refused with a message that says how to bundle the spec.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urljoin

from ...errors import UserError

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_REF_DEPTH = 12  # nested references inlined per schema before a placeholder stands in

Fetch = Callable[[str], str]


class SpecError(UserError, ValueError):
    """A spec plugdeck cannot use; the message names the spec and the problem."""


@dataclass
class Spec:
    document: dict[str, Any]  # always OpenAPI 3 shaped (Swagger 2.0 is converted)
    source: str  # the path or URL it was read from, for messages
    version: str  # as declared: "3.0.3", "3.1.0", "2.0"
    url: str | None = None  # where it was fetched from, to resolve relative server URLs

    @property
    def title(self) -> str:
        return str(self.document.get("info", {}).get("title") or "")


# ---- reading ------------------------------------------------------------------------------------


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def read_text(source: str, fetch: Fetch | None = None) -> str:
    if is_url(source):
        if fetch is None:
            raise SpecError(f"{source}: fetching specs over the network is not available here")
        return fetch(source)
    path = Path(source).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{source}: cannot be read ({exc})") from None


def parse_text(text: str, source: str) -> dict[str, Any]:
    """JSON or YAML (YAML 1.1's dates and such stay as written)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    else:
        try:
            import yaml
        except ImportError:
            from ...extras import install_hint

            raise SpecError(f"{source} is YAML, and reading YAML needs PyYAML, which comes with plugdeck's optional "
                            f"part 'openapi': {install_hint('openapi')}") from None
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(text, Loader=loader)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(f"{source} is neither valid JSON nor valid YAML: {problem}{at}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source} does not hold an object (an OpenAPI document is a mapping at the top)")
    return _plain(data)


def _plain(value: Any) -> Any:
    """Keys as strings, YAML dates as text: what JSON (and a snapshot) can hold."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def from_document(document: dict[str, Any], source: str, url: str | None = None) -> Spec:
    """Check the version; convert Swagger 2.0; refuse anything else with a clear message."""
    if "openapi" in document:
        version = str(document["openapi"])
        if not re.match(r"^3\.[01](\.\d+)?", version):
            raise SpecError(f"{source}: OpenAPI {version} is not supported (plugdeck reads 3.0, 3.1 and Swagger 2.0)")
        if not isinstance(document.get("paths", {}), dict):
            raise SpecError(f"{source}: 'paths' must be a mapping of path to operations")
        return Spec(document, source, version, url)
    if "swagger" in document:
        version = str(document["swagger"])
        if version != "2.0":
            raise SpecError(f"{source}: Swagger {version} is not supported; convert it to OpenAPI 3 first")
        return Spec(swagger2_to_openapi3(document, source), source, version, url)
    hint = " (it looks like a JSON Schema, not an API description)" if "$schema" in document else ""
    raise SpecError(f"{source} is not an OpenAPI document: it has no 'openapi' or 'swagger' field{hint}")


# ---- Swagger 2.0 -> OpenAPI 3 ---------------------------------------------------------------------

_PARAM_SCHEMA_KEYS = ("type", "format", "items", "enum", "default", "minimum", "maximum", "exclusiveMinimum",
                      "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
                      "uniqueItems", "multipleOf")
_COLLECTION_STYLES = {  # collectionFormat -> (style for query/cookie, explode)
    "csv": ("form", False), "ssv": ("spaceDelimited", False), "pipes": ("pipeDelimited", False),
    "tsv": ("form", False), "multi": ("form", True),
}
_FLOWS = {"implicit": "implicit", "password": "password", "application": "clientCredentials",
          "accessCode": "authorizationCode"}


def swagger2_to_openapi3(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """The common subset: host/basePath/schemes, parameters, body, formData, definitions, security."""
    out: dict[str, Any] = {"openapi": "3.0.3", "info": doc.get("info") or {}, "paths": {}}
    schemes = doc.get("schemes") or ["https"]
    scheme = "https" if "https" in schemes else schemes[0]
    base_path = str(doc.get("basePath") or "").rstrip("/")
    if doc.get("host"):
        out["servers"] = [{"url": f"{scheme}://{doc['host']}{base_path}"}]
    elif base_path:
        out["servers"] = [{"url": base_path}]
    shared_params = doc.get("parameters") or {}

    def param(p: dict[str, Any]) -> dict[str, Any]:
        ref = p.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if not ref.startswith("#/parameters/") or name not in shared_params:
                raise SpecError(f"{source}: parameter reference {ref!r} cannot be resolved")
            return shared_params[name]
        return p

    consumes_default = doc.get("consumes") or []
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        new_item: dict[str, Any] = {}
        common = [param(p) for p in item.get("parameters") or []]
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            by_key = {(p.get("in"), p.get("name")): p for p in common}
            by_key.update({(p.get("in"), p.get("name")): p for p in map(param, op.get("parameters") or [])})
            new_op = {k: v for k, v in op.items() if k not in ("parameters", "consumes", "produces", "responses")}
            consumes = op.get("consumes") or consumes_default
            body = _swagger_body(list(by_key.values()), consumes)
            if body:
                new_op["requestBody"] = body
            new_op["parameters"] = [_swagger_param(p) for p in by_key.values() if p.get("in") not in ("body", "formData")]
            new_item[method] = new_op
        out["paths"][path] = new_item
    components: dict[str, Any] = {}
    if doc.get("definitions"):
        components["schemas"] = doc["definitions"]
    if doc.get("securityDefinitions"):
        components["securitySchemes"] = {
            name: _swagger_security(s) for name, s in doc["securityDefinitions"].items() if isinstance(s, dict)
        }
    if components:
        out["components"] = components
    if "security" in doc:
        out["security"] = doc["security"]
    return _rewrite_refs(out)


def _swagger_param(p: dict[str, Any]) -> dict[str, Any]:
    schema = {k: p[k] for k in _PARAM_SCHEMA_KEYS if k in p}
    new = {"name": p.get("name"), "in": p.get("in"), "schema": schema}
    for key in ("description", "required", "allowEmptyValue"):
        if key in p:
            new[key] = p[key]
    if p.get("type") == "array":
        style, explode = _COLLECTION_STYLES.get(p.get("collectionFormat", "csv"), ("form", False))
        new["style"] = style if p.get("in") in ("query", "cookie") else "simple"
        new["explode"] = explode
    return new


def _swagger_body(params: list[dict[str, Any]], consumes: list[str]) -> dict[str, Any] | None:
    body = next((p for p in params if p.get("in") == "body"), None)
    if body is not None:
        media = next((c for c in consumes if "json" in c), consumes[0] if consumes else "application/json")
        new: dict[str, Any] = {"content": {media: {"schema": body.get("schema") or {}}}}
        if body.get("description"):
            new["description"] = body["description"]
        if body.get("required"):
            new["required"] = True
        return new
    fields = [p for p in params if p.get("in") == "formData"]
    if not fields:
        return None
    multipart = any(p.get("type") == "file" for p in fields) or "multipart/form-data" in consumes
    properties = {}
    for p in fields:
        schema = {k: p[k] for k in _PARAM_SCHEMA_KEYS if k in p}
        if schema.get("type") == "file":
            schema = {"type": "string", "format": "binary"}
        if p.get("description"):
            schema["description"] = p["description"]
        properties[p.get("name")] = schema
    required = [p.get("name") for p in fields if p.get("required")]
    schema = {"type": "object", "properties": properties, **({"required": required} if required else {})}
    media = "multipart/form-data" if multipart else "application/x-www-form-urlencoded"
    return {"content": {media: {"schema": schema}}, **({"required": True} if required else {})}


def _swagger_security(s: dict[str, Any]) -> dict[str, Any]:
    kind = s.get("type")
    if kind == "basic":
        return {"type": "http", "scheme": "basic", **({"description": s["description"]} if "description" in s else {})}
    if kind == "oauth2":
        flow = {"scopes": s.get("scopes") or {}}
        for key in ("authorizationUrl", "tokenUrl"):
            if key in s:
                flow[key] = s[key]
        return {"type": "oauth2", "flows": {_FLOWS.get(s.get("flow"), "implicit"): flow}}
    return dict(s)


def _rewrite_refs(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
                v = "#/components/schemas/" + v[len("#/definitions/"):]
            out[k] = _rewrite_refs(v)
        return out
    if isinstance(value, list):
        return [_rewrite_refs(v) for v in value]
    return value


# ---- $ref resolution --------------------------------------------------------------------------------

_DROPPED_KEYS = {"xml", "externalDocs", "discriminator", "example", "title", "$schema", "$id", "$anchor",
                 "$dynamicAnchor", "$comment", "$defs", "definitions", "nullable"}
_SCHEMA_VALUED = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
                  "unevaluatedItems", "unevaluatedProperties", "contentSchema", "additionalItems")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}


class Resolver:
    """Resolves local references of one document and turns OpenAPI schemas into JSON Schema."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.document = spec.document
        self._memo: dict[str, dict[str, Any]] = {}

    def lookup(self, ref: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SpecError(
                f"{self.spec.source}: the reference {ref!r} points into another file; plugdeck resolves only "
                "references inside the spec. Bundle it into one file first (e.g. `redocly bundle`)."
            )
        node: Any = self.document
        for token in ref[1:].split("/")[1:] if ref != "#" else []:
            token = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise SpecError(f"{self.spec.source}: the reference {ref!r} points to nothing")
        return node

    def deref(self, node: Any) -> Any:
        """Follow `$ref` chains of non-schema objects (parameters, request bodies, path items)."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise SpecError(f"{self.spec.source}: the reference {ref!r} refers to itself")
            seen.add(ref)
            node = self.lookup(ref)
        return node

    def schema(self, node: Any) -> dict[str, Any]:
        """A self-contained JSON Schema (2020-12) for an OpenAPI 3.0 or 3.1 schema object."""
        result, _ = self._walk(node, ())
        return result

    # Each walk returns (schema, lowest stack index of a reference cut inside it). A result is
    # memoised only when its cuts are all within its own subtree, i.e. it does not depend on the
    # path by which it was reached.
    def _walk(self, node: Any, stack: tuple[str, ...]) -> tuple[dict[str, Any], float]:
        if node is True or node is None:
            return {}, float("inf")
        if node is False:
            return {"not": {}}, float("inf")
        if not isinstance(node, dict):
            return {}, float("inf")
        if "$ref" in node:
            return self._walk_ref(node, stack)
        return self._convert(node, stack)

    def _walk_ref(self, node: dict[str, Any], stack: tuple[str, ...]) -> tuple[dict[str, Any], float]:
        ref = node["$ref"]
        name = str(ref).rsplit("/", 1)[-1]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if ref in stack:
            return {"description": f"(recursive: see {name})"}, stack.index(ref)
        if len(stack) >= MAX_REF_DEPTH:
            return {"description": f"(nested too deeply: see {name})"}, -1
        if ref in self._memo:
            resolved, lowest = self._memo[ref], float("inf")
        else:
            resolved, lowest = self._walk(self.lookup(ref), (*stack, ref))
            if lowest >= len(stack):
                self._memo[ref] = resolved
        if siblings:  # OpenAPI 3.1 lets a reference carry its own description and such
            extra, extra_lowest = self._convert(siblings, stack)
            resolved, lowest = {**resolved, **extra}, min(lowest, extra_lowest)
        return resolved, lowest

    def _convert(self, node: dict[str, Any], stack: tuple[str, ...]) -> tuple[dict[str, Any], float]:
        out: dict[str, Any] = {}
        lowest = float("inf")
        read_only: set[str] = set()

        def walk(value: Any) -> dict[str, Any]:
            nonlocal lowest
            result, cut = self._walk(value, stack)
            lowest = min(lowest, cut)
            return result

        for key, value in node.items():
            if key in _DROPPED_KEYS or key.startswith("x-"):
                continue
            if key in _SCHEMA_VALUED:
                if key == "items" and isinstance(value, list):  # tuple-style items, seen in old specs
                    out["prefixItems"] = [walk(v) for v in value]
                elif isinstance(value, bool) and key == "additionalProperties":
                    out[key] = value
                else:
                    out[key] = walk(value)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [walk(v) for v in value]
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                walked = {name: walk(v) for name, v in value.items()}
                if key == "properties":  # server-assigned fields are not for the caller to send
                    read_only = {n for n, s in walked.items() if s.get("readOnly") is True}
                    walked = {n: s for n, s in walked.items() if n not in read_only}
                out[key] = walked
            elif key == "type":
                kind = _json_type(value)
                if kind is not None:
                    out["type"] = kind
            elif key == "required":
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    out["required"] = value
            elif key == "enum":
                if isinstance(value, list):
                    out["enum"] = value
            elif key == "pattern":
                if isinstance(value, str) and _valid_regex(value):
                    out["pattern"] = value
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(value, bool):  # OpenAPI 3.0 (draft 4): a flag on minimum/maximum
                    bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                    if value and isinstance(node.get(bound), (int, float)):
                        out[key] = node[bound]
                elif isinstance(value, (int, float)):
                    out[key] = value
            else:
                out[key] = value
        for key in ("minimum", "maximum"):
            exclusive = "exclusiveMinimum" if key == "minimum" else "exclusiveMaximum"
            if node.get(exclusive) is True and key in out:
                del out[key]
        if "example" in node and isinstance(node["example"], (str, int, float, bool)) and "examples" not in out:
            out["examples"] = [node["example"]]
        if node.get("nullable") is True:
            out = _nullable(out)
        if read_only and "required" in out:
            out["required"] = [r for r in out["required"] if r not in read_only]
        return out, lowest


def _json_type(value: Any) -> Any:
    if isinstance(value, str):
        value = "string" if value == "file" else value
        return value if value in _TYPES else None
    if isinstance(value, list):
        kinds = [v for v in value if isinstance(v, str) and v in _TYPES]
        return kinds or None
    return None


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema = {**schema, "type": [kind, "null"]}
    elif isinstance(kind, list) and "null" not in kind:
        schema = {**schema, "type": [*kind, "null"]}
    elif kind is None:
        return {"anyOf": [schema, {"type": "null"}]} if schema else schema
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _valid_regex(pattern: str) -> bool:
    try:
        re.compile(pattern)
        return True
    except (re.error, RecursionError):
        return False


def server_url(spec: Spec) -> str | None:
    """The first server's URL with its variables at their defaults, made absolute when possible."""
    servers = spec.document.get("servers") or []
    if not servers or not isinstance(servers[0], dict) or not servers[0].get("url"):
        return None
    server = servers[0]
    url = str(server["url"])
    for name, variable in (server.get("variables") or {}).items():
        if isinstance(variable, dict) and "default" in variable:
            url = url.replace("{" + name + "}", str(variable["default"]))
    if spec.url and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        url = urljoin(spec.url, url)
    return url
