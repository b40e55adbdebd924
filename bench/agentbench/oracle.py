"""What the mock model says: a competent, deterministic model that knows each task's ideal graph,
but writes a call only from what the request told it.

A pure function of the request. It recognises the task from the question in the first user
message (after the `[run NNNNNN]` tag), replays what has been done so far, and answers in the
protocol of whoever is asking:

* a tool-calling agent (plugdeck's tool loop, LangGraph's ReAct agent): every call whose inputs
  are known, all at once (one only when `parallel_tool_calls` is false), or the final answer;
* plugdeck's plan planner (its PLAN_PROMPT as system message): the whole plan in plugdeck's line
  format with `$N` references, ending `N. join()`; for a branch-dependent task it plans up to the
  branch point, because what follows depends on a result it has not seen;
* plugdeck's join step (its JOIN_PROMPT): the answer from the plan results, or `REPLAN: ...`
  when the branch can now be chosen.

Observed calls are matched to graph nodes by (tool, arguments) after filling in known results,
so a wrong or extra call is noticed (the answer then says so, and the run fails its check).

What it was told bounds what it writes, as it would a real model's. Every request must carry the
application's system prompt (`tasks.SYSTEM_PROMPT`). A call is written only to a tool the request
describes (the native `tools` schemas, or the plan prompt's tool list), with arguments whose names
that description gives, whose enum value it lists, and whose form it states (`ToolDef.must_read`:
a date format said only in a parameter's description, say). A plan is written only when the plan
prompt says how (line format, `$N`, `join()`), and a REPLAN only when the join prompt offers it.
Anything missing makes the request an error: the run then fails its check, and the reason is shown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from plugdeck.agent.plan import JOIN_PROMPT, NOT_RUN, PLAN_PROMPT

from . import tools
from .tasks import SYSTEM_PROMPT, Node, Task, fill
from .tokenizer import content_text

TAG = re.compile(r"^\[run (\d+)\]\s*")
PLAN_MARK = PLAN_PROMPT.split("\n", 1)[0]
JOIN_MARK = JOIN_PROMPT.split("\n", 1)[0]
PLAN_FORMAT = ("`N. tool_name(arg=value, ...)`", "`$N`", "`N. join()`")  # what a plan prompt must explain
TOOL_LINE = re.compile(r"^- ([A-Za-z_][\w.-]*)\(")


@dataclass
class Reply:
    mode: str  # tools | plan | join
    tag: str = ""
    task_id: str = ""
    text: str = ""
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)  # id, name, JSON arguments
    error: str | None = None  # the request did not fit the task: the run will fail its check


@dataclass
class Observed:
    name: str
    arguments: Any
    result: str | None


@dataclass
class Progress:
    results: dict[str, str]
    called: set[str]
    active: list[Node]  # the nodes known so far (a branch adds its case's nodes)
    answer: str | None  # the answer template, once it is known
    unexpected: list[Observed]

    @property
    def ready(self) -> list[Node]:
        return [n for n in self.active if n.id not in self.called and n.deps <= self.results.keys()]

    @property
    def complete(self) -> bool:
        return self.answer is not None and all(n.id in self.results for n in self.active)


def respond(body: dict[str, Any], tasks: dict[str, Task]) -> Reply:
    messages = body.get("messages") or []
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    if first_user is None:
        return Reply("tools", error="no user message")
    text = content_text(first_user.get("content"))
    tag = TAG.match(text)
    question = text[tag.end():] if tag else text
    question = question.split("\n", 1)[0].strip()
    system = content_text(messages[0].get("content")) if messages[0].get("role") == "system" else ""
    mode = "plan" if system.startswith(PLAN_MARK) else "join" if system.startswith(JOIN_MARK) else "tools"
    reply = Reply(mode, tag=tag.group(1) if tag else "")
    task = tasks.get(question)
    instructions = "\n".join(content_text(m.get("content")) for m in messages if m.get("role") == "system")
    if task is None:
        reply.error = f"unknown question {question[:80]!r}"
    elif SYSTEM_PROMPT not in instructions:
        reply.task_id = task.id
        reply.error = f"the application's system prompt was not sent in this {mode} request"
    else:
        reply.task_id = task.id
        try:
            {"tools": _tool_turn, "plan": _plan, "join": _join}[mode](reply, task, body, messages)
        except (ValueError, KeyError) as exc:
            reply.error = f"{type(exc).__name__}: {exc}"
    if reply.error:
        reply.text, reply.tool_calls = f"[agentbench mock: cannot continue: {reply.error}]", []
    return reply


def replay(task: Task, observed: list[Observed]) -> Progress:
    progress = Progress({}, set(), list(task.nodes), task.answer or None, [])
    remaining = list(observed)
    changed = True
    while changed:
        changed = False
        for node in list(progress.active):
            if node.id in progress.called or not node.deps <= progress.results.keys():
                continue
            arguments = {k: fill(v, progress.results) for k, v in node.args.items()}
            match = next((o for o in remaining if o.name == node.tool and o.arguments == arguments), None)
            if match is None:
                continue
            remaining.remove(match)
            progress.called.add(node.id)
            changed = True
            if match.result is None:
                continue
            progress.results[node.id] = match.result
            if task.branch and node.id == task.branch.after:
                case = task.branch.choose(match.result)
                if case is None:
                    raise ValueError(f"step {node.id} returned {match.result!r}, which no branch expects")
                progress.active.extend(case.nodes)
                progress.answer = case.answer
    progress.unexpected = remaining
    return progress


def _check(progress: Progress) -> None:
    if progress.unexpected:
        call = progress.unexpected[0]
        raise ValueError(f"unexpected call {call.name}({json.dumps(call.arguments)})")


# ---- tool-calling agents ------------------------------------------------------------------------

def _tool_turn(reply: Reply, task: Task, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    progress = replay(task, _transcript(messages))
    _check(progress)
    ready = progress.ready
    if ready:
        if body.get("parallel_tool_calls") is False:
            ready = ready[:1]
        turn = sum(1 for m in messages if m.get("role") == "assistant") + 1
        told = native_tools(body)
        for i, node in enumerate(ready):
            arguments = {k: fill(v, progress.results) for k, v in node.args.items()}
            check_told(node, arguments, told, "the tool schemas sent")
            reply.tool_calls.append((f"call_{turn}_{i}", node.tool, json.dumps(arguments)))
    elif progress.complete:
        reply.text = fill(progress.answer, progress.results)
    else:
        raise ValueError("calls were made but their results never came back")


def _transcript(messages: list[dict[str, Any]]) -> list[Observed]:
    by_id: dict[str, Observed] = {}
    order: list[Observed] = []
    for message in messages:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = function.get("arguments")
                observed = Observed(function.get("name", ""), arguments, None)
                by_id[call.get("id", "")] = observed
                order.append(observed)
        elif message.get("role") == "tool" and message.get("tool_call_id") in by_id:
            by_id[message["tool_call_id"]].result = content_text(message.get("content"))
    return order


# ---- plugdeck's plan and join ---------------------------------------------------------------------

def _plan(reply: Reply, task: Task, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    system = content_text(messages[0].get("content"))
    unexplained = [part for part in PLAN_FORMAT if part not in system]
    if unexplained:
        raise ValueError(f"the plan prompt does not explain {', '.join(unexplained)}")
    told = plan_tools(system)
    progress = replay(task, _plan_results(messages))
    _check(progress)
    steps: dict[str, int] = {}
    lines = []
    for node in progress.active:
        if node.id in progress.called:
            continue
        if not node.deps <= progress.results.keys() | steps.keys():
            continue  # waits on a branch that is not chosen yet
        steps[node.id] = len(steps) + 1
        values = {d: progress.results[d] if d in progress.results else f"${steps[d]}" for d in node.deps}
        check_told(node, {k: fill(v, values) for k, v in node.args.items()}, told, "the plan prompt")
        arguments = ", ".join(f"{k}={json.dumps(fill(v, values))}" for k, v in node.args.items())
        lines.append(f"{steps[node.id]}. {node.tool}({arguments})")
    if not lines:
        raise ValueError("there is nothing left to plan")
    lines.append(f"{len(lines) + 1}. join()")
    reply.text = "\n".join(lines)


def _join(reply: Reply, task: Task, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    if not any(m.get("role") == "tool" for m in messages):
        raise ValueError("the join request has no plan results")
    progress = replay(task, _plan_results(messages))
    _check(progress)
    if progress.complete:
        reply.text = fill(progress.answer, progress.results)
    elif progress.ready:
        if "REPLAN" not in content_text(messages[0].get("content")):
            raise ValueError("more calls are needed, but the join prompt gives no way to ask for them")
        after = task.branch.after if task.branch else ""
        reply.text = (f"REPLAN: the next step depends on the result of {progress.results.get(after, 'the first step')!r};"
                      " plan what it calls for.")
    else:
        raise ValueError("a step of the plan failed")


def _plan_results(messages: list[dict[str, Any]]) -> list[Observed]:
    """The plan's calls so far, as the planner sends them (its calls, then a tool message each), as observed
    calls; steps that were not run because an input failed are left out."""
    return [o for o in _transcript(messages) if o.result is not None and not o.result.startswith(NOT_RUN)]


# ---- what the request told about the tools ---------------------------------------------------------

def native_tools(body: dict[str, Any]) -> dict[str, str]:
    """Tool name -> everything the request's native tool schemas say about it."""
    told = {}
    for entry in body.get("tools") or []:
        function = entry.get("function") or {}
        told[function.get("name", "")] = json.dumps(function, ensure_ascii=False)
    return told


