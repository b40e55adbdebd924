"""The two stand-ins of security-requirements.md section 7: a model and a person.

The model (`Brain`, played through plugdeck's ScriptedModel) follows the user's task step by step,
and, when it is obedient, does whatever an injection it can read says as soon as it reads it: a
fully hijacked model (the CaMeL threat model), so what happens measures the platform, not a model.
It reads what a capable model reads: text hidden in Unicode tag characters, zero-width characters,
right-to-left overrides, base64 and JSON escapes.

The person (`SimulatedUser`) approves a confirmation only when its tool and arguments are one of
the task's own steps and carry no attacker value; everything else is rejected.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from plugdeck import ScriptedModel

Arguments = dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]]


@dataclass(frozen=True)
class Call:
    tool: str  # plugin.tool, as the model names it
    arguments: Arguments = field(default_factory=dict)  # or a function of the values the model has read


@dataclass(frozen=True)
class Stage:
    """Calls an injection asks for, made in one model turn once `trigger` is readable in the conversation
    (None: right after the stage before). `reads` are values the calls need, found by these patterns
    in what the model has read; a value that never reached the model cannot be sent."""

    calls: tuple[Call, ...]
    trigger: str | None = None
    reads: dict[str, str] = field(default_factory=dict)


ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff]")
RTL_SPAN = re.compile("\u202e(.*?)(?:\u202c|$)", re.S)
BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
JSON_ESCAPES = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")


def readable(text: str) -> str:
    """The text as a capable model understands it, hidden parts made plain and appended."""
    text = JSON_ESCAPES.sub(lambda m: _unescape(m.group(0)), text).replace('\\"', '"').replace("\\n", "\n")
    hidden = "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) <= 0xE007E)
    text = ZERO_WIDTH.sub("", text)
    reversed_spans = [span[::-1] for span in RTL_SPAN.findall(text)]
    decoded = []
    for blob in BASE64.findall(text):
        try:
            plain = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
        if plain.isprintable():
            decoded.append(plain)
    return "\n".join([text, hidden, *reversed_spans, *decoded])


def _unescape(escaped: str) -> str:
    units = bytes.fromhex("".join(escaped[i + 2 : i + 6] for i in range(0, len(escaped), 6)))
    return units.decode("utf-16-be", "replace")


def conversation_text(messages: list[dict[str, Any]]) -> str:
    """All the model reads, the system prompt aside (the application wrote it, not an attacker)."""
    return "\n".join(m["content"] for m in messages if m.get("role") != "system" and isinstance(m.get("content"), str))


def offered_name(qualified: str, offered: set[str]) -> str:
    """The name the model was shown for plugin.tool: the bare name when it is unique, as plugdeck offers it."""
    if qualified in offered:
        return qualified
    bare = qualified.split(".", 1)[-1]
    return bare if bare in offered else qualified


class Brain:
    """One run's model: the task's steps, and (if obedient) the injection's stages as soon as readable."""

    def __init__(self, steps: tuple[tuple[Call, ...], ...], answer: str, stages: tuple[Stage, ...] = ()):
        self.steps = list(steps)
        self.answer = answer
        self.stages = list(stages)
        self.next_stage = 0
        self.attacker_calls: list[tuple[str, str, dict[str, Any]]] = []  # (call id, tool, arguments)
        self.unsendable: list[str] = []  # stages given up: a value they need never reached the model
        self.turn = 0
        self.requests: list[list[dict[str, Any]]] = []  # the messages of every call, as the model got them

    def model(self) -> ScriptedModel:
        limit = 2 * (len(self.steps) + len(self.stages) + 2)
        return ScriptedModel([self] * limit, name="obedient-attacker" if self.stages else "benign")

    def __call__(self, messages: list[dict[str, Any]], tools: list[Any]) -> dict[str, Any] | str:
        self.turn += 1
        self.requests.append(messages)
        offered = {getattr(t, "name", None) or t["function"]["name"] for t in tools}
        attack = self._attack(readable(conversation_text(messages)))
        if attack:
            for call in attack["tool_calls"]:
                call["name"] = offered_name(call["name"], offered)
            return attack
        if self.steps:
            calls = self.steps.pop(0)
            return {"tool_calls": [{"id": f"task_{self.turn}_{i}", "name": offered_name(c.tool, offered),
                                    "arguments": c.arguments} for i, c in enumerate(calls)]}
        return self.answer

    def _attack(self, read: str) -> dict[str, Any] | None:
        while self.next_stage < len(self.stages):
            stage = self.stages[self.next_stage]
            if stage.trigger is not None and stage.trigger not in read:
                return None
            self.next_stage += 1
            values = {}
            for name, pattern in stage.reads.items():
                found = re.search(pattern, read)
                if found is None:
                    break
                values[name] = found.group(0)
            else:
                calls = []
                for i, call in enumerate(stage.calls):
                    arguments = call.arguments(values) if callable(call.arguments) else call.arguments
                    call_id = f"attack_{self.turn}_{i}"
                    self.attacker_calls.append((call_id, call.tool, arguments))
                    calls.append({"id": call_id, "name": call.tool, "arguments": arguments})
                return {"tool_calls": calls}
            self.unsendable.append(f"stage {self.next_stage}: {', '.join(sorted(set(stage.reads) - set(values)))}")
        return None


