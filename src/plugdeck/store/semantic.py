"""The semantic half of the registry's search: each version's listing text is embedded once, at publish
(table `vectors`), and the latest versions' vectors are held in memory as one matrix; a query costs one
embedding (of the query) and one matrix product. Search fuses this ranking with the full-text one
(reciprocal rank fusion, as the agent's tool selector does), then orders ties by installs.

The embedder is plugdeck's (plugdeck.embedding: all-MiniLM-L6-v2 in NumPy by default). Where it cannot
load (the knowledge extra or its weights are not installed), `problem` says why and search is keyword
only, saying so in its answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

VECTORS = """
CREATE TABLE IF NOT EXISTS vectors (name TEXT NOT NULL, version TEXT NOT NULL, embedder TEXT NOT NULL,
    vector BLOB NOT NULL, PRIMARY KEY (name, version, embedder));
"""
MIN_SIMILARITY = 0.33  # below this cosine (all-MiniLM-L6-v2) a listing is unrelated to the query
CANDIDATES = 100  # from each half, before fusion
RRF_K = 60
QUERY_CACHE = 1024  # recent queries' vectors


def listing_text(manifest) -> str:
    """What is embedded for a version: its name in words, its description, its tools' names and
    descriptions (a tool's parameters are left to the keyword half)."""
    tools = "; ".join(f"{t.name.replace('_', ' ')}: {t.description}" for t in manifest.tools)
    return f"{manifest.package.replace('-', ' ')}. {manifest.description} Tools: {tools}"[:2000]


class SemanticIndex:
    def __init__(self, db, embedder: Any = None):
        self.db = db
        self._create_table()
        self._embedder = embedder
        self.problem = ""  # why the semantic half is off, once known
        self._matrix: Any = None
        self._names: list[str] = []
        self._seen: tuple | None = None  # what the matrix was loaded at (see _fresh)
        self._queries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0  # bumped by this process's writes; other processes' show in data_version

    @property
    def embedder(self) -> Any:
        """The embedder, loaded on first use; None (and `problem` set) where it cannot load."""
        if self._embedder is None and not self.problem:
            try:
                from ..embedding import LocalEmbedder

                embedder = LocalEmbedder()
                embedder.load()
                self._embedder = embedder
            except Exception as exc:  # missing numpy, weights or extra: search goes on with keywords
                self.problem = f"semantic search is off ({exc}); results are keyword matches only"
        return self._embedder

    def vector(self, manifest) -> tuple[str, bytes] | None:
        """(embedder id, vector bytes) for a version being published, or None without an embedder."""
        embedder = self.embedder
        if embedder is None:
            return None
        import numpy as np

        row = embedder.embed([listing_text(manifest)])[0]
        return embedder.id, np.asarray(row, dtype=np.float32).tobytes()

    def _create_table(self) -> None:
        self.db.executescript(VECTORS)

    def _save(self, rows: list[tuple[str, str, str, bytes]]) -> None:
        """(name, version, embedder id, vector bytes) rows, replacing any there."""
        self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)

    def _shared_version(self) -> int:
        """A number that changes when another connection commits (a replica sharing the database)."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def store(self, name: str, version: str, vector: tuple[str, bytes] | None) -> None:
        """Inside the publishing transaction."""
        if vector is not None:
            self._save([(name, version, *vector)])
        self.generation += 1

    def backfill(self, batch: int = 256) -> int:
        """Embed every latest version that has no vector yet (published while the model was missing, or
        loaded in bulk), in batches; how many were embedded."""
        from .manifest import parse_manifest

        embedder = self.embedder
        if embedder is None:
            return 0
        import numpy as np

        rows = self.db.execute("SELECT l.name, l.version, p.manifest FROM latest l JOIN packages p ON p.name = l.name "
                               "AND p.version = l.version LEFT JOIN vectors v ON v.name = l.name AND v.version = "
                               "l.version AND v.embedder = ? WHERE v.name IS NULL", (embedder.id,)).fetchall()
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            vectors = embedder.embed([listing_text(parse_manifest(r[2])) for r in chunk])
            self._save([(r[0], r[1], embedder.id, np.asarray(v, dtype=np.float32).tobytes())
                        for r, v in zip(chunk, vectors)])
        self.generation += 1
        return len(rows)

    def rank(self, query: str) -> list[tuple[str, float]]:
        """Package names by cosine similarity to the query, best first (at most CANDIDATES, none below
        MIN_SIMILARITY; the search's filters apply afterwards). [] when the semantic half is off."""
        embedder = self.embedder
        if embedder is None or not query.strip():
            return []
        import numpy as np

        with self._lock:
            self._fresh(embedder.id)
            matrix, names = self._matrix, self._names
        if matrix is None or not len(names):
            return []
        scores = matrix @ self._query_vector(embedder, query)
        keep = min(len(names), CANDIDATES)
        top = np.argpartition(-scores, keep - 1)[:keep] if keep < len(names) else np.arange(len(names))
        ordered = top[np.argsort(-scores[top], kind="stable")]
        return [(names[i], float(scores[i])) for i in ordered if scores[i] >= MIN_SIMILARITY]

    def _query_vector(self, embedder: Any, query: str) -> Any:
        key = " ".join(query.lower().split())
        with self._lock:
            if key in self._queries:
                self._queries.move_to_end(key)
                return self._queries[key]
        vector = embedder.embed([key])[0]
        with self._lock:
            self._queries[key] = vector
            while len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        return vector

    def _fresh(self, embedder_id: str) -> None:
        """Reload the matrix when this process wrote since, or another process committed (a replica
        sharing the database)."""
        import numpy as np

        seen = (self.generation, self._shared_version())
        if seen == self._seen:
            return
        rows = self.db.execute("SELECT l.name, v.vector FROM latest l JOIN vectors v ON v.name = l.name AND "
                               "v.version = l.version AND v.embedder = ? ORDER BY l.name", (embedder_id,)).fetchall()
        self._names = [r[0] for r in rows]
        self._matrix = np.vstack([np.frombuffer(bytes(r[1]), dtype=np.float32) for r in rows]) if rows else None
        self._seen = seen


def fuse(keyword: list[str], semantic: list[tuple[str, float]]) -> dict[str, float]:
    """Reciprocal rank fusion of the two rankings: name -> score (higher first)."""
    fused: dict[str, float] = {}
    for rank, name in enumerate(keyword):
        fused[name] = fused.get(name, 0.0) + 1.0 / (RRF_K + 1 + rank)
    rank, previous = 0, None
    for position, (name, similarity) in enumerate(semantic):
        if previous is None or round(similarity, 6) != previous:  # equal similarity, equal rank: installs decide
            rank, previous = position, round(similarity, 6)
        fused[name] = fused.get(name, 0.0) + 1.0 / (RRF_K + 1 + rank)
    return fused
