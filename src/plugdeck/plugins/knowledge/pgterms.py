"""Which of a question's words are rare in a PostgreSQL knowledge base, read from the planner's
statistics, so that keyword search ranks only the chunks that hold them (PostgresStore.keyword_search).

`ts_rank` costs tens of microseconds per matching chunk (it reads each chunk's whole tsvector), and
PostgreSQL has no top-k shortcut for it: a question with a common word ranked thousands of chunks
(118 ms at 100k chunks, bench/knowledge_search.py). As in the SQLite store, the rarest words, as many
as together match at most a budget of chunks (and at least one word), choose the candidates; every
candidate is then ranked with all the words, so its score is exact. Left out are chunks that hold
only common words.

How many chunks hold a word comes from `ANALYZE` (run after each ingest): for a tsvector column it
keeps the most common lexemes with their frequencies (`pg_stats.most_common_elems`); a lexeme not
among them is rarer than the least frequent one listed, and is counted at half of that. Without statistics every word
is used, as before.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BUDGET = 2_000  # candidate chunks ranked per question (see bench/knowledge_search.py)


@dataclass
class TermStatistics:
    """One base's lexeme frequencies, kept per process and refreshed when the base's generation moves."""

    generation: tuple[str, int] | None = None
    rows: float = 0.0
    frequency: dict[str, float] = field(default_factory=dict)  # lexeme -> estimated chunks holding it
    floor: float = 0.0  # the estimate for a lexeme the statistics do not list
    lexemes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # word -> its lexemes ('english')
    lock: threading.Lock = field(default_factory=threading.Lock)

    def selective(self, conn: Any, token: tuple[str, int], words: list[str], budget: int) -> list[str]:
        """The words whose chunks are ranked: the rarest, within the budget; all of them without statistics."""
        with self.lock:
            if token != self.generation:
                self._refresh(conn, token)
            unknown = [w for w in words if w not in self.lexemes]
            if unknown:
                if len(self.lexemes) > 50_000:
                    self.lexemes.clear()
                for word, found in conn.execute(
                        "SELECT w, tsvector_to_array(to_tsvector('english', w)) FROM unnest(%s::text[]) w", [unknown]):
                    self.lexemes[word] = tuple(found)
            if not self.frequency:
                return words
            estimate = {w: max(self.frequency.get(lexeme, self.floor) for lexeme in self.lexemes[w])
                        for w in words if self.lexemes[w]}  # a stop word has no lexeme and matches nothing
        chosen, matched = set(), 0.0
        for word in sorted(estimate, key=estimate.__getitem__):
            if chosen and matched + estimate[word] > budget:
                break
            chosen.add(word)
            matched += estimate[word]
        return [w for w in words if w in chosen]

    def _refresh(self, conn: Any, token: tuple[str, int]) -> None:
        row = conn.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples FROM pg_class c "
            "LEFT JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = 'chunks' AND s.attname = 'search' "
            "WHERE c.oid = 'chunks'::regclass").fetchone()
        elements, frequencies, rows = row if row else (None, None, 0)
        self.generation, self.rows = token, float(rows or 0)
        if not elements or not frequencies or self.rows <= 0:
            self.frequency, self.floor = {}, 0.0
            return
        # The frequencies list has three more entries than the lexemes: the least, the greatest, and nulls.
        self.frequency = {e: f * self.rows for e, f in zip(elements, frequencies)}
        # an unlisted lexeme is in fewer chunks than the least listed one: count it at half of that
        self.floor = min(frequencies[: len(elements)]) * self.rows / 2


_shared: dict[tuple[str, str], TermStatistics] = {}
_shared_lock = threading.Lock()


def statistics_for(url: str, schema: str) -> TermStatistics:
    """The statistics of one base, shared by the stores of a process."""
    with _shared_lock:
        return _shared.setdefault((url, schema), TermStatistics())
