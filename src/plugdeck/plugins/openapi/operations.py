"""OpenAPI operations -> plugdeck tools.

One tool per operation. Its name comes from the operationId (or method + path), made a valid
wire name; its parameters are one JSON Schema object that merges path, query, header and cookie
parameters with the request body, and each argument remembers where it goes on the wire.
GET and HEAD are `read`; every other method is `write` (a person confirms it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ...errors import UserError
from ...tools import Tool, to_wire_name, tool_from_schema
from .spec import METHODS, Resolver, Spec, SpecError

LOCATIONS = ("path", "query", "header", "cookie")
DEFAULT_STYLE = {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}
IGNORED_HEADERS = {"accept", "content-type", "authorization"}  # OpenAPI: set by the client, not parameters
ARG_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")
DESCRIPTION_LIMIT = 1024
READ_METHODS = {"get", "head"}


class OperationProblem(UserError, ValueError):
    """An operation plugdeck cannot turn into a tool; the others still load."""


@dataclass(frozen=True)
class Param:
    arg: str  # the tool argument
    location: str  # path, query, header, cookie
    name: str  # the name on the wire
    style: str
    explode: bool
    allow_reserved: bool = False
    as_json: bool = False  # described with `content`: sent as JSON text


@dataclass(frozen=True)
class Body:
    media_type: str
    required: bool
    arg: str | None = None  # the whole body is this one argument
    fields: tuple[str, ...] = ()  # or: these arguments are the body's top-level properties
    binary_fields: tuple[str, ...] = ()  # multipart parts sent as files


@dataclass
class Operation:
    name: str
    method: str
    path: str
    description: str
    schema: dict[str, Any]
    params: list[Param] = field(default_factory=list)
    body: Body | None = None
    security: list[dict[str, list[str]]] = field(default_factory=list)
    operation_id: str | None = None

    @property
    def effect(self) -> str:
        return "read" if self.method in READ_METHODS else "write"

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


@dataclass
class Skipped:
    label: str
    reason: str


def count_operations(spec: Spec) -> int:
    """How many operations the spec declares (what the tool count should equal)."""
    return sum(
        1
        for item in (spec.document.get("paths") or {}).values()
        if isinstance(item, dict)
        for method in METHODS
        if isinstance(item.get(method), dict)
    )


def list_operations(spec: Spec, resolver: Resolver | None = None) -> tuple[list[Operation], list[Skipped]]:
    resolver = resolver or Resolver(spec)
    document = spec.document
    hidden = credential_parameters(document)
    top_security = document.get("security") or []
    operations: list[Operation] = []
    skipped: list[Skipped] = []
    taken: set[str] = set()
    for path, item in (document.get("paths") or {}).items():
        try:
            item = resolver.deref(item)
        except SpecError as exc:
            skipped.append(Skipped(str(path), str(exc)))
            continue
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            label = f"{method.upper()} {path}"
            try:
                operation = _operation(resolver, str(path), method, op, item.get("parameters") or [], taken, hidden)
            except (OperationProblem, SpecError) as exc:
                skipped.append(Skipped(label, str(exc)))
                continue
            operation.security = op["security"] if isinstance(op.get("security"), list) else top_security
            taken.add(operation.name)
            operations.append(operation)
    return operations, skipped


def tool_name(op: dict[str, Any], method: str, path: str, taken: set[str]) -> str:
    raw = op.get("operationId")
    if not isinstance(raw, str) or not raw.strip():
        raw = re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9]", "_", f"{method}_{path}")).strip("_")
    return to_wire_name(raw.strip(), taken)


def credential_parameters(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(location, name) of API keys: some specs also list them as parameters, but the model must
    never be asked for a credential; auth supplies it."""
    schemes = (document.get("components") or {}).get("securitySchemes") or {}
    return {
        (str(s.get("in")), str(s.get("name")).lower())
        for s in schemes.values()
        if isinstance(s, dict) and s.get("type") == "apiKey"
    }


