"""JSON Schema helpers: make loosely written parameter docs valid, and validate arguments.

Function docs in the wild spell types the way their language does (`dict`, `float`, `tuple`,
`any`, Java's `HashMap`, JavaScript's `Boolean`). Models and validators need standard JSON
Schema, so everything that enters plugdeck as a tool schema passes through `normalize_schema`.
"""

from __future__ import annotations

from typing import Any

from .errors import UserError

# Foreign type spellings -> JSON Schema type (None: any value).
_TYPE_ALIASES: dict[str, str | None] = {
    "dict": "object", "object": "object", "hashmap": "object", "map": "object",
    "list": "array", "array": "array", "arraylist": "array", "tuple": "array", "set": "array",
    "str": "string", "string": "string", "char": "string",
    "int": "integer", "integer": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "float": "number", "double": "number", "number": "number",
    "bool": "boolean", "boolean": "boolean",
    "null": "null", "none": "null",
    "any": None, "": None,
}

# Keywords whose value is a schema, a list of schemas, or a name -> schema map.
_SCHEMA_KEYS = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_SCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions")


class SchemaError(UserError, ValueError):
    """A tool schema that cannot be turned into valid JSON Schema."""


def normalize_schema(schema: Any, language: str | None = None) -> dict[str, Any]:
    """Return a valid JSON Schema (draft 2020-12) for a parameter doc, without changing its meaning.

    `language` ("java", "javascript") marks docs of functions in another language, whose callers
    may pass any value as source code in a string (a variable name, `new ArrayList<>()`): there
    each non-string type also accepts a string, and the description says so.
    """
    return _normalize(schema, language, top=True)


def _normalize(schema: Any, language: str | None, top: bool = False) -> dict[str, Any]:
    if schema is None or schema == {}:
        return {}
    if not isinstance(schema, dict):
        raise SchemaError(f"a schema must be an object, got {type(schema).__name__}")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            converted = _convert_type(value)
            if converted is not None:
                out["type"] = converted
        elif key in _SCHEMA_KEYS:
            out[key] = _normalize(value, language) if isinstance(value, dict) else value
        elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
            out[key] = [_normalize(v, language) for v in value]
        elif key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {name: _normalize(v, language) for name, v in value.items()}
        elif key == "required":
            out[key] = _required_list(value)
        elif key == "optional":
            continue  # a non-standard flag some docs carry; `required` already says it
        else:
            out[key] = value
    if out.get("type") == "object" and "required" in out:
        # Docs sometimes list a required name that has no property; keep only real ones.
        props = out.get("properties")
        if isinstance(props, dict):
            out["required"] = [name for name in out["required"] if name in props]
    if language and not top and isinstance(out.get("type"), str) and out["type"] != "string":
        out = _or_source_code(out, schema.get("type"), language)
    return out


def _or_source_code(schema: dict[str, Any], declared: Any, language: str) -> dict[str, Any]:
    note = f"({language} {declared}: a value, or {language} source code for it as a string)"
    description = f"{schema['description']} {note}" if schema.get("description") else note
    return {**schema, "type": [schema["type"], "string"], "description": description}


def _convert_type(value: Any) -> Any:
    if isinstance(value, list):
        converted = [_convert_type(v) for v in value]
        return None if None in converted else converted
    if not isinstance(value, str):
        raise SchemaError(f"'type' must be a string or a list of strings, got {value!r}")
    key = value.strip().lower()
    if key not in _TYPE_ALIASES:
        raise SchemaError(f"unknown parameter type {value!r}")
    return _TYPE_ALIASES[key]


def _required_list(value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise SchemaError(f"'required' must be a list of names, got {value!r}")


def object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Tool parameters are always an object; an empty schema means 'no arguments'."""
    if not schema:
        return {"type": "object", "properties": {}}
    if schema.get("type") != "object":
        raise SchemaError("tool parameters must be a JSON Schema of type 'object'")
    return schema


_CHECKED: dict[str, str | None] = {}  # canonical schema -> problem (None: valid); checking costs ms per tool


def json_schema_validator(schema: dict[str, Any]):
    """A function that returns a list of readable problems with a value (empty when valid)."""
    import json

    import jsonschema  # lazy: only generated tools (BFCL, OpenAPI, MCP) need it

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    key = json.dumps(schema, sort_keys=True, default=str)
    if key not in _CHECKED:
        try:
            cls.check_schema(schema)
            _CHECKED[key] = None
        except jsonschema.SchemaError as exc:
            _CHECKED[key] = exc.message
    if _CHECKED[key] is not None:
        raise SchemaError(f"invalid JSON Schema: {_CHECKED[key]}")
    validator = cls(schema)

    def problems(value: Any) -> list[str]:
        found = []
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path)
            found.append(f"{where}: {error.message}" if where else error.message)
        return found

    return problems


def nfc(value: Any) -> Any:
    """Every string in a JSON value in Unicode NFC: two spellings of the same text (composed or decomposed
    accents) must hash alike."""
    import unicodedata

    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {nfc(k): nfc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nfc(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, strings in NFC: one text for one value, so its hash is stable."""
    import json

    return json.dumps(nfc(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

