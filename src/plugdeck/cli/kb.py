"""`plugdeck kb ...`: knowledge bases from your documents.

    plugdeck kb add ./handbook                    # folders, files, globs: .md .txt .html .pdf .docx .csv
    plugdeck kb search handbook "vacation days"   # hybrid keyword + vector search, with citations
    plugdeck kb list | show NAME | rebuild NAME | remove NAME
    plugdeck kb add ./handbook --store postgresql://me@db.example/kb   # shared through PostgreSQL
    plugdeck kb attach handbook --store postgresql://me@db.example/kb  # on another machine

Only typer is imported here; the knowledge package loads inside the commands.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer

from .common import fail as _fail

group = typer.Typer(
    help="Knowledge bases: add your documents, search them, then ask with: plugdeck ask --kb NAME \"...\"",
    no_args_is_help=True,
)

JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")
PasswordEnvOpt = typer.Option(None, "--password-env", metavar="VAR",
                              help="The environment variable that holds the database password (never recorded).")


def _consoles():
    from .render import consoles

    return consoles()


def _open(name: str, must_exist: bool = True, store: str | None = None, password_env: str | None = None):
    from ..plugins.knowledge.base import KnowledgeBase, KnowledgeError
    from ..plugins.knowledge.settings import SettingsError

    try:
        return KnowledgeBase.open(name, must_exist=must_exist, store=store, password_env=password_env)
    except (KnowledgeError, SettingsError) as exc:
        _fail(str(exc))


def _known_errors() -> tuple[type[Exception], ...]:
    from ..plugins.knowledge.base import KnowledgeError
    from ..plugins.knowledge.embeddings import EmbeddingError
    from ..plugins.knowledge.settings import SettingsError

    return KnowledgeError, EmbeddingError, SettingsError


# ---- add / rebuild ------------------------------------------------------------------------------


@group.command("add")
def add_documents(
    paths: list[str] = typer.Argument(..., help="Files, folders (read recursively) or glob patterns (quote them)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="The knowledge base (default: the first folder's "
                                                                  "name). Created if it does not exist."),
    store: Optional[str] = typer.Option(None, "--store", metavar="URL",
                                        help="Keep a new knowledge base in PostgreSQL (postgresql://USER@HOST/DB) "
                                             "to share it; default: on this machine."),
    password_env: Optional[str] = PasswordEnvOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add documents to a knowledge base; adding again re-reads only files that changed."""
    from ..plugins.knowledge.base import name_for

    name = name or name_for(paths[0])
    if not name:
        _fail(f"cannot make a knowledge base name from {paths[0]!r}; give one with --name")
    kb = _open(name, must_exist=False, store=store, password_env=password_env)
    try:
        report = _with_progress(lambda progress: kb.add(paths, progress), as_json)
    except _known_errors() as exc:
        _fail(str(exc))
    finally:
        kb.close()
    _print_report(report, as_json)
    if report.problems and not any(f.status in ("new", "changed", "unchanged") for f in report.files):
        raise typer.Exit(1)


@group.command("rebuild")
def rebuild(name: str = typer.Argument(..., help="The knowledge base."), as_json: bool = JsonOpt) -> None:
    """Read every added folder, file and glob again with the current settings and embedding model."""
    kb = _open(name)
    try:
        report = _with_progress(kb.rebuild, as_json)
    except _known_errors() as exc:
        _fail(str(exc))
    finally:
        kb.close()
    _print_report(report, as_json)


