"""The JSON Schema of a tool call to one of the offered tools: `{"name": NAME, "arguments": {...}}`.

One schema per tool (its name a constant, its arguments the tool's own parameters), joined with
anyOf. The local runtime compiles it into a grammar (local_constraint.py); an OpenAI-compatible
server that takes a schema (vLLM's structured outputs, llama.cpp's `json_schema`) is sent it as is.
"""

from __future__ import annotations

from typing import Any

from ..tools import ToolSpec


def call_schema(spec: ToolSpec) -> dict[str, Any]:
    parameters = spec.parameters or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": spec.name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def any_call_schema(specs: list[ToolSpec]) -> dict[str, Any]:
    """One call to any of `specs` (which must not be empty)."""
    if not specs:
        raise ValueError("a tool-call schema needs at least one tool")
    schemas = [call_schema(spec) for spec in specs]
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def calls_array_schema(specs: list[ToolSpec]) -> dict[str, Any]:
    """One or more calls, as a JSON array: what a server constrained to one JSON value is asked for."""
    return {"type": "array", "items": any_call_schema(specs), "minItems": 1}
