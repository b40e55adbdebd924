"""Replay: run a stored run again, with its recorded model outputs, against today's code.

The model's turns are played back exactly (a ScriptedModel built from the run's `model_called`
events); everything else is today's: plugins and tools, the policy, the planner, answer checks. What
changed shows as differences in the tool calls (tool, arguments and outcome, in order), the number
of model turns used, the answer or the status: regression tests made from real traffic.

A replay never repeats a side effect. Write tools are not called: their recorded results are played
back, and a write call the recorded run did not make is refused. Confirmations get the answers the
person gave in the recorded run; one that was never asked is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Protocol

from ..config import Config
from ..errors import UserError
from ..models.base import ModelError
from ..models.pricing import HostedPrices, Prices, profile_prices
from ..models.scripted import ScriptedModel
from ..tools import Tool, ToolError, Toolset

KNOWLEDGE_TOOL = "search_knowledge"


class ReplayError(UserError, ValueError):
    """A stored run that cannot be replayed; the message says why."""


class AgentFactory(Protocol):
    """Today's agents, for a replay. plugdeck's is assemble.ReplayAgents; it is passed in, so replay (in
    ops) never imports assemble, the layer above that builds agents from the configuration."""

    def installed(self) -> list[str]:
        """The names of the plugins installed today."""
        ...

    def build(self, *, plugins: list[str] | None, kb: list[str] | None, grounded: bool, policy_path: str | None,
              confirm: Callable[[Any], bool], warn: Callable[[str], None] | None) -> Any:
        """Today's agent with these plugins and knowledge bases; ReplayError when it cannot be built."""
        ...


@dataclass
class ReplayReport:
    run_id: str
    question: str
    model: str
    planner: str
    before: dict[str, Any]  # status, answer, model_calls, tool_calls of the recorded run
    after: dict[str, Any]  # the same for today's replay
    differences: list[dict[str, Any]]  # {"what", "index"?, "before", "after", "message"}
    notes: list[str] = field(default_factory=list)  # what the replay could not rebuild as it was

    @property
    def same(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "same": self.same}


async def replay_run(stored: dict[str, Any], config: Config, agents: AgentFactory, *,
                     policy_path: str | None = None, warn: Callable[[str], None] | None = None) -> ReplayReport:
    """Replay a run as RunStore.get_run returns it, with an agent built by `agents`
    (assemble.ReplayAgents(config) for plugdeck's own)."""
    events = stored.get("events") or []
    started = next((e for e in events if e.get("type") == "run_started"), None)
    if started is None:
        raise ReplayError(f"run {stored.get('id')} has no run_started event, so there is nothing to replay")
    calls = [e for e in events if e.get("type") == "model_called"]
    notes: list[str] = []
    agent = _agent(agents, started, events, policy_path, notes, warn)
    model = ScriptedModel([_turn(call) for call in calls], name=started.get("model") or "replay")
    model.prices = _prices(config, model.name)
    if hasattr(agent.model, "aclose"):  # the configured model is never asked: the recording answers
        await agent.model.aclose()
    agent.model = model
    agent.planner = started.get("planner") or "loop"
    try:
        run = await agent.run(started["question"], history=_labelled(_history(calls), events))
    finally:
        await agent.aclose()
    before = outline(events, stored)
    after = outline([e.to_dict() for e in run.events], {"status": run.status, "answer": run.answer})
    return ReplayReport(stored.get("id") or started.get("run_id", ""), started["question"], model.name, agent.planner,
                        before, after, differences(before, after), notes)


# ---- rebuilding the run ---------------------------------------------------------------------------