def _with_progress(work, as_json: bool):
    """Run work(progress_callback) under progress bars on stderr when it is a terminal: one for the
    files read, one for the chunks embedded (embedding is most of the time of a first add)."""
    from ..plugins.knowledge.base import LOADING

    _, err = _consoles()
    if as_json or not err.is_terminal:
        return work(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[unit]}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        files = bar.add_task("reading", total=None, unit="files")
        chunks = bar.add_task("embedding", total=None, unit="chunks embedded", visible=False)

        def update(state) -> None:
            bar.update(files, total=state.files_total, completed=state.files_done,
                       description=_short(state.current) if state.files_done < state.files_total else "read")
            if state.to_embed:
                rate = f" · {state.embedded / state.embed_seconds:.0f}/s" if state.embed_seconds else ""
                bar.update(chunks, total=state.to_embed, completed=state.embedded, visible=True,
                           unit=f"chunks embedded{rate}", description=("loading the model" if state.current == LOADING
                                                                        else "embedding" if state.embedding
                                                                        else "embedded"))
            bar.refresh()  # each batch shows, however fast the batches come

        return work(update)


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _print_report(report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    out, err = _consoles()
    counts = report.to_dict()["counts"]
    done = ", ".join(f"{counts[s]} {s}" for s in ("new", "changed", "unchanged", "removed") if counts[s])
    rate = f", {report.embedded / report.embed_seconds:.0f} embeddings/s" if report.embed_seconds else ""
    kept = f", {report.reused} kept" if report.reused else ""
    out.print(f"{report.knowledge_base}: {done or 'no documents'} · {report.chunks} chunks written "
              f"({report.embedded} embedded{kept}) · {report.seconds:.1f} s{rate}", markup=False)
    for outcome in report.files:
        if outcome.status in ("failed", "skipped", "missing"):
            err.print(f"skipped {outcome.source}: {outcome.reason}", markup=False, style="yellow")
        elif outcome.status == "removed":
            err.print(f"removed {outcome.source}: {outcome.reason}", markup=False)
    found = [f for f in report.files if f.status == "unsupported"]
    if found:
        suffixes: dict[str, int] = {}
        for outcome in found:
            suffix = outcome.reason.rsplit(" ", 1)[-1]
            suffixes[suffix] = suffixes.get(suffix, 0) + 1
        listed = ", ".join(f"{s} ×{n}" if n > 1 else s for s, n in sorted(suffixes.items(), key=lambda i: -i[1]))
        err.print(f"skipped {len(found)} file(s) of types that cannot be read ({listed}); "
                  "supported: .md .txt .html .pdf .docx .csv", markup=False)
    if counts["new"] or counts["changed"]:
        err.print(f'try: plugdeck kb search {report.knowledge_base} "..."  or  '
                  f'plugdeck ask --kb {report.knowledge_base} "..."', markup=False, style="dim")


# ---- attach / detach (shared knowledge bases) ---------------------------------------------------


@group.command("attach")
def attach(
    name: str = typer.Argument(..., help="The knowledge base, as it was named where it was created."),
    store: str = typer.Option(..., "--store", metavar="URL", help="The PostgreSQL database that holds it "
                                                                  "(postgresql://USER@HOST/DB)."),
    password_env: Optional[str] = PasswordEnvOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Use a knowledge base that another machine keeps in PostgreSQL."""
    from ..plugins.knowledge.base import KnowledgeBase

    try:
        with KnowledgeBase.attach(name, store, password_env=password_env) as kb:
            info = kb.info()
    except _known_errors() as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return
    print(f"attached knowledge base {name!r} ({info['documents']} documents, {info['chunks']} chunks) from {store}")
    print(f'try: plugdeck kb search {name} "..."  or  plugdeck ask --kb {name} "..."', file=sys.stderr)


@group.command("detach")
def detach(name: str = typer.Argument(..., help="The knowledge base."), as_json: bool = JsonOpt) -> None:
    """Forget a shared knowledge base on this machine; it stays in the database for everyone else."""
    kb = _open(name)
    try:
        kb.detach()
    except _known_errors() as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps({"detached": name, "store": kb.location.url}))
    else:
        print(f"detached knowledge base {name!r}; it is still in {kb.location.url}")


# ---- list / show / remove -----------------------------------------------------------------------


@group.command("list")
def list_bases(as_json: bool = JsonOpt) -> None:
    """List the knowledge bases."""
    from ..plugins.knowledge.base import KnowledgeBase, names

    rows = []
    for name in names():
        with KnowledgeBase.open(name) as kb:
            try:
                rows.append(kb.info())
            except _known_errors() as exc:  # a shared base whose database cannot be reached now
                rows.append({"name": name, "store": kb.location.to_dict() if kb.location else None,
                             "error": str(exc)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out, err = _consoles()
    if not rows:
        out.print("no knowledge bases yet: plugdeck kb add ./your-folder", markup=False)
        return
    from rich.table import Table

    table = Table(box=None)
    for column in ("name", "documents", "chunks", "embedding model", "size", "updated", "kept in"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(row["name"], "?", "?", "-", "-", "-", _kept_in(row))
            err.print(f"{row['name']}: {row['error']}", markup=False, style="yellow")
            continue
        table.add_row(row["name"], str(row["documents"]), str(row["chunks"]), (row["embedder"] or {}).get("id", "-"),
                      _size(row["size_bytes"]), _when(row["updated_at"]), _kept_in(row))
    out.print(table)


def _kept_in(info: dict) -> str:
    store = info.get("store") or {}
    return store["url"] if store.get("backend") == "postgresql" else "this machine"


@group.command("show")
def show(name: str = typer.Argument(..., help="The knowledge base."), as_json: bool = JsonOpt) -> None:
    """Show a knowledge base: its settings, folders and documents."""
    from dataclasses import asdict

    with _open(name) as kb:
        try:
            info = kb.info()
            documents = kb.documents()
        except _known_errors() as exc:
            _fail(str(exc))
    if as_json:
        print(json.dumps({**info, "document_list": [asdict(d) for d in documents]}, indent=2, ensure_ascii=False))
        return
    out, _ = _consoles()
    embedder = info["embedder"] or {}
    chunking = info["chunking"] or {}
    where = info["store"]["url"] if info["store"]["backend"] == "postgresql" else info["folder"]
    out.print(f"{info['name']}: {info['documents']} documents, {info['chunks']} chunks, {_size(info['size_bytes'])} "
              f"in {where}", markup=False)
    out.print(f"embedding model: {embedder.get('id', '-')}" + (f" at {embedder['base_url']}" if embedder.get("base_url")
              else "") + (f" ({embedder['dimension']} dimensions)" if embedder.get("dimension") else ""), markup=False)
    out.print(f"chunks: up to {chunking.get('size')} characters, {chunking.get('overlap')} overlap", markup=False)
    out.print("added from: " + (", ".join(info["roots"]) or "-"), markup=False)
    from rich.table import Table

    table = Table(box=None)
    for column in ("source", "type", "chunks", "size", "updated", "title"):
        table.add_column(column)
    for d in documents:
        table.add_row(d.source, d.type, str(d.chunks), _size(d.size), _when(d.updated_at), d.title)
    out.print(table)


@group.command("remove")
def remove(
    name: str = typer.Argument(..., help="The knowledge base."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JsonOpt,
) -> None:
    """Remove a knowledge base (its index only; your documents are not touched).

    A shared knowledge base is removed from its database, for every machine; to forget it on this
    machine only: plugdeck kb detach NAME.
    """
    kb = _open(name)
    try:
        info = kb.info()
        if not yes and sys.stdin.isatty():
            everywhere = f" from {kb.location.url}, for every machine that uses it" if kb.location else ""
            typer.confirm(f"Remove knowledge base {name!r} ({info['documents']} documents, {info['chunks']} chunks)"
                          f"{everywhere}?", abort=True)
        kb.delete()
    except _known_errors() as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps({"removed": name, "documents": info["documents"], "chunks": info["chunks"]}))
    else:
        print(f"removed knowledge base {name!r} ({info['documents']} documents); your files were not touched")


# ---- search -------------------------------------------------------------------------------------


@group.command("search")
def search(
    name: str = typer.Argument(..., help="The knowledge base."),
    query: str = typer.Argument(..., help="What to look for: a question or keywords."),
    k: int = typer.Option(5, "-k", min=1, max=50, help="How many passages."),
    source: Optional[str] = typer.Option(None, "--source", help="Only documents matching this glob or folder, e.g. "
                                                                "'handbook/*.md'."),
    kind: Optional[list[str]] = typer.Option(None, "--type", help="Only these document types: md txt html pdf docx "
                                                                  "csv (repeatable)."),
    as_json: bool = JsonOpt,
) -> None:
    """Search a knowledge base and show the best passages with their citations."""
    from ..plugins.knowledge.base import KnowledgeError, document_types

    try:
        types = document_types(kind)
    except KnowledgeError as exc:
        _fail(str(exc))
    kb = _open(name)
    try:
        passages = kb.search(query, k, source=source, type=types)
    except _known_errors() as exc:
        _fail(str(exc))
    finally:
        kb.close()
    if as_json:
        print(json.dumps([p.to_dict(citation=f"[{i}]") for i, p in enumerate(passages, start=1)], indent=2,
                         ensure_ascii=False))
        return
    out, _ = _consoles()
    if not passages:
        out.print("no passage matched" + (" (check --source and --type)" if source or types else ""), markup=False)
        return
    for number, passage in enumerate(passages, start=1):
        out.print(f"[{number}] {passage.label()}", markup=False, style="bold", end="")
        out.print(f"  similarity {passage.similarity:.2f} · chunk {passage.chunk_id}", markup=False, style="dim")
        out.print(_indent(_preview(passage.text)), markup=False)


def _preview(text: str, limit: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _indent(text: str) -> str:
    return "\n".join("    " + line if line.strip() else "" for line in text.splitlines())


def _size(size: float) -> str:
    unit = "B"
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            break
        size /= 1000
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def _when(timestamp: Any) -> str:
    if not timestamp:
        return "-"
    from datetime import datetime

    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")
