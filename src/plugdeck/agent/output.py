"""Structured output: the answer as a validated pydantic model instead of free text.

With `agent.run(question, output_type=Quote)`, the system prompt gains `instructions(Quote)`, and the
model's final answer is read with `parse(text, Quote)`. When it does not validate, the model gets one
more turn with `retry_message(exc)` (what was wrong, field by field); a second failure fails the run
with the OutputInvalid's message. The instructions ask for JSON only, yet a ```json fence around it
is tolerated: models add one often, and validation stays strict either way.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import PlugdeckError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

OutputT = TypeVar("OutputT", bound="BaseModel")

# A fenced block (```json ... ``` or ``` ... ```), wherever it is in the text.
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\r?\n(.*?)\r?\n?```", re.DOTALL | re.IGNORECASE)


class OutputInvalid(PlugdeckError):
    """The model's answer is not a valid instance of the requested output type."""

    def __init__(self, output_type: type[Any], problems: list[str], text: str):
        self.output_type = output_type
        self.problems = problems  # one line per thing wrong: "price: Input should be a valid number"
        self.text = text  # the answer as the model wrote it
        super().__init__(f"the answer is not a valid {output_type.__name__}: {'; '.join(problems)}")


def check_output_type(output_type: Any) -> None:
    """Refuse an output_type that is not a pydantic model class, before a run starts."""
    from pydantic import BaseModel

    if not (isinstance(output_type, type) and issubclass(output_type, BaseModel)):
        shown = output_type.__name__ if isinstance(output_type, type) else repr(output_type)
        raise TypeError(f"output_type must be a pydantic BaseModel subclass, not {shown}")


def instructions(output_type: type[BaseModel]) -> str:
    """What the system prompt gains: answer with one JSON object that fits the type's JSON Schema."""
    check_output_type(output_type)
    schema = json.dumps(output_type.model_json_schema(), ensure_ascii=False, separators=(",", ":"))
    return (
        "When you give your final answer, reply with one JSON object and nothing else: no prose, no "
        f"Markdown. It must be valid against this JSON Schema:\n{schema}"
    )


def parse(text: str | None, output_type: type[OutputT]) -> OutputT:
    """The answer as an instance of `output_type`, or OutputInvalid saying what is wrong."""
    from pydantic import ValidationError

    check_output_type(output_type)
    payload = _json_part(text or "")
    if not payload:
        raise OutputInvalid(output_type, ["the answer was empty; a JSON object was expected"], text or "")
    try:
        return output_type.model_validate_json(payload)
    except ValidationError as exc:
        raise OutputInvalid(output_type, _problems(exc), text or "") from None


def retry_message(exc: OutputInvalid) -> dict[str, Any]:
    """The user-role message that gives the model one more try, saying what was wrong."""
    problems = "\n".join(f"- {p}" for p in exc.problems)
    return {
        "role": "user",
        "content": (
            f"Your answer could not be read as {exc.output_type.__name__}:\n{problems}\n"
            "Reply again with only the corrected JSON object, valid against the schema you were given."
        ),
    }


def _json_part(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return stripped
    fenced = _FENCE.search(stripped)
    return fenced.group(1).strip() if fenced else stripped


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        if error["type"] == "json_invalid":
            problems.append(f"not valid JSON ({error['msg'].removeprefix('Invalid JSON: ')})")
            continue
        where = ".".join(str(p) for p in error["loc"]) or "the answer"
        problems.append(f"{where}: {error['msg']}")
    return problems
