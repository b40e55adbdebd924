"""`plugdeck eval cases.jsonl` runs and scores a set of questions; `plugdeck eval compare A B` finds regressions.

    plugdeck eval cases.jsonl --concurrency 8 --out eval-results/today
    plugdeck eval compare eval-results/yesterday eval-results/today

Both exit 1 when something failed (a case, or a regression), so CI can gate on them; `--no-fail`
reports without failing. The case format is documented in plugdeck.ops.eval.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from .common import fail as _fail
from typer.core import TyperGroup


class _RunByDefault(TyperGroup):
    """`plugdeck eval FILE ...` means `plugdeck eval run FILE ...`; `compare` stays a subcommand."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


group = typer.Typer(cls=_RunByDefault, no_args_is_help=True, subcommand_metavar="CASES.jsonl [OPTIONS] | compare A B",
                    help="Run a set of questions with expected answers and score them (plugdeck eval CASES.jsonl, "
                         "the same as plugdeck eval run CASES.jsonl); compare two evals (plugdeck eval compare A B).")

JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")
NoFailOpt = typer.Option(False, "--no-fail", help="Exit 0 even when something failed (report only).")


@group.command("run")
def run_cases(
    cases: str = typer.Argument(..., help="The cases: a JSON Lines file, one case per line."),
    concurrency: int = typer.Option(8, "--concurrency", "-c", help="How many cases run at once."),
    out: Optional[str] = typer.Option(None, "--out", "-o",
                                      help="Folder for results.json and report.html (default: eval-results/NAME-TIME)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model profile, or model name at --base-url."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Any OpenAI-compatible endpoint."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", "-p", help="Use only these plugins (repeatable)."),
    kb: Optional[list[str]] = typer.Option(None, "--kb", help="Answer from this knowledge base (repeatable)."),
    grounded: Optional[bool] = typer.Option(None, "--grounded/--no-grounded", help="Grounded answers (see plugdeck ask)."),
    policy: Optional[str] = typer.Option(None, "--policy", help="A policy file (default: \\[policy] in plugdeck.toml)."),
    planner: Optional[str] = typer.Option(None, "--planner", help="loop, plan or auto."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Most model calls in one run."),
    deadline: Optional[float] = typer.Option(None, "--deadline", help="Seconds one run may take in all."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Approve actions that need confirmation (otherwise refused)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the runs in the run store."),
    no_fail: bool = NoFailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run every case (concurrently, with a progress bar), score it, write results.json and report.html."""
    import asyncio
    import time
    from pathlib import Path

    from ..ops.eval import EvalError, evaluate, load_cases, run_meta, write_results

    try:
        loaded = load_cases(cases)
    except EvalError as exc:
        _fail(str(exc))
    if concurrency < 1:
        _fail("--concurrency must be at least 1")
    started = time.time()
    folder = Path(out) if out else Path("eval-results") / f"{Path(cases).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    agent, store = _agent(model, base_url, plugin, kb, grounded, policy, planner, max_steps, deadline, yes, no_store)

    async def go() -> list[dict[str, Any]]:
        try:
            with _Progress(len(loaded)) as progress:
                return await evaluate(agent, loaded, concurrency=concurrency, on_result=progress.advance)
        finally:
            await agent.aclose()

    try:
        results = asyncio.run(go())
    finally:
        if store:
            store.close()
    document = write_results(folder, results, run_meta(cases, agent, concurrency, started))
    summary = document["summary"]
    failed = [r for r in results if not r["passed"]]
    if as_json:
        print(json.dumps({"results": str(folder / "results.json"), "report": str(folder / "report.html"),
                          "summary": summary, "failed": [r["id"] for r in failed]}, indent=2))
    else:
        _print_run(summary, failed, folder)
    if failed and not no_fail:
        raise typer.Exit(1)


@group.command("compare")
def compare_evals(
    before: str = typer.Argument(..., help="The earlier eval: its folder or results.json."),
    after: str = typer.Argument(..., help="The later eval: its folder or results.json."),
    no_fail: bool = NoFailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show regressions (passed before, failed after), fixes, and changes in time and tokens."""
    from ..ops.eval import EvalError, compare, load_results

    try:
        comparison = compare(load_results(before), load_results(after))
    except EvalError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        _print_comparison(comparison)
    if comparison.regressions and not no_fail:
        raise typer.Exit(1)


# ---- building the agent ---------------------------------------------------------------------------


def _agent(model, base_url, plugin, kb, grounded, policy, planner, max_steps, deadline, yes, no_store):
    from ..assemble import AgentSetup, build_agent
    from ..config import load_config
    from ..ops.runstore import RunStore
    from .render import consoles

    err = consoles()[1]

    def confirm(action) -> bool:  # cases run unattended: only --yes approves
        return yes

    confirm.label = "--yes" if yes else "no one to ask"
    try:
        config = load_config({"max_steps": max_steps, "deadline": deadline, "planner": planner})
        setup = AgentSetup(model=model, base_url=base_url, plugins=plugin, kb=kb, grounded=grounded, policy_path=policy)
        store = None if no_store else RunStore(config.run_store)
        agent = build_agent(config, setup, confirm=confirm, sinks=[store.record] if store else [],
                            warn=lambda message: err.print(f"[yellow]warning:[/] {message}"))
    except ValueError as exc:  # configuration, policy, setup and knowledge errors say what to fix
        _fail(str(exc))
    return agent, store


class _Progress:
    """A progress bar on stderr that counts passes and failures as cases finish."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from .render import consoles

        self.passed = self.failed = 0
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("[green]{task.fields[passed]} passed[/] [red]{task.fields[failed]} failed[/]"),
                                 TimeElapsedColumn(), console=consoles()[1])
        self.task = self.progress.add_task("eval", total=total, passed=0, failed=0)

    def advance(self, result: dict[str, Any]) -> None:
        if result["passed"]:
            self.passed += 1
        else:
            self.failed += 1
        self.progress.update(self.task, advance=1, passed=self.passed, failed=self.failed)

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()


# ---- printing -------------------------------------------------------------------------------------


def _print_run(summary: dict[str, Any], failed: list[dict[str, Any]], folder) -> None:
    from rich.markup import escape

    from .render import consoles, ms, preview

    out, _ = consoles()
    out.print(f"[bold]{summary['passed']}/{summary['cases']} passed[/] ({summary['pass_rate']:.0%}) · "
              f"median {ms(summary['duration']['p50'])} · p95 {ms(summary['duration']['p95'])} · "
              f"{summary['tokens']['total']:,} tokens · cost {summary['cost']:.4f}")
    checks = ", ".join(f"{kind} {entry['passed']}/{entry['total']}" for kind, entry in sorted(summary["by_check"].items()))
    out.print(f"checks: {checks}")
    for result in failed:
        reasons = "; ".join(f"{c['type']}: {c['detail']}" for c in result["checks"] if not c["passed"])
        out.print(f"[red]✗ {escape(str(result['id']))}[/] {escape(reasons)} · answer: "
                  f"{escape(preview(result['answer'] if result['answer'] is not None else result.get('error') or ''))}")
    out.print(f"results: {folder / 'results.json'}\nreport:  {folder / 'report.html'}")


def _print_comparison(comparison) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .render import consoles, ms, preview

    out, _ = consoles()
    a, b = comparison.before, comparison.after
    out.print(f"pass rate {a['pass_rate']:.0%} → [bold]{b['pass_rate']:.0%}[/] ({a['passed']}/{a['cases']} → "
              f"{b['passed']}/{b['cases']}) · median {ms(a['duration']['p50'])} → {ms(b['duration']['p50'])} · "
              f"tokens {a['tokens']['total']:,} → {b['tokens']['total']:,} · cost {a['cost']:.4f} → {b['cost']:.4f}")
    for title, rows, colour in (("regressions (passed before, failed now)", comparison.regressions, "red"),
                                ("fixes (failed before, pass now)", comparison.fixes, "green")):
        if not rows:
            continue
        out.print(f"[bold {colour}]{len(rows)} {title}[/]")
        for row in rows:
            reasons = "; ".join(f"{c['type']}: {c['detail']}" for c in row["failed_checks"])
            out.print(f"  [{colour}]{escape(str(row['id']))}[/] {escape(reasons)}")
            out.print(f"    before: {escape(preview(row['answer_before'] or ''))}")
            out.print(f"    after:  {escape(preview(row['answer_after'] or ''))}")
    if not comparison.regressions:
        out.print("[green]no regressions[/]")
    for label, ids in (("only in the first", comparison.only_before), ("only in the second", comparison.only_after)):
        if ids:
            out.print(f"{len(ids)} case(s) {label}: {escape(', '.join(map(str, ids)))}")
    if comparison.changes:
        table = Table(box=None, title="time and token changes")
        for column in ("case", "time", "tokens"):
            table.add_column(column)
        for change in comparison.changes:
            table.add_row(escape(str(change["id"])), f"{ms(change['duration_before'])} → {ms(change['duration_after'])}",
                          f"{change['tokens_before']} → {change['tokens_after']}")
        out.print(table)