def _operation(resolver: Resolver, path: str, method: str, op: dict[str, Any],
               common: list[Any], taken: set[str], hidden: set[tuple[str, str]]) -> Operation:
    name = tool_name(op, method, path, taken)
    merged = _merge_parameters(resolver, common, op.get("parameters") or [])
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[Param] = []
    for raw in merged:
        location, wire = raw.get("in"), str(raw.get("name"))
        if location not in LOCATIONS:
            raise OperationProblem(f"parameter {wire!r} is in {location!r}; plugdeck sends parameters in {', '.join(LOCATIONS)}")
        if (location == "header" and wire.lower() in IGNORED_HEADERS) or (location, wire.lower()) in hidden:
            continue
        arg = _argument_name(wire, location, properties)
        schema, as_json = _parameter_schema(resolver, raw)
        style = str(raw.get("style") or DEFAULT_STYLE[location])
        explode = raw.get("explode", style == "form")
        params.append(Param(arg, location, wire, style, bool(explode), bool(raw.get("allowReserved")), as_json))
        properties[arg] = schema
        if location == "path" or raw.get("required") is True:
            required.append(arg)
    for wire in re.findall(r"\{([^}]+)\}", path):  # path placeholders nobody described
        if not any(p.location == "path" and p.name == wire for p in params):
            arg = _argument_name(wire, "path", properties)
            params.append(Param(arg, "path", wire, "simple", False))
            properties[arg] = {"type": "string"}
            required.append(arg)
    body = _request_body(resolver, op.get("requestBody"), properties, required)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return Operation(
        name=name,
        method=method,
        path=path,
        description=_description(op, method, path),
        schema=schema,
        params=params,
        body=body,
        operation_id=op.get("operationId") if isinstance(op.get("operationId"), str) else None,
    )


def _merge_parameters(resolver: Resolver, common: list[Any], own: list[Any]) -> list[dict[str, Any]]:
    """Path-level parameters, overridden by the operation's own with the same name and location."""
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    for raw in [*common, *own]:
        param = resolver.deref(raw)
        if not isinstance(param, dict) or "name" not in param:
            raise OperationProblem(f"a parameter has no name: {str(raw)[:80]}")
        merged[(param.get("in"), param.get("name"))] = param
    return list(merged.values())


def _argument_name(wire: str, location: str, taken: dict[str, Any]) -> str:
    """Argument names models accept (^[a-zA-Z0-9_.-]{1,64}$), unique across locations."""
    base = re.sub(r"[^a-zA-Z0-9_.-]", "_", wire)[:64] or location
    name = base if base not in taken else f"{location}_{base}"[:64]
    counter = 2
    while name in taken:
        name = f"{base[:60]}_{counter}"
        counter += 1
    return name


