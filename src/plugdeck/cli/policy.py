"""`plugdeck policy check`: try a policy on stored runs before deploying it."""

from __future__ import annotations

import json
from typing import Optional

import typer

group = typer.Typer(help="Check a policy file, and dry-run it against stored runs.", no_args_is_help=True)


@group.command("check")
def check(
    policy: Optional[str] = typer.Option(None, "--policy", help="The policy to try (default: \\[policy] in plugdeck.toml)."),
    runs: Optional[list[str]] = typer.Option(None, "--runs", help="Run ids to replay (repeatable). Default: the latest."),
    last: int = typer.Option(20, "--last", help="How many of the latest runs, when no --runs are given."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Validate the policy, replay the tool calls of stored runs under it, and show what would change."""
    from ..config import load_config
    from ..ops.runstore import RunStore
    from ..policy.dry_run import dry_run
    from .main import CliError, _consoles, _load_plugins, _policy

    plugins = _load_plugins(None)
    loaded = _policy(policy, plugins)
    tools = {t.qualified_name: t for p in plugins for t in p.tools}
    with RunStore(load_config().run_store) as store:
        try:
            ids = runs or [r["id"] for r in store.list_runs(limit=last)]
            stored = [store.get_run(run_id) for run_id in ids]
        except KeyError as exc:
            raise CliError(exc.args[0]) from None
    changes, checked = dry_run(loaded, stored, tools)
    inactive = loaded.validate_tools(list(tools))  # patterns for plugins that are not installed
    if as_json:
        print(json.dumps({"policy": loaded.source, "runs": len(stored), "calls": checked, "inactive": inactive,
                          "changes": [c.to_dict() for c in changes]}, indent=2, default=str))
        return
    out, _ = _consoles()
    out.print(f"policy {loaded.source}: valid. Replayed {checked} tool call(s) from {len(stored)} run(s); "
              f"{len(changes)} would be decided differently.")
    for note in inactive:
        out.print(f"  [dim]{note}[/]", markup=True)
    for c in changes:
        out.print(f"  run {c.run_id} {c.tool} {json.dumps(c.arguments, default=str)[:80]}: "
                  f"{c.before} → [bold]{c.after}[/] ({c.rule})")
