"""The one vocabulary of what happened in a run.

Every surface (CLI, run store, later the server and OpenTelemetry) reads these same events.
They are plain dataclasses: cheap to create on the hot path, turned into dicts only by sinks.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar


@dataclass(slots=True, kw_only=True)
class Event:
    type: ClassVar[str] = "event"
    run_id: str
    t: float  # seconds since the run started

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.type}
        for name in _field_names(type(self)):
            data[name] = getattr(self, name)
        return data


@dataclass(slots=True, kw_only=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    question: str
    model: str
    tools: list[str]
    # What the model was told of its tools (OpenAI function specs, wire names): a run exported as
    # fine-tuning data (ops/export.py) needs them beside its tool calls. None: recorded before they were kept.
    tool_specs: list[dict[str, Any]] | None = None
    started_at: float  # wall clock, seconds since the epoch
    planner: str = "loop"
    planner_reason: str = ""
    api_key_id: str | None = None  # who ran it: a label the server sets (never the key itself)
    offered_tools: list[str] | None = None  # with tool selection: the tools the model was shown
    conversation_id: str | None = None  # the conversation it belongs to (one it starts is named by the run's id)
    instructions: str | None = None  # the caller's system prompt for this run, below plugdeck's own


@dataclass(slots=True, kw_only=True)
class PlannerNote(Event):
    """Something the planner decided along the way: a fallback to the tool loop, a replan."""

    type: ClassVar[str] = "planner"
    planner: str
    message: str


@dataclass(slots=True, kw_only=True)
class TextDelta(Event):
    type: ClassVar[str] = "text_delta"
    step: int
    text: str
    # text: for the person, as it streams | plan: the planner's plan, not an answer | draft: answer text that
    # answer checks may still change; never shown as the answer (AnswerGiven carries the checked text) |
    # reasoning: a reasoning model's thinking, shown dimmed, never part of the answer
    channel: str = "text"


@dataclass(slots=True, kw_only=True)
class ModelCalled(Event):
    """One round trip to the model, with what went in and what came out."""

    type: ClassVar[str] = "model_called"
    step: int
    model: str
    messages: list[dict[str, Any]]
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0  # cached ones included
    completion_tokens: int = 0  # reasoning ones included
    cached_tokens: int = 0  # prompt tokens the server had cached (cheaper where priced so)
    reasoning_tokens: int = 0  # completion tokens the model spent thinking
    estimated: bool = False  # the server sent no usage: the token counts are plugdeck's estimate
    ttft: float | None = None  # seconds to the first streamed token
    latency: float = 0.0
    error: str | None = None
    cost: float = 0.0  # tokens x the model profile's prices, in the profile's currency
    priced: bool = True  # False: no price is known for the model, so cost 0 is not a real figure
    fallbacks: list[str] = field(default_factory=list)  # deployments of a fallback chain that failed first


@dataclass(slots=True, kw_only=True)
class ToolCallsParsed(Event):
    """How a model turn's tool calls were read: from the server's `tool_calls` (native), or recovered
    from the text in one of the open models' formats; failed when a call in the text could not be read
    (it is refused, and the model told why)."""

    type: ClassVar[str] = "tool_calls_parsed"
    step: int
    format: str  # native | hermes | llama3_json | llama4_pythonic | mistral | deepseek | granite | json
    outcome: str  # native | recovered | failed
    calls: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class ModelReasoned(Event):
    """A reasoning model's whole thinking for one model call (`reasoning_content` or <think>), kept with the
    run; it streams as TextDelta(channel="reasoning") and is never part of the answer."""

    type: ClassVar[str] = "reasoning"
    step: int
    text: str


@dataclass(slots=True, kw_only=True)
class ToolStarted(Event):
    type: ClassVar[str] = "tool_started"
    step: int
    call_id: str
    tool: str  # qualified name: plugin.tool
    arguments: Any
    # What the policy knows of the tool (effect, origin, untrusted, private, egress), so that a dry run of
    # another policy (`plugdeck policy check`) can judge the call without the plugin installed.
    traits: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class ToolFinished(Event):
    type: ClassVar[str] = "tool_finished"
    step: int
    call_id: str
    tool: str
    arguments: Any
    result: Any = None
    error: dict[str, Any] | None = None  # {"kind": ..., "message": ...}
    latency: float = 0.0
    source: str = ""  # where the data came from (provenance): the plugin that produced it
    untrusted: bool = False  # outside data (documents, web, APIs): may carry injected instructions
    private: bool = False  # the user's private data (documents, database rows)
    place: str | None = None  # where the content came from (the tool's egress); None: this machine
    neutralised: dict[str, int] | None = None  # what isolation took out of the output: {"invisible": n, "tokens": m}


@dataclass(slots=True, kw_only=True)
class SandboxNoted(Event):
    """What a sandboxed plugin's sandbox saw during one tool call: a request through its egress proxy
    (allowed or refused, with bytes), processes the call left behind (killed), the sandbox killed at its
    time limit or stopped at a resource limit, the plugin's circuit opened."""

    type: ClassVar[str] = "sandbox"
    call_id: str
    tool: str  # qualified name: plugin.tool
    plugin: str
    kind: str  # egress | killed_leftovers | killed | stopped | circuit_open
    details: dict[str, Any] = field(default_factory=dict)


