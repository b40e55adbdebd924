"""Tools written out as text for a prompt (the plan planner's), keeping everything their schemas say.

A model writes correct arguments only from what it is told: a date format stated in a parameter's
description, the allowed values of an enum, which arguments are required, the fields of a nested
object. Each tool is one line, `- name(arg, ...): description`, then one indented line per argument
(nested objects and array items one level deeper):

    - book_hall(day, hall, guests): Book a hall for an event.
      day (string, required, format date): The day of the booking, written DD/MM/YYYY.
      hall ("north-hall" | "south-hall", required): Which hall to book.
      guests (array of object, optional): Who comes. {"minItems": 1}
        name (string, required): Full name as on the passport.

Type, required, enum/const, format and default are written out; every other keyword (pattern,
bounds, anyOf, $ref, ...) follows as JSON, so nothing the schema says is dropped. Only whitespace
inside descriptions is folded, and a title that merely repeats the argument's name is left out.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..tools import ToolSpec

# Keywords written out in words (or as the indented lines below a field); the rest go as JSON.
_WRITTEN = {"type", "enum", "const", "format", "default", "description", "properties", "required", "items", "title"}


def describe_tools(specs: Iterable[ToolSpec]) -> str:
    return "\n".join(describe_tool(spec) for spec in specs)


def describe_tool(spec: ToolSpec) -> str:
    schema = spec.parameters if isinstance(spec.parameters, dict) else {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    head = f"- {spec.name}({', '.join(properties)})"
    description = _fold(spec.description)
    lines = [f"{head}: {description}" if description else head]
    lines += _fields(schema, 1)
    rest = {k: v for k, v in schema.items()
            if k not in _WRITTEN and not (k == "additionalProperties" and v is False)}  # the list above is all
    if schema.get("type") not in (None, "object"):
        rest["type"] = schema["type"]
    if schema.get("description"):
        rest["description"] = schema["description"]
    if rest:
        lines.append(f"  also: {_json(rest)}")
    return "\n".join(lines)


def _fields(schema: dict[str, Any], depth: int, items_label: str = "each item") -> list[str]:
    """The lines for an object's properties, or for what an array's items hold."""
    lines: list[str] = []
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        for name, sub in properties.items():
            lines += _field(name, sub if isinstance(sub, dict) else {}, name in required, depth)
    items = schema.get("items")
    if isinstance(items, dict) and items:
        notes = _notes(items, None)
        if notes:
            lines.append(f"{'  ' * depth}{items_label}: {notes}")
            lines += _fields(items, depth + 1)
        else:  # an array of arrays: say whose items the notes further down are about
            lines += _fields(items, depth, f"{items_label}'s items")
    elif isinstance(items, (list, bool)):
        lines.append(f"{'  ' * depth}{items_label}: {_json(items)}")
    return lines


def _field(name: str, schema: dict[str, Any], required: bool, depth: int) -> list[str]:
    traits = [_kind(schema), "required" if required else "optional"]
    if "format" in schema:
        traits.append(f"format {schema['format']}")
    if "default" in schema:
        traits.append(f"default {_json(schema['default'])}")
    line = f"{'  ' * depth}{name} ({', '.join(traits)})"
    notes = _notes(schema, name)
    return [f"{line}: {notes}" if notes else line, *_fields(schema, depth + 1)]


def _notes(schema: dict[str, Any], name: str | None) -> str:
    """The description, then every keyword not written out otherwise, as JSON."""
    rest = {k: v for k, v in schema.items() if k not in _WRITTEN}
    title = schema.get("title")
    if title is not None and (name is None or str(title).lower().replace(" ", "_") != name.lower()):
        rest["title"] = title
    if name is None:  # an array's items: their type is in the field's kind, the rest here
        rest.update({k: schema[k] for k in ("format", "default") if k in schema})
    text = _fold(schema.get("description"))
    return " ".join(part for part in (text, _json(rest) if rest else "") if part)


def _kind(schema: dict[str, Any]) -> str:
    if isinstance(schema.get("enum"), list):
        return " | ".join(_json(v) for v in schema["enum"])
    if "const" in schema:
        return f"always {_json(schema['const'])}"
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    items = schema.get("items")
    if ("array" in kinds or (not kinds and "items" in schema)) and isinstance(items, dict) and items:
        return " | ".join(f"array of {_kind(items)}" if k == "array" else str(k) for k in kinds or ["array"])
    return " | ".join(str(k) for k in kinds) or "any"


def _fold(text: Any) -> str:
    return " ".join(str(text).split()) if text else ""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
