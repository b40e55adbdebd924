"""A tool-call hook: refuses to reverse a guarded word, and marks every result it lets through."""

from __future__ import annotations

import os
from typing import Any

from plugdeck.tools import ToolError


class Guard:
    """plugdeck makes one per process. Guarded words come from PLUGDECK_ECHO_GUARD (comma-separated)."""

    def __init__(self) -> None:
        self.guarded = {w.strip().lower() for w in os.environ.get("PLUGDECK_ECHO_GUARD", "secret").split(",") if w.strip()}

    def before_tool_call(self, call: Any) -> None:
        text = str(call.arguments.get("text", "")).lower()
        if call.tool == "echo.reverse" and text in self.guarded:
            raise ToolError(f"the echo guard does not reverse {text!r}", "refused_by_hook")

    async def after_tool_call(self, call: Any, result: Any, error: dict | None) -> Any:
        return None  # None keeps the result as it is
