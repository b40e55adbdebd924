"""Shared pieces of the knowledge benchmarks: the SQuAD passages and questions in bench/data (see
bench/data/README.md for where they come from), written out as documents, and small timing helpers."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

SQUAD = Path(__file__).parent / "data" / "squad-dev-v1.1-subset.jsonl"


@dataclass
class Paragraph:
    title: str  # the Wikipedia article, e.g. "Apollo_program"
    context: str
    questions: list[str]
    source: str = ""  # the document's source in the knowledge base, once written


def load_squad(limit: int | None = None) -> list[Paragraph]:
    paragraphs = []
    with SQUAD.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            paragraphs.append(Paragraph(row["title"], row["context"], [q[1] for q in row["qas"]]))
    return paragraphs[:limit]


def write_documents(paragraphs: list[Paragraph], folder: Path, copies: int = 1) -> Path:
    """One Markdown file per paragraph, under a heading with its article's title (as a wiki export would
    have it). Copies repeat the corpus under other names, for more text to ingest."""
    for copy in range(copies):
        for number, paragraph in enumerate(paragraphs):
            relative = Path(f"copy-{copy}" if copies > 1 else ".", paragraph.title, f"{number:03d}.md")
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# {paragraph.title.replace('_', ' ')}\n\n{paragraph.context.strip()}\n", encoding="utf-8")
            if copy == 0:
                paragraph.source = Path(folder.name, relative).as_posix()
    return folder


def open_base(name: str, home: Path, embedder, store: str | None = None):
    from plugdeck.plugins.knowledge.base import KnowledgeBase
    from plugdeck.plugins.knowledge.settings import KnowledgeSettings

    return KnowledgeBase.open(name, home, embedder=embedder, settings=KnowledgeSettings(), store=store)


def unique_name(prefix: str) -> str:
    """A knowledge base name that does not clash with a person's bases in a shared database."""
    return f"{prefix}-{secrets.token_hex(3)}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]
