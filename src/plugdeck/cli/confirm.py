"""Asking a person in the terminal before a `write` action runs."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel


async def read_line(prompt: str, to=None) -> str:
    """Write `prompt` (to stdout, or `to`) and read a line in a thread of its own: Ctrl-C cancels the wait at
    once, and the process can exit without waiting for Enter (asyncio.to_thread would wait). EOFError at
    the end of input."""
    import threading

    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def deliver(settle) -> None:
        try:
            loop.call_soon_threadsafe(lambda: future.done() or settle())
        except RuntimeError:
            pass  # the event loop is gone: no one waits for this line any more

    def read() -> None:
        try:
            line = _prompted_line(prompt, to or sys.stdout)
        except BaseException as exc:  # EOFError (Ctrl-D), KeyboardInterrupt
            deliver(lambda error=exc: future.set_exception(error))  # `exc` is unbound once the except ends
        else:
            deliver(lambda: future.set_result(line))

    threading.Thread(target=read, name="plugdeck-input", daemon=True).start()
    return await future


def _prompted_line(prompt: str, to) -> str:
    to.write(prompt)
    to.flush()
    if sys.stdin.isatty():
        return input()  # with line editing
    # Not sys.stdin: a thread left blocked inside its buffer would hold the lock that exiting needs.
    data = bytearray()
    while not data.endswith(b"\n"):
        byte = os.read(sys.stdin.fileno(), 1)
        if not byte:
            if not data:
                raise EOFError
            break
        data += byte
    return data.decode("utf-8", errors="replace").rstrip("\r\n")


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
        answer = await read_line("Approve? [y/N] ", to=sys.stderr)  # the prompt goes to stderr
        return answer.strip().lower() in ("y", "yes")

    confirm.label = "--yes" if assume_yes else "person"
    return confirm


def ask_person(question: str, assume_yes: bool, what: str) -> bool | str:
    """One consent outside a run (adding a plugin, approving a tool), decided like every other:
    `--yes` answers for scripts; without it a terminal asks; without a terminal the answer is no.
    Returns True, False (the person said no) or a message saying why no one could be asked."""
    if assume_yes:
        print(f"{question} yes (--yes)", file=sys.stderr)
        return True
    if not sys.stdin.isatty():
        return f"{what} needs a person's OK: run it in a terminal to be asked, or pass --yes"
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