def _parameter_schema(resolver: Resolver, raw: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    as_json = False
    if "schema" in raw:
        schema = resolver.schema(raw["schema"])
    elif isinstance(raw.get("content"), dict) and raw["content"]:
        media, entry = next(iter(raw["content"].items()))
        schema = resolver.schema((entry or {}).get("schema"))
        as_json = "json" in media
    else:
        schema = {}
    description = raw.get("description")
    if isinstance(description, str) and description.strip():
        schema = {**schema, "description": _clip(description, 512)}
    if raw.get("deprecated") is True:
        schema = {**schema, "deprecated": True}
    return schema, as_json


def pick_media_type(content: dict[str, Any]) -> str:
    """JSON first, then forms, then text; anything else is sent as a string as declared."""
    types = list(content)
    ranked = (
        lambda t: t == "application/json",
        lambda t: t.endswith("+json") or "json" in t,
        lambda t: t == "application/x-www-form-urlencoded",
        lambda t: t == "multipart/form-data",
        lambda t: t in ("*/*", "application/*"),
        lambda t: t.startswith("text/"),
    )
    for matches in ranked:
        for media in types:
            if matches(media.split(";")[0].strip().lower()):
                return media
    return types[0]


def is_json_media(media: str) -> bool:
    media = media.split(";")[0].strip().lower()
    return "json" in media or media in ("*/*", "application/*")


def is_form_media(media: str) -> bool:
    return media.split(";")[0].strip().lower() in ("application/x-www-form-urlencoded", "multipart/form-data")


def _request_body(resolver: Resolver, raw: Any, properties: dict[str, Any], required: list[str]) -> Body | None:
    if raw is None:
        return None
    body = resolver.deref(raw)
    if not isinstance(body, dict) or not isinstance(body.get("content"), dict) or not body["content"]:
        return None
    media = pick_media_type(body["content"])
    entry = body["content"][media] or {}
    body_required = body.get("required") is True
    description = body.get("description") if isinstance(body.get("description"), str) else None
    if is_json_media(media) or is_form_media(media):
        schema = resolver.schema(entry.get("schema"))
    else:
        schema = {"type": "string", "description": f"The request body as {media} text."}
    binary = tuple(
        name for name, prop in (schema.get("properties") or {}).items() if _is_binary(prop)
    ) if media.startswith("multipart/") else ()
    if _flattenable(schema, body_required, properties):
        properties.update(schema["properties"])
        required.extend(r for r in schema.get("required", []) if r in schema["properties"])
        return Body(media, True, fields=tuple(schema["properties"]), binary_fields=binary)
    arg = _argument_name("body", "request", properties)
    if description and "description" not in schema:
        schema = {**schema, "description": _clip(description, 512)}
    properties[arg] = schema
    if body_required:
        required.append(arg)
    return Body(media, body_required, arg=arg, binary_fields=binary)


def _is_binary(schema: Any) -> bool:
    """A multipart field sent as a file part (or a list of them)."""
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "array":
        return _is_binary(schema.get("items"))
    return schema.get("format") in ("binary", "byte") or "contentMediaType" in schema


def _flattenable(schema: dict[str, Any], body_required: bool, taken: dict[str, Any]) -> bool:
    """A required object body with plain properties reads best as top-level arguments."""
    props = schema.get("properties")
    if not body_required or schema.get("type") not in ("object", None) or not isinstance(props, dict) or not props:
        return False
    if any(k in schema for k in ("allOf", "anyOf", "oneOf", "not", "if", "patternProperties")):
        return False
    if schema.get("additionalProperties") not in (None, False):
        return False
    return all(ARG_NAME.match(name) and name not in taken for name in props)


def _description(op: dict[str, Any], method: str, path: str) -> str:
    """The summary, then the longer description, then where the call goes: "... (POST /orders)"."""
    parts = [" ".join(op[key].split()) for key in ("summary", "description") if isinstance(op.get(key), str)]
    parts = [p for i, p in enumerate(parts) if p and p not in parts[:i]]
    text = " ".join(p if p.endswith((".", "!", "?")) or p is parts[-1] else p + "." for p in parts)
    where = f"({method.upper()} {path.split('#', 1)[0]})"
    return f"{_clip(text, DESCRIPTION_LIMIT - len(where) - 1)} {where}" if text else where


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def valid_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop whatever keyword makes a generated schema invalid JSON Schema (2020-12).

    Real specs carry things like `examples: "x"` or `minimum: "5"`; losing such a keyword is
    better than losing the tool.
    """
    from jsonschema import Draft202012Validator, exceptions

    for _ in range(100):
        try:
            Draft202012Validator.check_schema(schema)
            return schema
        except exceptions.SchemaError as exc:
            path = list(exc.absolute_path)
            while path and not isinstance(path[-1], str):  # a bad list item: drop the whole keyword
                path.pop()
            if not path:
                raise OperationProblem(f"its parameters do not make a valid JSON Schema: {exc.message}") from None
            schema = _without(schema, path)
    raise OperationProblem("its parameters do not make a valid JSON Schema")


def _without(node: Any, path: list[Any]) -> Any:
    """A copy of node with the key at path removed (copying only along the path)."""
    head, *rest = path
    if isinstance(node, dict):
        if not rest:
            return {k: v for k, v in node.items() if k != head}
        return {**node, head: _without(node[head], rest)}
    copy = list(node)
    copy[head] = _without(copy[head], rest)
    return copy


Call = Callable[..., Awaitable[Any]]


def operation_tool(op: Operation, call: Call, *, timeout: float = 30.0) -> Tool:
    """The tool for one operation; its output is untrusted data from the service."""
    from ...schemas import SchemaError

    def build() -> Tool:
        return tool_from_schema(op.name, op.description, op.schema, call, effect=op.effect, timeout=timeout,
                                untrusted=True)

    try:
        return build()
    except SchemaError:  # rare: repair only then, since checking a schema costs milliseconds
        op.schema = valid_schema(op.schema)
        return build()
