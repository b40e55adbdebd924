"""Stored runs as fine-tuning records, and the checks each format's consumers make.

A run's conversation is the last answered model call's input (`model_called.messages`: system,
user, assistant turns with their tool calls, tool results) followed by that call's own reply, so a
record ends on what the model wrote: a final answer, or calls when the run stopped before their
results came back. Its tools are the specs the model was shown (`run_started.tool_specs`).

- `openai`: OpenAI's chat fine-tuning JSONL: {"messages": [...], "tools": [...]} with assistant
  `tool_calls` (arguments as a JSON string), `tool` messages answering them by `tool_call_id`, and
  `parallel_tool_calls: true` where one assistant turn made several calls.
- `sharegpt`: ShareGPT JSONL as LLaMA-Factory reads it: `conversations` of from/value with the
  roles human, gpt, function_call (a call as {"name", "arguments"}, several as a list) and
  observation (several results as a JSON list), human/observation on odd turns and
  gpt/function_call on even ones; `system` and `tools` (a JSON string of the functions) beside them.
  A turn that said something and called tools keeps only its calls: the format has no room for both.
"""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("openai", "sharegpt", "hf")
ROLES = ("system", "user", "assistant", "tool")
_KEYS = {"system": {"role", "content", "name"}, "user": {"role", "content", "name"},
         "assistant": {"role", "content", "name", "tool_calls", "weight"},
         "tool": {"role", "content", "tool_call_id"}}


def conversation(run: dict[str, Any]) -> dict[str, Any] | None:
    """{"messages", "tools"} of a stored run (OpenAI chat shape), or None when no model call answered."""
    answered = [e for e in run["events"] if e.get("type") == "model_called" and not e.get("error")]
    if not answered:
        return None
    last = answered[-1]
    messages = [_message(m) for m in last.get("messages") or []]
    reply: dict[str, Any] = {"role": "assistant", "content": last.get("text") or None}
    if last.get("tool_calls"):
        reply["tool_calls"] = [_call(c) for c in last["tool_calls"]]
    messages.append(reply)
    started = next((e for e in run["events"] if e.get("type") == "run_started"), {})
    return {"messages": messages, "tools": started.get("tool_specs")}


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the formats know it: other keys (reasoning, plugdeck's own) left out."""
    role = message.get("role")
    kept = {k: v for k, v in message.items() if k in _KEYS.get(role, {"role", "content"})}
    if role == "assistant" and not kept.get("tool_calls"):
        kept.pop("tool_calls", None)
    return kept


def _call(call: dict[str, Any]) -> dict[str, Any]:
    arguments = call.get("arguments")
    raw = json.dumps(arguments, ensure_ascii=False) if arguments is not None else call.get("raw_arguments", "")
    return {"id": call.get("id"), "type": "function", "function": {"name": call.get("name"), "arguments": raw}}


# ---- openai ------------------------------------------------------------------------------------


def openai_record(convo: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"messages": convo["messages"]}
    if convo["tools"]:
        record["tools"] = convo["tools"]
    if any(len(m.get("tool_calls") or []) > 1 for m in convo["messages"]):
        record["parallel_tool_calls"] = True
    return record


def openai_problems(record: Any) -> list[str]:
    """What OpenAI's fine-tuning file check would refuse in one record (empty: none)."""
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list) or not record["messages"]:
        return ["a record needs a non-empty list `messages`"]
    problems = [f"unknown key {k!r}" for k in record if k not in ("messages", "tools", "parallel_tool_calls")]
    names = _tool_names(record.get("tools"), problems)
    if "parallel_tool_calls" in record and not isinstance(record["parallel_tool_calls"], bool):
        problems.append("parallel_tool_calls must be true or false")
    open_calls: set[str] = set()
    for i, message in enumerate(record["messages"]):
        where = f"message {i}"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            problems.append(f"{where}: role must be one of {', '.join(ROLES)}, not {role!r}")
            continue
        problems += [f"{where}: unknown key {k!r} for a {role} message" for k in message if k not in _KEYS[role]]
        content, calls = message.get("content"), message.get("tool_calls")
        if role == "assistant" and calls:
            if content is not None and not isinstance(content, str):
                problems.append(f"{where}: an assistant message's content must be text or null")
            open_calls |= _check_calls(calls, names, where, problems)
        elif not _is_text(content):
            problems.append(f"{where}: a {role} message needs text content")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls:
                problems.append(f"{where}: tool_call_id {call_id!r} answers no earlier tool call")
            open_calls.discard(call_id)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in record["messages"]):
        problems.append("no assistant message to learn from")
    return problems