def plan_tools(system: str) -> dict[str, str]:
    """Tool name -> its part of the plan prompt: a line `- name(...)...` and the indented lines under it."""
    told: dict[str, str] = {}
    name = None
    for line in system.splitlines():
        match = TOOL_LINE.match(line)
        if match:
            name = match.group(1)
            told[name] = line
        elif name and line[:1].isspace() and line.strip():
            told[name] += "\n" + line
        else:
            name = None
    return told


def check_told(node: Node, arguments: dict[str, Any], told: dict[str, str], where: str) -> None:
    """Refuse to write a call the model could not have written from what it was told."""
    if node.tool not in told:
        raise ValueError(f"nothing in {where} describes the tool {node.tool!r}")
    text = told[node.tool]
    schema = tools.BY_NAME[node.tool].parameters.get("properties", {})
    for name, value in arguments.items():
        if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            raise ValueError(f"nothing in {where} says that {node.tool} takes {name!r}")
        unread = [p for p in tools.BY_NAME[node.tool].must_read.get(name, ()) if p not in text]
        if unread:
            raise ValueError(f"nothing in {where} gives the form of {node.tool}.{name} ({unread[0]!r} is missing)")
        allowed = schema.get(name, {}).get("enum")
        if allowed and json.dumps(value) not in text:
            raise ValueError(f"nothing in {where} lists {json.dumps(value)} among the values of {node.tool}.{name}")