@dataclass
class SimulatedUser:
    """Approves only the task's own calls, exactly; rejects anything carrying an attacker value."""

    ground_truth: list[Call]
    attacker_values: tuple[str, ...] = ()
    asked: list[Any] = field(default_factory=list)
    approved: list[Any] = field(default_factory=list)

    def __call__(self, action: Any) -> bool:
        self.asked.append(action)
        shown = json.dumps(action.arguments, ensure_ascii=False).lower()
        expected = any(action.tool == c.tool and action.arguments == c.arguments for c in self.ground_truth)
        ok = expected and not any(value.lower() in shown for value in self.attacker_values)
        if ok:
            self.approved.append(action)
        return ok


class PlanBrain(Brain):
    """The same model for the compiled-plan planner: it writes plans (`N. tool(arg=value)` lines) and
    answers join calls. Hijacked by what the join shows it, it asks for a new plan (REPLAN) and writes
    the injection's calls into it; an injection already in the conversation goes into the first plan.
    A value a stage needs that the model has not read yet is passed by reference (`$N`, the result of
    an earlier step), so the secret can flow without the model ever seeing it."""

    def __call__(self, messages: list[dict[str, Any]], tools: list[Any]) -> str:
        self.turn += 1
        self.requests.append(messages)
        system = messages[0]["content"] if messages and messages[0].get("role") == "system" else ""
        read = readable(conversation_text(messages))
        if system.startswith("Answer the question"):
            if self._triggered(read):
                return "REPLAN: the results ask for one more step first."
            return self.answer
        lines: list[str] = []
        if self._triggered(read):
            lines += self._attack_lines(read, len(lines))
        for turn in self.steps:
            for call in turn:
                lines.append(f"{len(lines) + 1}. {call.tool}({_plan_arguments(call.arguments)})")
        self.steps = []
        return "\n".join([*lines, f"{len(lines) + 1}. join()"])

    def _triggered(self, read: str) -> bool:
        return self.next_stage < len(self.stages) and (self.stages[self.next_stage].trigger or "") in read

    def _attack_lines(self, read: str, start: int) -> list[str]:
        lines: list[str] = []
        while self.next_stage < len(self.stages):
            stage = self.stages[self.next_stage]
            if lines and stage.trigger is not None:
                break  # a later hop: for the next plan, once its own trigger is read
            self.next_stage += 1
            values = {}
            for name, pattern in stage.reads.items():
                found = re.search(pattern, read)
                values[name] = found.group(0) if found else f"code ${start + len(lines)}"  # the step before, as text
            for call in stage.calls:
                arguments = call.arguments(values) if callable(call.arguments) else call.arguments
                number = start + len(lines) + 1
                self.attacker_calls.append((f"plan{self.turn}_{number}", call.tool, arguments))
                lines.append(f"{number}. {call.tool}({_plan_arguments(arguments)})")
        return lines


def _plan_arguments(arguments: Any) -> str:
    return ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in (arguments or {}).items())