def _tool_names(tools: Any, problems: list[str]) -> set[str] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        problems.append("tools must be a list")
        return set()
    names = set()
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            problems.append(f"tool {i}: expected {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}")
            continue
        if not isinstance(function.get("parameters", {}), dict):
            problems.append(f"tool {function['name']!r}: parameters must be a JSON Schema object")
        names.add(function["name"])
    return names


def _check_calls(calls: Any, names: set[str] | None, where: str, problems: list[str]) -> set[str]:
    ids = set()
    for call in calls if isinstance(calls, list) else [None]:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type") != "function" or not call.get("id"):
            problems.append(f"{where}: a tool call needs an id, type \"function\" and a function")
            continue
        name, arguments = function.get("name"), function.get("arguments")
        if names is None:
            problems.append(f"{where}: calls {name!r} but the record has no tools (the run was recorded "
                            "before plugdeck kept its tool specs)")
        elif name not in names:
            problems.append(f"{where}: calls {name!r}, which is not among the record's tools")
        if not isinstance(arguments, str) or not isinstance(_json_or_none(arguments), dict):
            problems.append(f"{where}: the arguments of {name!r} are not a JSON object: {str(arguments)[:80]!r}")
        ids.add(call["id"])
    return ids


def _is_text(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return isinstance(content, list) and bool(content) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---- sharegpt ----------------------------------------------------------------------------------


def sharegpt_record(convo: dict[str, Any]) -> dict[str, Any]:
    messages = convo["messages"]
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    turns: list[dict[str, str]] = []
    results: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            results.append(_text(message.get("content")))
            continue
        if results:
            turns.append(_observation(results))
            results = []
        if role == "user":
            turns.append({"from": "human", "value": _text(message.get("content"))})
        elif role == "assistant" and message.get("tool_calls"):
            calls = [{"name": c["function"]["name"], "arguments": _json_or_none(c["function"]["arguments"])}
                     for c in message["tool_calls"]]
            turns.append({"from": "function_call",
                          "value": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)})
        elif role == "assistant":
            turns.append({"from": "gpt", "value": _text(message.get("content"))})
    if results:
        turns.append(_observation(results))
    record: dict[str, Any] = {"conversations": turns, "system": system}
    record["tools"] = json.dumps([t["function"] for t in convo["tools"] or []], ensure_ascii=False)
    return record


def _observation(results: list[str]) -> dict[str, str]:
    value = results[0] if len(results) == 1 else json.dumps(results, ensure_ascii=False)
    return {"from": "observation", "value": value}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def sharegpt_problems(record: Any) -> list[str]:
    """What LLaMA-Factory's ShareGPT reader would drop a record for (empty: none)."""
    turns = record.get("conversations") if isinstance(record, dict) else None
    if not isinstance(turns, list) or not turns:
        return ["a record needs a non-empty list `conversations`"]
    problems = []
    for i, turn in enumerate(turns):
        expected = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        if not isinstance(turn, dict) or set(turn) != {"from", "value"} or not isinstance(turn["value"], str):
            problems.append(f"turn {i}: expected {{\"from\": ..., \"value\": text}}")
        elif turn["from"] not in expected:
            problems.append(f"turn {i}: {turn['from']!r} where {' or '.join(expected)} must come")
        elif turn["from"] == "function_call" and not isinstance(_json_or_none(turn["value"]), (dict, list)):
            problems.append(f"turn {i}: a function_call's value must be a JSON call")
    if len(turns) % 2:
        problems.append("the conversation must end with a gpt or function_call turn")
    tools = record.get("tools", "")
    if not isinstance(tools, str) or (tools and not isinstance(_json_or_none(tools), list)):
        problems.append("tools must be a JSON list of functions, as text")
    if not isinstance(record.get("system", ""), str):
        problems.append("system must be text")
    return problems


def record_and_problems(fmt: str, convo: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The record for a format, and what is wrong with it. `hf` holds openai records (see export.py)."""
    if fmt == "sharegpt":
        record = sharegpt_record(convo)
        return record, sharegpt_problems(record)
    record = openai_record(convo)
    return record, openai_problems(record)