# Where notes from below the agent (a sandbox's events) go during the current tool call: the executor
# sets it around the call, the sandbox reads it in the call's own context. Neither imports the other.
# Called as sink(plugin, kind, details).
tool_call_notes: ContextVar[Callable[[str, str, dict[str, Any]], None] | None] = ContextVar(
    "plugdeck_tool_call_notes", default=None)


@dataclass(slots=True, kw_only=True)
class ProvenanceNoted(Event):
    """What the run's history brought into its context, noted before the first step: the policy judges
    every call by it as if the history's content had entered in this run (see plugdeck.policy.provenance)."""

    type: ClassVar[str] = "provenance"
    history: str  # agent (labelled by plugdeck) | trusted (the caller vouched for it) | untrusted (client-sent)
    sources: list[dict[str, Any]] = field(default_factory=list)  # {"name", "place", "untrusted", "private"}
    reason: str = ""


@dataclass(slots=True, kw_only=True)
class PolicyDecided(Event):
    """A rule decided about a tool call or the run: allow, deny, confirm, or a budget ran out."""

    type: ClassVar[str] = "policy_decision"
    decision: str  # allow | deny | confirm | budget
    rule: str  # which rule decided, in words a reviewer can find in the policy file
    reason: str = ""
    tool: str | None = None
    call_id: str | None = None
    details: dict[str, Any] | None = None  # e.g. the data-flow rule's untraced arguments and sources


@dataclass(slots=True, kw_only=True)
class ConfirmationRequested(Event):
    type: ClassVar[str] = "confirmation_requested"
    action_id: str  # bound to the exact tool and arguments
    call_id: str
    tool: str
    arguments: Any
    summary: str
    reason: str
    from_untrusted: list[str] = field(default_factory=list)  # arguments copied from untrusted content


@dataclass(slots=True, kw_only=True)
class ConfirmationAnswered(Event):
    type: ClassVar[str] = "confirmation_answered"
    action_id: str
    approved: bool
    by: str = "person"  # person | --yes | no one to ask
    note: str = ""


@dataclass(slots=True, kw_only=True)
class AnswerChecked(Event):
    """An answer check (grounding, numbers) and what it decided."""

    type: ClassVar[str] = "answer_checked"
    check: str
    passed: bool
    original: str
    answer: str  # the answer after the check (may drop or flag sentences)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class AnswerGiven(Event):
    type: ClassVar[str] = "answer"
    text: str


@dataclass(slots=True, kw_only=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    status: str  # ok | error | cancelled | max_steps | deadline | budget
    answer: str | None = None
    error: str | None = None
    steps: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration: float = 0.0
    cost: float = 0.0  # the run's model calls, in the model profile's currency


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (RunStarted, PlannerNote, TextDelta, ModelCalled, ToolCallsParsed, ModelReasoned, ToolStarted, ToolFinished, SandboxNoted,
                ProvenanceNoted, PolicyDecided, ConfirmationRequested, ConfirmationAnswered, AnswerChecked, AnswerGiven, RunFinished)
}

_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event read back from the run store."""
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    known = set(_field_names(cls))
    return cls(**{k: v for k, v in data.items() if k in known})
