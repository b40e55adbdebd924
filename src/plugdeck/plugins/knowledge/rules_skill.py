"""The offline `rules` model's knowledge skill: every question goes to `search_knowledge`, and the
answer is extractive, the best supporting sentences with their citations, or "The documents don't
say" with the closest passages when nothing is relevant enough. Nothing is made up.

Order it after arithmetic: it accepts any question, so skills after it would never be asked.
"""

from __future__ import annotations

from typing import Any

from ...models.rules import Skill
from .citations import SeenPassage, dont_say, passages_in, sources_footer
from .text import content_terms, plain, sentences

RELEVANT = 0.42  # similarity of the best sentence, plus a bonus for covering the question's words
WITHIN = 0.2  # further sentences must come this close to the best one
MOST = 3


def knowledge_skill() -> Skill:
    # catch_all: it plans for every question, so the router uses it only when a knowledge tool is there.
    return Skill("knowledge", "questions about your documents (plugdeck ask --kb NAME)", plan, answer, catch_all=True)


def plan(question: str) -> dict[str, Any] | None:
    query = " ".join(question.split())
    return {"query": query} if query else None


def answer(arguments: dict[str, Any], result: Any) -> str:
    return extractive_answer(str(arguments.get("query", "")), result)


def extractive_answer(question: str, result: Any) -> str:
    passages = passages_in(result)
    terms = content_terms(question)
    ranked = sorted(((_relevance(p, terms), p) for p in passages), key=lambda pair: -pair[0])
    if not ranked or ranked[0][0] < RELEVANT:
        return dont_say(passages)
    best = ranked[0][0]
    chosen: list[tuple[str, SeenPassage]] = []
    for relevance, passage in ranked:
        sentence = _sentence(passage)
        if relevance < max(RELEVANT, best - WITHIN) or len(chosen) == MOST:
            break
        if all(sentence != s for s, _ in chosen):
            chosen.append((sentence, passage))
    lines = [f"{sentence} {passage.citation}" for sentence, passage in chosen]
    return "\n".join(lines) + "\n\n" + sources_footer([p for _, p in chosen])


def _sentence(passage: SeenPassage) -> str:
    if passage.highlight:
        return passage.highlight
    first = sentences(passage.text)
    return plain(first[0]) if first else plain(passage.text)


def _relevance(passage: SeenPassage, terms: set[str]) -> float:
    """How well the passage's best sentence answers: its similarity to the question (or the whole
    passage's, when that is higher) plus a bonus for the question's words it contains."""
    similarity = max(passage.highlight_similarity, passage.similarity)
    words = content_terms(_sentence(passage) + " " + passage.title)
    coverage = len(terms & words) / len(terms) if terms else 0.0
    return similarity + 0.25 * coverage
