"""`plugdeck runs export`: stored runs as fine-tuning data (see plugdeck.ops.export); `plugdeck runs tag`.

    plugdeck runs export --format openai --out train.jsonl
    plugdeck runs tag 01a24a good
    plugdeck runs export --format sharegpt --since 2026-03-01 --tag good --out train.sharegpt.jsonl
    plugdeck runs export --format hf --eval eval-results/today --min-score 1 --out train-dataset
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer


def export_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help="openai (chat fine-tuning JSONL), sharegpt "
                                     "(LLaMA-Factory JSONL) or hf (a Hugging Face dataset folder, or .parquet).")],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Where to write (default: standard output; "
                                               "hf needs a path).")] = None,
    status: Annotated[str, typer.Option("--status", help="Only runs with this status; 'any' for all.")] = "ok",
    since: Annotated[Optional[str], typer.Option("--since", help="Runs started on or after this date "
                                                 "(2026-03-01, UTC, or a date-time).")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Runs started on or before this date.")] = None,
    tag: Annotated[Optional[str], typer.Option("--tag", help="Only runs with this tag (plugdeck runs tag).")] = None,
    evals: Annotated[Optional[list[str]], typer.Option("--eval", help="plugdeck eval results (a folder or its "
                                                       "results.json) with the runs' scores; repeatable.")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="Only runs whose eval score (the "
                                                       "share of checks passed, 0 to 1) is at least this.")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Leave out runs that would make invalid "
                                               "records, instead of stopping.")] = False,
) -> None:
    """Write stored conversations, with their tool specs and tool calls, as fine-tuning data.

    Secrets and PII (emails, phone numbers, and the patterns of \\[export] redact in plugdeck.toml) are
    redacted; every record is checked against its format before anything is written."""
    from ..config import config_tables, load_config
    from ..ops import export
    from ..ops.runstore import RunStore

    if min_score is not None and not evals:
        raise export.ExportError("--min-score needs --eval RESULTS: eval scores live in plugdeck eval's results")
    selection = export.Selection(
        status=None if status == "any" else status,
        since=export.parse_day(since) if since else None,
        until=export.parse_day(until, end=True) if until else None,
        tag=tag, min_score=min_score, scores=export.eval_scores(evals or []))
    found = export.settings(config_tables("export"))
    scrub = export.redactor(found["redact"], found["pii"])
    with RunStore(load_config().run_store) as store:
        records, report = export.build_records(store, fmt, selection, scrub, skip_invalid=skip_invalid)
    where = export.write(records, fmt, out, selection)
    for run_id, why in report.skipped.items():
        print(f"left out run {run_id}: {why}", file=sys.stderr)
    print(f"wrote {len(records)} {fmt} record(s) to {'standard output' if where == '-' else where}", file=sys.stderr)


def tag_command(
    run_id: Annotated[str, typer.Argument(help="A run id (a unique prefix is enough).")],
    tags: Annotated[list[str], typer.Argument(help="One or more tags, e.g. good, reviewed.")],
    remove: Annotated[bool, typer.Option("--remove", help="Take these tags off instead.")] = False,
) -> None:
    """Tag a run (or take tags off), to choose runs later: plugdeck runs export --tag TAG."""
    from ..config import load_config
    from ..errors import UserError
    from ..ops.runstore import RunStore

    with RunStore(load_config().run_store) as store:
        try:
            full = None
            for tag in tags:
                full = store.tag(run_id, tag, remove=remove)
            now = store.tags(full) if full else []
        except (KeyError, ValueError) as exc:
            raise UserError(exc.args[0]) from None
    print(f"run {full}: {', '.join(now) if now else 'no tags'}")


runs_commands = {"export": export_command, "tag": tag_command}
