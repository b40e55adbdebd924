"""Citations: how a passage is named ([1] handbook/leave.md, "Vacation", lines 10–14), how markers
are found in an answer, and the passages a run's searches returned. Standard library only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from .text import plain, shorten

TOOL_NAME = "search_knowledge"
DONT_SAY = "The documents don't say."
_MARKER = re.compile(r"\[((?:\s*(?:\d{1,3}|[0-9a-f]{12})\s*[,;]?)+)\]")
_DECLINED = re.compile(r"^\W*(?:the|these|your|my) (?:documents?|passages?|sources?|knowledge base)\s+"
                       r"(?:don't|do not|does not|doesn't|did not|didn't)\s+(?:say|mention|contain|cover|answer)",
                       re.IGNORECASE)


@dataclass(frozen=True)
class SeenPassage:
    """A passage as a search_knowledge result showed it to the model."""

    citation: str  # "[1]"
    chunk_id: str
    source: str
    title: str  # the title path, "Leave > Vacation"
    location: str
    text: str
    similarity: float = 0.0
    highlight: str = ""
    highlight_similarity: float = 0.0

    @property
    def label(self) -> str:
        return label(self.source, self.title, self.location)


def label(source: str, title: str = "", location: str = "") -> str:
    """handbook/leave.md, "Vacation", lines 10–14 (the most specific heading only)."""
    heading = title.split(" > ")[-1] if title else ""
    return ", ".join(p for p in (source, f'"{heading}"' if heading else "", location) if p)


def markers(text: str) -> list[str]:
    """The citation ids in a text: '[1]', '[2, 3]' and '[1][4]' give '1', '2', '3', '1', '4'."""
    found = []
    for match in _MARKER.finditer(text):
        found += [m for m in re.split(r"[\s,;]+", match.group(1)) if m]
    return found


def strip_markers(text: str) -> str:
    return " ".join(_MARKER.sub(" ", text).split())


def declined(answer: str) -> bool:
    """Does the answer say that the documents do not answer the question?"""
    return answer.strip().startswith(DONT_SAY[:-1]) or bool(_DECLINED.match(answer.strip()))


def passages_in(result: Any) -> list[SeenPassage]:
    """The passages of one search_knowledge result (as the tool returned it, or parsed back from JSON)."""
    if not isinstance(result, dict):
        return []
    seen = []
    for item in result.get("passages") or []:
        if isinstance(item, dict) and item.get("citation") and item.get("text"):
            seen.append(SeenPassage(
                citation=str(item["citation"]), chunk_id=str(item.get("chunk_id", "")),
                source=str(item.get("source", "")), title=str(item.get("title", "")),
                location=str(item.get("location", "")), text=str(item["text"]),
                similarity=float(item.get("similarity") or 0.0), highlight=str(item.get("highlight", "")),
                highlight_similarity=float(item.get("highlight_similarity") or 0.0)))
    return seen


def passages_of_run(events: Iterable[Any], tool: str = TOOL_NAME) -> list[SeenPassage]:
    """Every passage that the run's searches returned, in the order they were returned."""
    passages = []
    for event in events:
        name = getattr(event, "tool", "")
        if getattr(event, "type", "") == "tool_finished" and (name == tool or name.endswith("." + tool)) \
                and not getattr(event, "error", None):
            passages += passages_in(event.result)
    return passages


def closest_passages(passages: list[SeenPassage], limit: int = 3, chars: int = 200) -> str:
    """The closest passages as lines a person can follow up on."""
    unique: dict[str, SeenPassage] = {}
    for passage in sorted(passages, key=lambda p: -p.similarity):
        unique.setdefault(passage.chunk_id or passage.text, passage)
    lines = [f'{p.citation} {p.label}: "{shorten(plain(p.text), chars)}"' for p in list(unique.values())[:limit]]
    return "\n".join(lines)


def dont_say(passages: list[SeenPassage]) -> str:
    if not passages:
        return f"{DONT_SAY} No passage in them matches the question."
    return f"{DONT_SAY} The closest passages:\n{closest_passages(passages)}"


def sources_footer(cited: list[SeenPassage], answer: str = "") -> str:
    """'Sources:' and one line per cited passage, leaving out those the answer already lists."""
    lines = []
    for passage in cited:
        line = f"{passage.citation} {passage.label}"
        if line not in answer and line not in lines:
            lines.append(line)
    return "Sources:\n" + "\n".join(lines) if lines else ""
