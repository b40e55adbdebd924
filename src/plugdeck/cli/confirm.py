"""Asking a person in the terminal before a `write` action runs."""

from __future__ import annotations

import asyncio
import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel


def terminal_confirmer(err: Console, assume_yes: bool):
    """Show exactly what will be sent and ask; `--yes` answers for scripts. No terminal, no yes: refused."""

    async def confirm(action) -> bool:
        lines = [escape(action.summary), "", f"[dim]why ask: {escape(action.reason)}[/]"]
        if action.from_untrusted:
            lines.append(f"[yellow]copied from untrusted content: {escape(', '.join(action.from_untrusted))}[/]")
        lines.append(f"[dim]arguments: {escape(json.dumps(action.arguments, ensure_ascii=False))}[/]")
        err.print(Panel("\n".join(lines), title=f"confirm {escape(action.tool)}", title_align="left", expand=False))
        if assume_yes:
            err.print("[green]approved[/] (--yes)")
            return True
        if not sys.stdin.isatty():
            err.print("[red]not approved:[/] this action needs a person's OK; run in a terminal to be asked, "
                      "or pass --yes")
            return False
        answer = await asyncio.to_thread(err.input, "Approve? \\[y/N] ")  # the prompt goes to stderr
        return answer.strip().lower() in ("y", "yes")

    confirm.label = "--yes" if assume_yes else "person"
    return confirm
