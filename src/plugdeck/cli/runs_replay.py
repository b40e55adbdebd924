"""`plugdeck runs replay ID`: run a stored run again with its recorded model outputs, and show what changed.

Exit status 0 when today's code does the same (tool calls, outcomes, answer, status), 1 when
something differs or the run cannot be replayed: a regression test made from real traffic.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .common import fail as _fail


def replay_command(
    run_id: Annotated[str, typer.Argument(help="A stored run's id (a unique prefix is enough).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON for scripts.")] = False,
    policy: Annotated[Optional[str], typer.Option(
        "--policy", help="Replay under this policy file (default: today's \\[policy] in plugdeck.toml).")] = None,
) -> None:
    """Replay a stored run with its recorded model outputs against today's plugins, tools and policy;
    report any difference in tool calls, their outcomes, the answer or the status (exit 1 if any)."""
    import asyncio

    from ..assemble import ReplayAgents
    from ..config import load_config
    from ..ops.run_replay import replay_run
    from ..ops.runstore import RunStore
    from .render import consoles

    err = consoles()[1]
    try:
        config = load_config()
        with RunStore(config.run_store) as store:
            stored = store.get_run(run_id)
        report = asyncio.run(replay_run(stored, config, ReplayAgents(config), policy_path=policy,
                                        warn=lambda message: err.print(f"[yellow]warning:[/] {message}")))
    except KeyError as exc:
        _fail(exc.args[0])
    except ValueError as exc:  # replay, policy, setup and configuration errors say what to fix
        _fail(str(exc))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        _print(report)
    if not report.same:
        raise typer.Exit(1)


def _print(report) -> None:
    from rich.markup import escape

    from .render import consoles

    out, _ = consoles()
    before = report.before
    out.print(f"replay of run {report.run_id} · model {escape(report.model)} · planner {report.planner} · "
              f"{before['model_calls']} recorded model turn(s) · {len(before['tool_calls'])} tool call(s)")
    out.print(f"[dim]{escape(report.question)}[/]")
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if report.same:
        out.print("[green]same[/]: the tool calls, their outcomes, the answer and the status are as recorded")
        return
    out.print(f"[red]{len(report.differences)} difference(s):[/]")
    for difference in report.differences:
        out.print(f"  [red]✗[/] {escape(difference['message'])}")


# Registered by cli/main.py as `plugdeck runs replay`.
runs_commands = {"replay": replay_command}
