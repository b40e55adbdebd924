"""An added MCP server's prompt templates: listed, and filled in as the text of a question.

Desktop clients offer a server's prompts as slash commands that put the filled-in messages in the
conversation; plugdeck prints them (`plugdeck mcp prompt SERVER/NAME -a key=value`), ready to read or to
pipe into `plugdeck ask`. The text comes from the server: it is shown to the person, who decides to send it.
"""

from __future__ import annotations

from typing import Any

from ...errors import UserError
from ...tools import ToolError

REQUEST_TIMEOUT = 30.0  # seconds for the server to list or fill in its prompts
MAX_CHARS = 100_000  # of one filled-in prompt


class PromptError(UserError, ValueError):
    """A prompt that cannot be filled in: unknown, an argument missing, or the server refused."""


async def list_prompts(name: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The server's prompts (name, description, arguments), starting it for the request."""
    return await _with_connection(name, options, lambda c: c.list_prompts(REQUEST_TIMEOUT))


async def fill_prompt(name: str, options: dict[str, Any], prompt: str, arguments: dict[str, str]) -> str:
    """The prompt's messages filled in with `arguments`, as text (one message: just its text)."""

    async def fill(connection: Any) -> str:
        known = {p["name"]: p for p in await connection.list_prompts(REQUEST_TIMEOUT)}
        if prompt not in known:
            raise PromptError(f"MCP server {name!r} has no prompt {prompt!r} (it has: {', '.join(known) or 'none'})")
        declared = known[prompt].get("arguments") or []
        missing = [a["name"] for a in declared if a.get("required") and a["name"] not in arguments]
        unknown = sorted(set(arguments) - {a["name"] for a in declared})
        if missing or unknown:
            usage = " ".join(f"-a {a['name']}=..." for a in declared) or "no arguments"
            problem = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
            raise PromptError(f"prompt {name}/{prompt}: {problem}; it takes {usage}")
        result = await connection.get_prompt(prompt, arguments, REQUEST_TIMEOUT)
        return connection.redact(messages_text(result.get("messages") or []))[:MAX_CHARS]

    return await _with_connection(name, options, fill)


def messages_text(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        content = message.get("content") or {}
        if content.get("type") == "text":
            text = content.get("text", "")
        elif content.get("type") == "resource" and "text" in (content.get("resource") or {}):
            text = content["resource"]["text"]
        else:
            text = f"[{content.get('type', 'unknown')} content not shown]"
        parts.append(text if len(messages) == 1 else f"{message.get('role', 'user')}: {text}")
    return "\n\n".join(parts)


async def _with_connection(name: str, options: dict[str, Any], use: Any) -> Any:
    from . import spec_from_options
    from .client import MCPConnection

    connection = MCPConnection(spec_from_options(name, options))
    try:
        return await use(connection)
    except ToolError as exc:
        raise PromptError(exc.message) from None
    finally:
        await connection.close()