def _agent(agents: AgentFactory, started: dict[str, Any], events: list[dict[str, Any]], policy_path: str | None,
           notes: list[str], warn) -> Any:
    """Today's agent with the plugins the recorded run had (and nothing else)."""
    wanted: dict[str, list[str]] = {}
    for name in started.get("tools") or []:
        plugin, dot, bare = name.partition(".")
        if dot:
            wanted.setdefault(plugin, []).append(bare)
        else:
            notes.append(f"tool {name!r} was given in code, not by a plugin; the replay runs without it")
    installed = agents.installed()
    keep, kb = set(), []
    for name, tools in wanted.items():
        if name in installed:
            keep.add(name)
        elif tools == [KNOWLEDGE_TOOL]:
            bases = _knowledge_bases(name, events)
            if not bases:
                notes.append(f"the knowledge bases behind {name!r} are not recorded; its tool is gone from the replay")
            kb += bases
            keep.update([name, *bases])  # the plugin is named after its base, or "knowledge" for several
        else:
            notes.append(f"plugin {name!r} is not installed today; its tools are gone from the replay")
    grounded = any(e.get("type") == "answer_checked" and e.get("check") == "grounding" for e in events)
    # Every installed plugin is loaded, so the policy is checked against the same tools as for any run;
    # the replay then keeps exactly the plugins the recorded run had.
    agent = agents.build(plugins=installed or None, kb=kb or None, grounded=grounded, policy_path=policy_path,
                         confirm=RecordedConfirmations(events), warn=warn)
    recorded = _recorded_writes(events)
    tools = [_played_back(t, recorded) if t.effect == "write" else t for t in agent.tools if t.plugin in keep]
    agent.toolset = Toolset(tools)
    return agent


def _knowledge_bases(plugin: str, events: list[dict[str, Any]]) -> list[str]:
    """A knowledge plugin is named after its base; one over several bases is named "knowledge", and
    the bases are read from the passages it returned."""
    if plugin != "knowledge":
        return [plugin]
    names = {p.get("knowledge_base") for e in events if e.get("type") == "tool_finished"
             and isinstance(e.get("result"), dict) for p in e["result"].get("passages") or [] if isinstance(p, dict)}
    return sorted(n for n in names if n)


def _turn(call: dict[str, Any]) -> Any:
    if call.get("error"):
        message = call["error"]

        def fail(messages, tools):
            raise ModelError(message)

        return fail
    tool_calls = []
    for c in call.get("tool_calls") or []:
        # Unreadable arguments are played back as the raw text, so they fail as they did.
        arguments = c["raw_arguments"] if c.get("error") and "raw_arguments" in c else c.get("arguments")
        tool_calls.append({"id": c.get("id"), "name": c.get("name"), "arguments": arguments})
    return {"text": call.get("text") or "", "tool_calls": tool_calls, "finish_reason": call.get("finish_reason"),
            "usage": {key: call.get(key) or 0 for key in ("prompt_tokens", "completion_tokens", "cached_tokens",
                                                          "reasoning_tokens", "estimated")}}


def _labelled(history: list[dict[str, Any]] | None, events: list[dict[str, Any]]):
    """The history with the provenance the run recorded for it (a provenance event), so that the replay's
    policy sees the same context as the run did."""
    from ..policy.provenance import Context, Conversation, Source

    noted = next((e for e in events if e.get("type") == "provenance"), None)
    if not history or noted is None:
        return history
    return Conversation(history, Context([Source(**s) for s in noted.get("sources") or []]))


