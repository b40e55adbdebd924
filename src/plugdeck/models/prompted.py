"""Tool calling for endpoints with no tool support: the tools and the call format go in the prompt.

The request carries no `tools`; the system message describes them and asks for Hermes-style
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks (the shape most open models are
trained on), and the reply is read back like any text call (`toolcall_formats`). Earlier calls and
their results are rewritten into the same shape, so a server that knows nothing of `tool_calls` or the
`tool` role still reads the whole conversation.
"""

from __future__ import annotations

import json
from typing import Any

from ..tools import ToolSpec

INSTRUCTIONS = """\
# Tools

You may call tools to answer. Their descriptions and JSON Schema parameters:

{specs}

To call tools, reply with nothing but one block per call, each exactly like this:
<tool_call>
{{"name": "TOOL_NAME", "arguments": {{"ARGUMENT": "VALUE"}}}}
</tool_call>
The results come back in <tool_response> blocks. When you have what you need, reply with the answer in
plain text and no <tool_call> block."""


def tool_prompt(tools: list[ToolSpec]) -> str:
    specs = "\n".join(json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters},
                                 ensure_ascii=False) for t in tools)
    return INSTRUCTIONS.format(specs=specs)


def prompted_messages(messages: list[dict[str, Any]], tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """The conversation for a server without tools: the tool prompt in the system message, calls and
    results as text."""
    prompt = tool_prompt(tools)
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            blocks = [_call_block(call) for call in message["tool_calls"]]
            out.append({"role": "assistant", "content": "\n".join([_text(message.get("content")), *blocks]).strip()})
        elif role == "tool":
            result = f"<tool_response>\n{_text(message.get('content'))}\n</tool_response>"
            if out and out[-1]["role"] == "user" and str(out[-1].get("content", "")).startswith("<tool_response>"):
                out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n{result}"}  # parallel calls: one turn
            else:
                out.append({"role": "user", "content": result})
        else:
            out.append(dict(message))
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{_text(out[0].get('content'))}\n\n{prompt}"
    else:
        out.insert(0, {"role": "system", "content": prompt})
    return out


def _call_block(call: dict[str, Any]) -> str:
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        arguments = raw  # written as the model wrote it
    body = json.dumps({"name": function.get("name", ""), "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)
