"""Hybrid search: keyword (BM25) and vector results fused by reciprocal rank fusion.

RRF (Cormack et al., 2009) adds 1 / (60 + rank) over the lists a chunk appears in, so neither
score scale has to be calibrated against the other. Each passage also carries its cosine
similarity to the query, an absolute measure that callers use to decide whether anything
relevant was found at all, and optionally its best sentence (the highlight).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .citations import label
from .embeddings import Embedder
from .store import ChunkRecord, Filters, Store
from .text import plain, sentence_spans, shorten

RRF_K = 60
PASSAGE_CHARS = 1500  # what one passage may put in a tool result


@dataclass
class Passage:
    chunk_id: str
    text: str
    source: str  # as people see it: "handbook/leave.md"
    path: str  # the absolute path
    type: str
    title_path: tuple[str, ...]
    start: int  # character offsets into the document's extracted text
    end: int
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None
    score: float = 0.0  # the fused (RRF) score: only its order means something
    similarity: float = 0.0  # cosine similarity between the query and the passage
    keyword_rank: int | None = None
    vector_rank: int | None = None
    knowledge_base: str = ""
    highlight: str = ""  # the passage's sentence closest to the query
    highlight_similarity: float = 0.0

    @classmethod
    def from_chunk(cls, chunk: ChunkRecord, knowledge_base: str = "") -> Passage:
        return cls(chunk.chunk_id, chunk.text, chunk.source, chunk.path, chunk.type, chunk.title_path, chunk.start,
                   chunk.end, chunk.page, chunk.line_start, chunk.line_end, knowledge_base=knowledge_base)

    @property
    def title(self) -> str:
        return self.title_path[-1] if self.title_path else ""

    @property
    def location(self) -> str:
        if self.page is not None:
            return f"page {self.page}"
        if self.line_start is None:
            return ""
        unit = "row" if self.type == "csv" else "line"
        if self.line_end is None or self.line_end == self.line_start:
            return f"{unit} {self.line_start}"
        return f"{unit}s {self.line_start}–{self.line_end}"

    def label(self) -> str:
        """Where it comes from, for a citation: handbook/leave.md, "Vacation", lines 10–14."""
        return label(self.source, self.title, self.location)

    def to_dict(self, citation: str | None = None) -> dict:
        data = {
            "citation": citation,
            "chunk_id": self.chunk_id,
            "source": self.source,
            "title": " > ".join(self.title_path) or None,
            "location": self.location or None,
            "page": self.page,
            "offsets": [self.start, self.end],
            "score": round(self.score, 4),
            "similarity": round(self.similarity, 3),
            "text": shorten(self.text, PASSAGE_CHARS) if len(self.text) > PASSAGE_CHARS else self.text,
        }
        if self.highlight:
            data["highlight"] = self.highlight
            data["highlight_similarity"] = round(self.highlight_similarity, 3)
        return {k: v for k, v in data.items() if v is not None}


def hybrid_search(store: Store, embedder: Embedder, query: str, k: int = 5, filters: Filters = Filters(), *,
                  query_vector=None, knowledge_base: str = "", highlights: bool = False) -> list[Passage]:
    import numpy as np

    candidates = max(4 * k, 20)
    # The keyword half runs inside SQLite or PostgreSQL, which release the GIL, while this thread embeds
    # the query and scans the vectors in NumPy (which does too): the two overlap instead of adding up.
    keyword_half = _pool().submit(store.keyword_search, query, candidates, filters)
    try:
        if query_vector is None:
            query_vector = embedder.embed([query])[0]
        vector = store.vector_search(query_vector, candidates, filters)
    finally:
        keyword = keyword_half.result()
    fused: dict[str, float] = {}
    for hits in (keyword, vector):
        for rank, hit in enumerate(hits, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    keyword_rank = {hit.chunk_id: rank for rank, hit in enumerate(keyword, start=1)}
    vector_rank = {hit.chunk_id: rank for rank, hit in enumerate(vector, start=1)}
    similarity = {hit.chunk_id: hit.score for hit in vector}
    best = sorted(fused, key=lambda c: (-fused[c], -similarity.get(c, 0.0)))[:k]
    missing = [c for c in best if c not in similarity]
    for chunk_id, stored in store.vectors(missing).items():
        similarity[chunk_id] = float(np.dot(stored, query_vector))
    passages = []
    for chunk in store.chunks(best):
        passage = Passage.from_chunk(chunk, knowledge_base)
        passage.score = fused[chunk.chunk_id]
        passage.similarity = similarity.get(chunk.chunk_id, 0.0)
        passage.keyword_rank = keyword_rank.get(chunk.chunk_id)
        passage.vector_rank = vector_rank.get(chunk.chunk_id)
        passages.append(passage)
    if highlights and passages:
        add_highlights(passages, query_vector, embedder)
    return passages


_executor = None
_executor_lock = threading.Lock()


def _pool():
    """The threads that run keyword searches beside the vector half (started on first use)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            from concurrent.futures import ThreadPoolExecutor

            _executor = ThreadPoolExecutor(4, thread_name_prefix="plugdeck-keyword")
    return _executor


def passage_sentences(passage: Passage) -> list[tuple[int, int]]:
    """Sentence spans of a passage; a CSV passage's sentences are its rows."""
    if passage.type == "csv":
        spans, position = [], 0
        for line in passage.text.split("\n"):
            if line.strip():
                spans.append((position, position + len(line)))
            position += len(line) + 1
        return spans
    return sentence_spans(passage.text)


def add_highlights(passages: list[Passage], query_vector, embedder: Embedder) -> None:
    """Give each passage the sentence that is closest in meaning to the query (read under its heading)."""
    import numpy as np

    candidates: list[tuple[int, str, str]] = []
    for i, passage in enumerate(passages):
        for start, end in passage_sentences(passage):
            sentence = plain(passage.text[start:end])
            if len(sentence) > 2:
                context = f"{passage.title}: {sentence}" if passage.title else sentence
                candidates.append((i, sentence, context))
    if not candidates:
        return
    scores = embedder.embed([context for _, _, context in candidates]) @ np.asarray(query_vector, dtype=np.float32)
    for (i, sentence, _), score in zip(candidates, scores):
        if not passages[i].highlight or score > passages[i].highlight_similarity:
            passages[i].highlight, passages[i].highlight_similarity = sentence, float(score)
