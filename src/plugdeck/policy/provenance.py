"""Provenance: what is in a run's context, and where it came from.

The policy judges every tool call by the whole context the model has read, not only by what this
run's tools returned: a conversation carried on with a history brings that history's content along.

- Content from a tool whose output is `untrusted` (documents, web pages, API, MCP and database
  results) or `private` (the user's documents and database rows) is a `Source`, named by its plugin
  and by the place it came from (the tool's egress; None for this machine).
- The person's message of this run (the question) is trusted input: an argument traced to it is what
  the person asked to send. Their words of earlier turns are not: they were given for earlier requests
  (a PIN noted in turn 1 is not an OK to send it anywhere in turn 3), so a value reused from them is
  held like any other once untrusted or private content is in the context.
- A history is judged by who made it (`history_trust`):
  * `auto` (the default): a `Conversation` (what `run.messages` is: the agent labels the messages it
    produced with the provenance of their content) keeps its label; any other history is
    client-controlled, so it counts as one untrusted source, `history`.
  * `untrusted`: always so (the HTTP server passes this: every history there comes from a client).
  * `trusted`: the caller vouches for the user and assistant messages; tool messages in it are still
    judged by the tools that produced them (an unknown tool: untrusted).
The label a history brings is recorded as a ProvenanceNoted event before the run's first step, so a
run's provenance is derived from its events alone: a parked run carried on elsewhere, a dry run of
another policy and `runs show` all see the same context.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from ..events import ProvenanceNoted, RunStarted, ToolFinished
from ..tools import UNDECLARED

HISTORY_TRUST = ("auto", "trusted", "untrusted")


@dataclass(frozen=True)
class Source:
    """Untrusted or private content in the context: which plugin brought it in, and from where."""

    name: str  # the plugin (or "history" for a client-sent history)
    place: str | None  # where it came from: the tool's egress; None: this machine
    untrusted: bool
    private: bool

    def label(self) -> str:
        kinds = " and ".join(k for k, on in (("untrusted", self.untrusted), ("private", self.private)) if on)
        where = f" at {self.place}" if self.place not in (None, self.name, UNDECLARED) else ""
        return f"{self.name}{where} ({kinds})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CLIENT_HISTORY = Source("history", "history", untrusted=True, private=False)


@dataclass
class Context:
    """The provenance of a run's context: its sources, and the person's words that authorise this run."""

    sources: list[Source] = field(default_factory=list)
    person: list[str] = field(default_factory=list)

    @property
    def untrusted(self) -> list[Source]:
        return [s for s in self.sources if s.untrusted]

    def describe(self, sources: Iterable[Source] | None = None) -> str:
        return ", ".join(dict.fromkeys(s.label() for s in (self.sources if sources is None else sources)))


class Conversation(list[dict[str, Any]]):
    """A run's messages (`run.messages`), labelled with the provenance of their content, so that a chat
    that passes them back as the next question's history keeps what the policy knew."""

    def __init__(self, messages: Iterable[dict[str, Any]] = (), context: Context | None = None):
        super().__init__(messages)
        self.context = context or Context()


def context_of(events: Iterable[Any]) -> Context:
    """The context a run's events describe: its history's label, the question, and its tool results."""
    context = Context()
    for event in events:
        if isinstance(event, RunStarted):
            context.person.append(event.question)
        elif isinstance(event, ProvenanceNoted):  # noted right after RunStarted: what earlier turns brought in
            context.sources.extend(Source(**s) for s in event.sources)
        elif isinstance(event, ToolFinished) and (event.untrusted or event.private):
            context.sources.append(Source(event.source or event.tool, event.place, event.untrusted, event.private))
    context.sources = list(dict.fromkeys(context.sources))
    return context


def check_trust(trust: str) -> None:
    if trust not in HISTORY_TRUST:
        raise ValueError(f"history_trust must be one of {', '.join(HISTORY_TRUST)}, not {trust!r}")


def history_label(history: list[dict[str, Any]] | None, trust: str,
                  resolve: Callable[[str], Any], instructions: str | None = None) -> dict[str, Any] | None:
    """The ProvenanceNoted fields for a run's history (None without one). `resolve` finds the tool
    behind a tool call name (for tool messages in a trusted history). `instructions` (a system prompt
    the caller added for this run) are judged like the history: a client's are untrusted content."""
    check_trust(trust)
    messages = [m for m in history or [] if m.get("role") != "system"]
    if trust == "untrusted" and instructions and instructions.strip():
        return {"history": "untrusted", "sources": [CLIENT_HISTORY.to_dict()],
                "reason": "the client's instructions (system messages)" + (" and history" if messages else "")
                          + " came from the client, so they count as untrusted content"}
    if not messages:
        return None
    if trust == "auto" and isinstance(history, Conversation):
        context = history.context
        return {"history": "agent", "sources": [s.to_dict() for s in context.sources],
                "reason": "the history is a conversation plugdeck carried on; its content keeps its provenance"
                          + (f": {context.describe()}" if context.sources else "")}
    if trust != "trusted":
        return {"history": "untrusted", "sources": [CLIENT_HISTORY.to_dict()],
                "reason": "the history came from the client, so all of it counts as untrusted content"}
    sources = _tool_sources(messages, resolve)
    return {"history": "trusted", "sources": [s.to_dict() for s in sources],
            "reason": "the caller vouched for the history; its tool messages are judged by their tools"
                      + (f": {Context(sources).describe()}" if sources else "")}


def _tool_sources(messages: list[dict[str, Any]], resolve: Callable[[str], Any]) -> list[Source]:
    """Sources of the tool messages of a history, by the tool each answered (found in the assistant
    turn that asked for it)."""
    names: dict[str | None, str] = {}  # call id (None when a client sent none) -> tool name
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[call.get("id")] = (call.get("function") or {}).get("name") or call.get("name") or ""
    sources = []
    for message in messages:
        if message.get("role") != "tool":
            continue
        name = names.get(message.get("tool_call_id"), "")
        tool = resolve(name) if name else None
        if tool is None:
            sources.append(Source(name or "history", "history", untrusted=True, private=False))
        elif tool.untrusted or tool.private:
            sources.append(Source(tool.plugin or "local", tool.destination, tool.untrusted, tool.private))
    return list(dict.fromkeys(sources))
