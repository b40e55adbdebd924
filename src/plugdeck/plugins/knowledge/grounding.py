"""The grounding check: is each sentence of the answer supported by the passages it cites?

It reads the passages from the run's `search_knowledge` results and makes no model call. A
sentence is supported when its meaningful words are found in the cited passages (lexical support)
and its meaning is close to one of their sentences (embedding support), every number it states
appears in them, and it does not flip a negation. Unsupported sentences are dropped (or flagged);
an uncited sentence that one passage clearly supports gets that passage's citation. When nothing
is supported, the answer becomes "The documents don't say." with the closest passages. The
decision, sentence by sentence, goes into the check's details (the run's AnswerChecked event).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ...checks import CheckResult
from .citations import (
    TOOL_NAME, SeenPassage, declined, dont_say, markers, passages_of_run, sources_footer, strip_markers,
)
from .text import content_terms, negated, numbers, plain, sentence_spans

_REFERENCE = re.compile(r"^\s*(?:[-*]\s*)?\[(?:\d{1,3}|[0-9a-f]{12})\]\s*\S")
_HEADER = re.compile(r"^\s*\**(?:sources?|references?|citations?)\**\s*:?\s*\**\s*$", re.IGNORECASE)


@dataclass
class Thresholds:
    """When a sentence counts as supported. lexical: the share of its meaningful words found in the
    cited passages; semantic: cosine similarity (all-MiniLM-L6-v2) with the closest passage sentence
    or pair of sentences. Either nearly all words are there and the meaning is not far off, or the
    meaning is very close and at least half the words are there. Calibrated on paraphrases and
    near-miss fabrications: embeddings see topic, not truth, so "unused days expire" scores 0.83
    against "unused days can be carried over"; the numbers and negation rules catch what they can."""

    all_words_semantic: float = 0.4  # every word found
    most_words: float = 0.8
    most_words_semantic: float = 0.6
    close_meaning: float = 0.83
    close_meaning_words: float = 0.5
    lexical_only: float = 0.85  # when no embedder is available


@dataclass
class _Sentence:
    start: int
    end: int
    text: str
    kind: str  # claim | neutral | reference
    citations: list[str] = field(default_factory=list)
    supported: bool | None = None
    reason: str = ""
    lexical: float | None = None
    semantic: float | None = None
    support: SeenPassage | None = None
    cited: list[SeenPassage] = field(default_factory=list)
    added_citation: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = {"text": self.text, "kind": self.kind, "citations": self.citations}
        if self.kind == "claim":
            data.update(supported=self.supported, reason=self.reason,
                        lexical=None if self.lexical is None else round(self.lexical, 3),
                        semantic=None if self.semantic is None else round(self.semantic, 3),
                        passage=self.support.chunk_id if self.support else None)
            if self.added_citation:
                data["added_citation"] = self.added_citation
        return data


class GroundingCheck:
    """An answer check (see plugdeck.checks) for answers from knowledge bases."""

    name = "grounding"

    def __init__(self, knowledge: Any = None, *, embedder: Any = None, mode: str = "drop", tool: str = TOOL_NAME,
                 thresholds: Thresholds | None = None):
        """knowledge: the KnowledgeBase(s) searched, used for their embedder and, when the model never
        searched, to find the closest passages. mode: "drop" removes unsupported sentences, "flag"
        keeps them marked."""
        if mode not in ("drop", "flag"):
            raise ValueError(f"mode must be 'drop' or 'flag', not {mode!r}")
        self.knowledge = [] if knowledge is None else (list(knowledge) if isinstance(knowledge, (list, tuple))
                                                       else [knowledge])
        self._embedder = embedder
        self.mode = mode
        self.tool = tool
        self.thresholds = thresholds or Thresholds()

    async def check(self, answer: str, run: Any) -> CheckResult:
        passages = passages_of_run(run.events, self.tool)
        return await asyncio.to_thread(self.verify, answer, passages, getattr(run, "question", ""))

    # ---- the verdict -----------------------------------------------------------------------------

    def verify(self, answer: str, passages: list[SeenPassage], question: str = "") -> CheckResult:
        details: dict[str, Any] = {"mode": self.mode, "passages_seen": len(passages)}
        first, *rest = answer.strip().splitlines() or [""]
        if declined(first) and not markers(first) and all(_REFERENCE.match(line) for line in rest if line.strip()):
            # Only a refusal (and passages to follow up on): nothing is claimed, so nothing to check.
            return CheckResult(True, answer, {**details, "decision": "declined"})
        sentences = self._sentences(answer, passages)
        claims = [s for s in sentences if s.kind == "claim"]
        if not claims:
            return CheckResult(True, answer, {**details, "decision": "no_claims",
                                              "sentences": [s.to_dict() for s in sentences]})
        if not passages:
            closest = self._closest(question)
            return CheckResult(False, dont_say(closest), {
                **details, "decision": "no_passages", "claims": len(claims), "supported": 0,
                "reason": "the answer was not based on any search of the documents",
                "sentences": [s.to_dict() for s in sentences], "closest": [p.chunk_id for p in closest]})
        self._judge(claims, passages, details)
        kept = [s for s in claims if s.supported]
        details.update(claims=len(claims), supported=len(kept),
                       dropped=[s.text for s in claims if not s.supported] if self.mode == "drop" else [],
                       sentences=[s.to_dict() for s in sentences])
        if not kept:
            details["decision"] = "unsupported"
            return CheckResult(False, dont_say(passages), details)
        details["decision"] = "supported" if len(kept) == len(claims) else "partly_supported"
        details["cited"] = sorted({s.support.chunk_id for s in kept if s.support})
        return CheckResult(len(kept) == len(claims), self._rewrite(answer, sentences), details)

    def _sentences(self, answer: str, passages: list[SeenPassage]) -> list[_Sentence]:
        sources = {p.source for p in passages}
        result = []
        for start, end in sentence_spans(answer):
            text = answer[start:end]
            cited = markers(text)
            clean = strip_markers(plain(text))
            if _HEADER.match(text) or (_REFERENCE.match(text) and any(s and s in text for s in sources)):
                kind = "reference" if _REFERENCE.match(text) else "neutral"
            elif declined(text) and not cited:
                kind = "neutral"
            elif len(content_terms(clean)) >= 2 or numbers(clean):
                kind = "claim"
            else:
                kind = "neutral"
            result.append(_Sentence(start, end, text, kind, cited))
        return result

    def _judge(self, claims: list[_Sentence], passages: list[SeenPassage], details: dict[str, Any]) -> None:
        by_id: dict[str, list[SeenPassage]] = {}
        for passage in passages:
            by_id.setdefault(passage.citation.strip("[]"), []).append(passage)
            by_id.setdefault(passage.chunk_id, []).append(passage)
        similarity = self._similarities(claims, passages, details)
        for claim in claims:
            unknown = [c for c in claim.citations if c not in by_id]
            claim.cited = [p for c in claim.citations for p in by_id.get(c, [])]
            if unknown and not claim.cited:
                claim.supported, claim.reason = False, f"cites [{'], ['.join(unknown)}], which no search returned"
                continue
            if claim.cited:
                self._support(claim, claim.cited, similarity, combined=True)
            else:
                self._support(claim, passages, similarity, combined=False)
                if claim.supported:
                    claim.added_citation = claim.support.citation
                    claim.reason = "supported; it had no citation, so the supporting passage's was added"
                elif not claim.reason.startswith("number"):
                    claim.reason = "no citation, and no passage supports it"

    def _support(self, claim: _Sentence, candidates: list[SeenPassage], similarity, combined: bool) -> None:
        """Judge a claim against its cited passages together, or (uncited) against each passage alone."""
        text = strip_markers(plain(claim.text))
        terms, stated = content_terms(text), numbers(text)
        groups = [candidates] if combined else [[p] for p in candidates]
        best: tuple | None = None
        for group in groups:
            found_terms = set().union(*(content_terms(p.text + " " + p.title) for p in group))
            found_numbers = set().union(*(numbers(p.text) for p in group))
            lexical = len(terms & found_terms) / len(terms) if terms else 1.0
            scored = [(similarity(text, sentence), passage, sentence) for passage in group
                      for sentence in _passage_sentences(passage)]
            semantic, passage, closest = max(scored, key=lambda s: (s[0] or 0.0, len(s[2])))
            if semantic is None:  # no embedder: the lexically closest sentence stands in for the meaning
                passage, closest = max(((p, s) for _, p, s in scored),
                                       key=lambda ps: len(terms & content_terms(ps[1])))
            missing_numbers = sorted(stated - found_numbers)
            verdict, reason = self._verdict(lexical, semantic, missing_numbers, negated(text) != negated(closest))
            candidate = (verdict, lexical + (semantic or 0.0), lexical, semantic, passage, reason)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
        claim.supported, _, claim.lexical, claim.semantic, claim.support, claim.reason = best

    def _verdict(self, lexical: float, semantic: float | None, missing_numbers: list[str],
                 flipped: bool) -> tuple[bool, str]:
        t = self.thresholds
        if missing_numbers:
            return False, f"numbers not in the cited passages: {', '.join(missing_numbers)}"
        if flipped:
            return False, "it negates what the closest passage says (or the passage negates it)"
        if semantic is None:
            enough = lexical >= t.lexical_only
        else:
            enough = ((lexical >= 1.0 and semantic >= t.all_words_semantic)
                      or (lexical >= t.most_words and semantic >= t.most_words_semantic)
                      or (semantic >= t.close_meaning and lexical >= t.close_meaning_words))
        scores = f"lexical {lexical:.2f}" + ("" if semantic is None else f", semantic {semantic:.2f}")
        return enough, ("supported" if enough else "too little support") + f" ({scores})"

    # ---- embeddings --------------------------------------------------------------------------------

    def _get_embedder(self):
        if self._embedder is None:
            if self.knowledge:
                self._embedder = self.knowledge[0].embedder
            else:
                from .embeddings import LocalEmbedder

                self._embedder = LocalEmbedder()
        return self._embedder

    def _similarities(self, claims: list[_Sentence], passages: list[SeenPassage], details: dict[str, Any]):
        """A function (claim text, passage sentence) -> cosine similarity, or None without embeddings."""
        texts = list(dict.fromkeys([strip_markers(plain(c.text)) for c in claims]
                                   + [s for p in passages for s in _passage_sentences(p)]))
        try:
            from .embeddings import EmbeddingError

            vectors = self._get_embedder().embed(texts)
        except (EmbeddingError, ImportError, OSError) as exc:
            details["embedding"] = f"unavailable ({exc}); lexical support only"
            return lambda a, b: None
        index = {text: i for i, text in enumerate(texts)}
        return lambda a, b: float(vectors[index[a]] @ vectors[index[b]])

    # ---- the answer people get ---------------------------------------------------------------------

    def _rewrite(self, answer: str, sentences: list[_Sentence]) -> str:
        pieces, position, dropped = [], 0, 0
        for sentence in sentences:
            pieces.append(answer[position : sentence.start])
            position = sentence.end
            if sentence.kind == "claim" and not sentence.supported:
                if self.mode == "flag":
                    pieces.append(sentence.text + " [not supported by the documents]")
                else:
                    dropped += 1
                continue
            pieces.append(sentence.text + (f" {sentence.added_citation}" if sentence.added_citation else ""))
        pieces.append(answer[position:])
        text = re.sub(r"[ \t]+\n", "\n", "".join(pieces))
        text = re.sub(r"\n{3,}", "\n\n", re.sub(r"(?m)^[ \t]+$", "", text)).strip()
        if dropped:
            text += (f"\n\n(Removed {dropped} statement{'s' if dropped > 1 else ''} that the documents do not "
                     "support.)")
        cited = []
        for sentence in sentences:
            if sentence.kind == "claim" and sentence.supported and sentence.support:
                cited.append(sentence.support)
                cited += [p for p in sentence.cited if p.citation != sentence.support.citation]
        footer = sources_footer(_first_per_citation(cited), text)
        return f"{text}\n\n{footer}" if footer else text

    def _closest(self, question: str) -> list[SeenPassage]:
        """When the model never searched: what the knowledge bases hold closest to the question."""
        if not question or not self.knowledge:
            return []
        found = []
        for kb in self.knowledge:
            try:
                found += kb.search(question, 3)
            except Exception:  # the check must still answer; the closest passages are a courtesy
                continue
        found.sort(key=lambda p: -p.similarity)
        return [SeenPassage(f"[{i}]", p.chunk_id, p.source, " > ".join(p.title_path), p.location, p.text,
                            p.similarity) for i, p in enumerate(found[:3], start=1)]


def _passage_sentences(passage: SeenPassage) -> list[str]:
    """The statements of a passage (its sentences, each table or CSV row "a | b" on its own) and
    each pair of neighbours, since one sentence of an answer often joins two of the document's."""
    found, prose = [], []

    def flush() -> None:
        text = "\n".join(prose)
        found.extend(plain(text[a:b]) for a, b in sentence_spans(text))
        prose.clear()

    for line in passage.text.split("\n"):
        if " | " in line:
            flush()
            found.append(plain(line))
        else:
            prose.append(line)
    flush()
    found = [s for s in found if s]
    return list(dict.fromkeys(found + [f"{a} {b}" for a, b in zip(found, found[1:])]))


def _first_per_citation(passages: Iterable[SeenPassage]) -> list[SeenPassage]:
    unique: dict[str, SeenPassage] = {}
    for passage in passages:
        unique.setdefault(passage.citation, passage)
    return list(unique.values())