def _history(calls: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The conversation before the question (a chat), from what the first model call was shown."""
    if not calls:
        return None
    messages = [m for m in calls[0].get("messages") or [] if m.get("role") != "system"]
    return messages[:-1] or None


def _prices(config: Config, model: str) -> Prices | HostedPrices:
    for profile in config.profiles.values():
        if model in (profile.model, profile.name):
            return profile_prices(profile)
    return Prices()


class RecordedConfirmations:
    """Answers each confirmation as the person did in the recorded run; refuses any other."""

    def __init__(self, events: list[dict[str, Any]]):
        asked = {e.get("action_id"): (e.get("tool"), _canonical(e.get("arguments")))
                 for e in events if e.get("type") == "confirmation_requested"}
        self.answers = {asked[e["action_id"]]: bool(e.get("approved"))
                        for e in events if e.get("type") == "confirmation_answered" and e.get("action_id") in asked}
        self.label = "replay"

    def __call__(self, action) -> bool:
        key = (action.tool, _canonical(action.arguments))
        self.label = "the recorded answer" if key in self.answers else "not asked in the recorded run"
        return self.answers.get(key, False)


def _recorded_writes(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e.get("type") == "tool_finished":
            by_tool.setdefault(e.get("tool"), []).append(e)
    return by_tool


def _played_back(tool: Tool, recorded: dict[str, list[dict[str, Any]]]) -> Tool:
    """The tool with its recorded outcomes in place of its function: a replay changes nothing outside."""
    unused = list(recorded.get(tool.qualified_name, []))

    async def play_back(**kwargs: Any) -> Any:
        for i, event in enumerate(unused):
            arguments = event.get("arguments")
            if isinstance(arguments, dict) and all(_canonical(kwargs.get(k)) == _canonical(v) for k, v in arguments.items()):
                del unused[i]
                error = event.get("error")
                if error:
                    raise ToolError(error.get("message", ""), error.get("kind", "tool_error"))
                return event.get("result")
        raise ToolError("not run: a replay does not repeat side effects, and the recorded run made no such call",
                        "replay_not_recorded")

    return replace(tool, func=play_back)


# ---- comparing ------------------------------------------------------------------------------------


def outline(events: list[dict[str, Any]], fallback: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run did, in comparable form: status, answer, model turns, tool calls with outcomes."""
    finished = {e.get("call_id"): e for e in events if e.get("type") == "tool_finished"}
    calls = []
    for started in (e for e in events if e.get("type") == "tool_started"):
        done = finished.get(started.get("call_id"), {})
        error = done.get("error")
        calls.append({"tool": started.get("tool"), "arguments": _plain(started.get("arguments")),
                      "outcome": (error.get("kind", "error") if isinstance(error, dict) else "error") if error
                      else ("ok" if done else "unfinished"),
                      "result": (error.get("message") if isinstance(error, dict) else error) if error
                      else _plain(done.get("result"))})
    end = next((e for e in reversed(events) if e.get("type") == "run_finished"), None)
    fallback = fallback or {}
    return {"status": end.get("status") if end else fallback.get("status"),
            "answer": end.get("answer") if end else fallback.get("answer"),
            "model_calls": sum(e.get("type") == "model_called" for e in events),
            "tool_calls": calls}


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    old, new = before["tool_calls"], after["tool_calls"]
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else None
        b = new[i] if i < len(new) else None
        if a is None:
            found.append(_difference("tool_call", i, None, b, f"tool call {i + 1}: {_call(b)} is new"))
        elif b is None:
            found.append(_difference("tool_call", i, a, None, f"tool call {i + 1}: {_call(a)} is no longer made"))
        elif (a["tool"], _canonical(a["arguments"])) != (b["tool"], _canonical(b["arguments"])):
            found.append(_difference("tool_call", i, a, b, f"tool call {i + 1}: was {_call(a)}, now {_call(b)}"))
        elif (a["outcome"], _canonical(a["result"])) != (b["outcome"], _canonical(b["result"])):
            found.append(_difference("tool_result", i, a, b, f"tool call {i + 1} {_call(a)}: was {_outcome(a)}, "
                                                             f"now {_outcome(b)}"))
    for what in ("model_calls", "answer", "status"):
        if before[what] != after[what]:
            found.append(_difference(what, None, before[what], after[what],
                                     f"{what.replace('_', ' ')}: was {_short(before[what])}, now {_short(after[what])}"))
    return found


def _difference(what: str, index: int | None, before: Any, after: Any, message: str) -> dict[str, Any]:
    data = {"what": what, "before": before, "after": after, "message": message}
    if index is not None:
        data["index"] = index
    return data


def _call(call: dict[str, Any]) -> str:
    return f"{call['tool']} {_short(call['arguments'])}"


def _outcome(call: dict[str, Any]) -> str:
    return _short(call["result"]) if call["outcome"] == "ok" else f"{call['outcome']} ({_short(call['result'])})"


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> Any:
    """As it reads back from the run store (JSON), so a live run and a stored one compare equal."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
