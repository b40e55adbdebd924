"""Where a knowledge base keeps its documents, chunks and vectors.

`Store` is the small interface the rest of the package uses; `SQLiteStore` implements it with one
SQLite file per knowledge base: documents, chunks with their vectors (float32 blobs), and an FTS5
table for keyword search (BM25; see `keyword_search` for how it stays fast when a query's words
are common). Vector search is exact (numpy) below `ann_threshold` chunks and
approximate above it (a cluster index in NumPy, `vector_index.py`, whose centroids and row groups are
kept in `vectors.clusters.npz`, derived from the blobs and re-synced when stale). A PostgreSQL backend (tsvector + pgvector) implements the same interface.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .text import STOPWORDS, words

if TYPE_CHECKING:
    import numpy as np

    from .vector_index import ClusterIndex

SCHEMA_VERSION = 1
DEFAULT_ANN_THRESHOLD = 50_000  # exact numpy search stays under ~5 ms per query below this
# Matching chunks that BM25 ranks per query before its most common words stop widening the search
# (about 0.8 µs each, bench/knowledge_search.py): see SQLiteStore.keyword_search.
DEFAULT_KEYWORD_BUDGET = 6_000


@dataclass
class DocumentRecord:
    path: str  # the absolute path: the document's identity
    source: str  # what people see and cite: "handbook/leave.md"
    type: str  # md, txt, html, pdf, docx, csv
    hash: str  # sha256 of the file's bytes
    size: int
    title: str = ""
    pipeline: str = ""  # reader and chunker settings; a change re-processes the file
    chunks: int = 0
    added_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class ChunkRecord:
    chunk_id: str
    text: str
    title_path: tuple[str, ...]
    start: int
    end: int
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None
    text_hash: str = ""
    ordinal: int = 0
    # Filled in when read back:
    path: str = ""
    source: str = ""
    type: str = ""


@dataclass(frozen=True)
class Filters:
    source: str | None = None  # a glob ("handbook/*.md"), or a file or folder as shown in citations
    types: tuple[str, ...] = ()  # md, txt, html, pdf, docx, csv

    def __bool__(self) -> bool:
        return bool(self.source or self.types)


@dataclass
class Hit:
    chunk_id: str
    score: float  # BM25 (higher is better) or cosine similarity


class Store(Protocol):
    def get_meta(self) -> dict[str, Any]: ...
    def set_meta(self, **values: Any) -> None: ...
    def documents(self) -> list[DocumentRecord]: ...
    def document(self, path: str) -> DocumentRecord | None: ...
    def put_document(self, document: DocumentRecord, chunks: list[ChunkRecord], vectors: np.ndarray) -> None: ...
    def remove_document(self, path: str) -> int: ...
    def vectors_by_text_hash(self, path: str) -> dict[str, np.ndarray]: ...
    def keyword_search(self, query: str, k: int, filters: Filters = Filters()) -> list[Hit]: ...
    def vector_search(self, vector: np.ndarray, k: int, filters: Filters = Filters()) -> list[Hit]: ...
    def chunks(self, chunk_ids: list[str]) -> list[ChunkRecord]: ...
    def vectors(self, chunk_ids: list[str]) -> dict[str, np.ndarray]: ...
    def counts(self) -> tuple[int, int]: ...
    def optimize(self) -> None: ...
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, source TEXT NOT NULL, type TEXT NOT NULL,
    hash TEXT NOT NULL, size INTEGER NOT NULL, title TEXT NOT NULL DEFAULT '', pipeline TEXT NOT NULL DEFAULT '',
    chunks INTEGER NOT NULL DEFAULT 0, added_at REAL NOT NULL, updated_at REAL NOT NULL);
-- AUTOINCREMENT: a rowid is never reused, so the vector index can be synced by comparing keys.
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id TEXT NOT NULL UNIQUE,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE, ordinal INTEGER NOT NULL,
    text TEXT NOT NULL, title_path TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    page INTEGER, line_start INTEGER, line_end INTEGER, text_hash TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, title, tokenize='porter unicode61 remove_diacritics 2');
"""

_CHUNK_COLUMNS = ("c.chunk_id, c.text, c.title_path, c.start, c.\"end\", c.page, c.line_start, c.line_end, "
                  "c.text_hash, c.ordinal, d.path, d.source, d.type")


class SQLiteStore:
    FILE = "knowledge.sqlite"
    ANN_FILE = "vectors.clusters.npz"

    def __init__(self, folder: Path, *, ann_threshold: int = DEFAULT_ANN_THRESHOLD,
                 keyword_budget: int = DEFAULT_KEYWORD_BUDGET):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ann_threshold = ann_threshold
        self.keyword_budget = keyword_budget
        self._lock = threading.RLock()
        # Tool calls run in worker threads; the lock serialises use of the one connection.
        self._db = sqlite3.connect(self.folder / self.FILE, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._matrix_cache: tuple[int, Any, Any] | None = None  # (generation, rowids, vectors)
        self._count_cache: tuple[int, int] | None = None  # (generation, chunks)
        self._frequency_cache: tuple[int, dict[str, int]] = (-1, {})  # (generation, {phrase: chunks with it})
        self._ann = None
        self._ann_generation = -1
        version = self.get_meta().get("schema")
        if version is None:
            self.set_meta(schema=SCHEMA_VERSION, generation=0)
        elif version != SCHEMA_VERSION:
            raise ValueError(f"{self.folder} was written by another plugdeck version (schema {version}); "
                             "remove it and add the documents again")

    # ---- meta and documents ------------------------------------------------------------------------

    def get_meta(self) -> dict[str, Any]:
        with self._lock:
            return {key: json.loads(value) for key, value in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values: Any) -> None:
        with self._lock, self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in values.items()])

    def documents(self) -> list[DocumentRecord]:
        with self._lock:
            rows = self._db.execute("SELECT path, source, type, hash, size, title, pipeline, chunks, added_at, "
                                    "updated_at FROM documents ORDER BY source").fetchall()
        return [DocumentRecord(*row) for row in rows]

    def document(self, path: str) -> DocumentRecord | None:
        with self._lock:
            row = self._db.execute("SELECT path, source, type, hash, size, title, pipeline, chunks, added_at, "
                                   "updated_at FROM documents WHERE path = ?", (path,)).fetchone()
        return DocumentRecord(*row) if row else None

    def put_document(self, document: DocumentRecord, chunks: list[ChunkRecord], vectors: np.ndarray) -> None:
        """Add or replace a document with its chunks and their vectors, all at once."""
        import numpy as np

        vectors = np.asarray(vectors, dtype=np.float32)
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        now = time.time()
        with self._lock, self._transaction():
            old = self._db.execute("SELECT id, added_at FROM documents WHERE path = ?", (document.path,)).fetchone()
            if old:
                self._delete_chunks(old[0])
                self._db.execute("DELETE FROM documents WHERE id = ?", (old[0],))
            added_at = old[1] if old else now
            cursor = self._db.execute(
                "INSERT INTO documents(path, source, type, hash, size, title, pipeline, chunks, added_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (document.path, document.source, document.type, document.hash, document.size, document.title,
                 document.pipeline, len(chunks), added_at, now))
            doc_id = cursor.lastrowid
            for chunk, vector in zip(chunks, vectors):
                cursor = self._db.execute(
                    'INSERT INTO chunks(chunk_id, doc_id, ordinal, text, title_path, start, "end", page, line_start, '
                    "line_end, text_hash, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (chunk.chunk_id, doc_id, chunk.ordinal, chunk.text, json.dumps(list(chunk.title_path)),
                     chunk.start, chunk.end, chunk.page, chunk.line_start, chunk.line_end, chunk.text_hash,
                     vector.tobytes()))
                self._db.execute("INSERT INTO chunks_fts(rowid, text, title) VALUES (?, ?, ?)",
                                 (cursor.lastrowid, chunk.text, " ".join(chunk.title_path)))
            self._bump_generation()

    def remove_document(self, path: str) -> int:
        with self._lock, self._transaction():
            row = self._db.execute("SELECT id, chunks FROM documents WHERE path = ?", (path,)).fetchone()
            if not row:
                return 0
            self._delete_chunks(row[0])
            self._db.execute("DELETE FROM documents WHERE id = ?", (row[0],))
            self._bump_generation()
            return row[1]

    def _delete_chunks(self, doc_id: int) -> None:
        self._db.execute("DELETE FROM chunks_fts WHERE rowid IN (SELECT rowid FROM chunks WHERE doc_id = ?)", (doc_id,))
        self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))

    def _bump_generation(self) -> None:
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def _generation(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def _chunk_count(self) -> int:
        """How many chunks there are, counted once per write (a count takes milliseconds at 100k chunks)."""
        generation = self._generation()
        if self._count_cache is None or self._count_cache[0] != generation:
            self._count_cache = (generation, self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])
        return self._count_cache[1]

    def vectors_by_text_hash(self, path: str) -> dict[str, np.ndarray]:
        import numpy as np

        with self._lock:
            rows = self._db.execute("SELECT c.text_hash, c.vector FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                    "WHERE d.path = ?", (path,)).fetchall()
        return {h: np.frombuffer(blob, dtype=np.float32) for h, blob in rows}

    def counts(self) -> tuple[int, int]:
        with self._lock:
            documents = self._db.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return documents, chunks

    # ---- reading chunks ------------------------------------------------------------------------------

    def chunks(self, chunk_ids: list[str]) -> list[ChunkRecord]:
        """The chunks, in the order asked for."""
        if not chunk_ids:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
                f"WHERE c.chunk_id IN ({','.join('?' * len(chunk_ids))})", list(chunk_ids)).fetchall()
        found = {row[0]: _chunk_record(row) for row in rows}
        return [found[i] for i in chunk_ids if i in found]

    def document_chunks(self, path: str) -> list[ChunkRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                    "WHERE d.path = ? ORDER BY c.ordinal", (path,)).fetchall()
        return [_chunk_record(row) for row in rows]

    def vectors(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        import numpy as np

        if not chunk_ids:
            return {}
        with self._lock:
            rows = self._db.execute(f"SELECT chunk_id, vector FROM chunks WHERE chunk_id IN "
                                    f"({','.join('?' * len(chunk_ids))})", list(chunk_ids)).fetchall()
        return {chunk_id: np.frombuffer(blob, dtype=np.float32) for chunk_id, blob in rows}

    # ---- search ------------------------------------------------------------------------------------

    def keyword_search(self, query: str, k: int, filters: Filters = Filters()) -> list[Hit]:
        """The k chunks with the best BM25 score for any of the query's words.

        FTS5 scores every chunk that holds any of the words before it sorts them, about a millisecond
        per 1,200 chunks: a question with a common word ("city", "year") would take tens of
        milliseconds in a large knowledge base. BM25 is a sum over the words and a common word adds
        little to it, so the words are split by how many chunks hold them. The rarest, as many as
        together match at most `keyword_budget` chunks (and at least one word), choose the
        candidates; the common rest only add to the scores of the candidates that hold them (a
        second query, `rare AND common`, scored with every word). Each candidate keeps its exact
        score; left out are chunks that hold none of the rarer words. Below the budget nothing changes.
        """
        phrases = query_phrases(query)
        if not phrases:
            return []
        with self._lock:
            selective, common = self._split_by_frequency(phrases)
            if not selective:  # no query word is in any chunk
                return []
            candidates = any_of(selective)
            ranked = {row[0]: row for row in self._bm25_top_k(candidates, k, filters)}
            if common:
                for row in self._bm25_top_k(f"({candidates}) AND ({any_of(common)})", k, filters):
                    ranked[row[0]] = min(row, ranked.get(row[0], row), key=lambda r: r[2])
        # Ties in FTS5's own order (by rowid), so that results below the budget are exactly as before.
        best = sorted(ranked.values(), key=lambda row: (row[2], row[0]))[:k]
        return [Hit(chunk_id, -rank) for _, chunk_id, rank in best]  # FTS5's bm25 is lower-is-better

    def _bm25_top_k(self, expression: str, k: int, filters: Filters) -> list[tuple[int, str, float]]:
        """(rowid, chunk id, FTS5 bm25) of the k best chunks matching an FTS5 expression, best first."""
        if filters:
            where, parameters = _filter_sql(filters)
            return self._db.execute(
                "SELECT c.rowid, c.chunk_id, bm25(chunks_fts, 1.0, 1.5) AS rank FROM chunks_fts "
                "JOIN chunks c ON c.rowid = chunks_fts.rowid JOIN documents d ON d.id = c.doc_id "
                f"WHERE chunks_fts MATCH ? {where} ORDER BY rank LIMIT ?", [expression, *parameters, k]).fetchall()
        # Rank inside the full-text index and join only the k best: joining every match first
        # makes a query matching 25k of 100k chunks four times slower (bench/knowledge_search.py).
        return self._db.execute(
            "SELECT c.rowid, c.chunk_id, f.rank FROM (SELECT rowid, bm25(chunks_fts, 1.0, 1.5) AS rank FROM chunks_fts "
            "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?) f JOIN chunks c ON c.rowid = f.rowid "
            "ORDER BY f.rank", [expression, k]).fetchall()

    def _split_by_frequency(self, phrases: list[str]) -> tuple[list[str], list[str]]:
        """(the rarest phrases, which choose the candidates; the common rest, which only add to their
        scores). Phrases in no chunk are dropped, and so are common ones in more than half of all
        chunks: FTS5's BM25 gives those no weight (their inverse document frequency is clamped)."""
        frequency = self._document_frequencies(phrases)
        rarest_first = sorted((p for p in phrases if frequency[p]), key=lambda p: frequency[p])
        chosen, matched = set(), 0
        for phrase in rarest_first:
            if chosen and matched + frequency[phrase] > self.keyword_budget:
                break
            chosen.add(phrase)
            matched += frequency[phrase]
        half = self._chunk_count() / 2
        # In the query's order: FTS5 adds the words' scores in this order, the last bits of a tie.
        selective = [p for p in phrases if p in chosen]
        common = [p for p in phrases if frequency[p] and p not in chosen and frequency[p] <= half]
        return selective, common

    def _document_frequencies(self, phrases: list[str]) -> dict[str, int]:
        """How many chunks hold each phrase, remembered until the next write."""
        generation = self._generation()
        if self._frequency_cache[0] != generation or len(self._frequency_cache[1]) > 50_000:
            self._frequency_cache = (generation, {})
        known = self._frequency_cache[1]
        for phrase in phrases:
            if phrase not in known:
                known[phrase] = self._db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                                                 [phrase]).fetchone()[0]
        return {phrase: known[phrase] for phrase in phrases}

    def vector_search(self, vector: np.ndarray, k: int, filters: Filters = Filters()) -> list[Hit]:
        import numpy as np

        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            allowed = self._allowed_rowids(filters) if filters else None
            approximate = self._chunk_count() >= self.ann_threshold and (
                allowed is None or len(allowed) > self.ann_threshold // 4)
            if allowed is not None:
                scored = self._ann_search(vector, k, allowed) if approximate else self._exact_search(vector, k, allowed)
                return self._hits(scored)
            searched = self._synced_ann() if approximate else self._matrix()
        # The scan runs outside the lock, so that hybrid_search's keyword half (SQLite, on another
        # thread) overlaps it instead of waiting for it.
        if approximate:
            scored = self._scored(*searched.search(vector, k))
        else:
            scored = self._scan(*searched, vector, k)
        with self._lock:
            return self._hits(scored)

    def _exact_search(self, vector, k: int, allowed) -> list[tuple[int, float]]:
        return self._scan(*self._rows_vectors(sorted(allowed)), vector, k)

    @staticmethod
    def _scan(rowids, matrix, vector, k: int) -> list[tuple[int, float]]:
        from .vector_index import exact_top_k

        if not len(rowids):
            return []
        top, scores = exact_top_k(matrix, vector, k)
        return SQLiteStore._scored(rowids[top], scores)

    @staticmethod
    def _scored(rowids, scores) -> list[tuple[int, float]]:
        return [(int(rowid), float(score)) for rowid, score in zip(rowids, scores)]

    def _ann_search(self, vector, k: int, allowed) -> list[tuple[int, float]]:
        keys, similarities = self._synced_ann().search(vector, k * 8)
        scored = [s for s in self._scored(keys, similarities) if s[0] in allowed]
        if len(scored) < k:  # the filter is selective: search its rows exactly instead
            return self._exact_search(vector, k, allowed)
        return scored[:k]

    def _hits(self, scored: list[tuple[int, float]]) -> list[Hit]:
        if not scored:
            return []
        rowids = [r for r, _ in scored]
        ids = dict(self._db.execute(f"SELECT rowid, chunk_id FROM chunks WHERE rowid IN ({','.join('?' * len(rowids))})",
                                    rowids).fetchall())
        return [Hit(ids[r], score) for r, score in scored if r in ids]

    def _allowed_rowids(self, filters: Filters) -> set[int]:
        where, parameters = _filter_sql(filters)
        rows = self._db.execute(f"SELECT c.rowid FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE 1 {where}",
                                parameters).fetchall()
        return {r for (r,) in rows}

    def _rows_vectors(self, rowids: list[int]):
        import numpy as np

        found_ids, blobs = [], []
        for i in range(0, len(rowids), 900):  # stay under SQLite's bound-parameter limit
            part = rowids[i : i + 900]
            for rowid, blob in self._db.execute(f"SELECT rowid, vector FROM chunks WHERE rowid IN "
                                                f"({','.join('?' * len(part))})", part):
                found_ids.append(rowid)
                blobs.append(blob)
        return np.array(found_ids, dtype=np.int64), _stack(blobs)

    def _matrix(self):
        """Every vector as one matrix, cached until the next write (from any process)."""
        import numpy as np

        generation = self._generation()
        if self._matrix_cache is None or self._matrix_cache[0] != generation:
            rows = self._db.execute("SELECT rowid, vector FROM chunks ORDER BY rowid").fetchall()
            rowids = np.array([r for r, _ in rows], dtype=np.int64)
            self._matrix_cache = (generation, rowids, _stack([b for _, b in rows]))
        return self._matrix_cache[1], self._matrix_cache[2]

    # ---- the approximate index -------------------------------------------------------------------

    def optimize(self) -> None:
        """Bring the vector index up to date now (after an ingest), not on the next query."""
        with self._lock:
            if self.counts()[1] >= self.ann_threshold:
                self._synced_ann()

    def _synced_ann(self) -> ClusterIndex:
        """The cluster index over every vector, brought up to the chunks table (and saved) after a write."""
        from .vector_index import ClusterIndex

        generation = self._generation()
        if self._ann is not None and self._ann_generation == generation:
            return self._ann
        rowids, matrix = self._matrix()
        self._matrix_cache = None  # the index holds the vectors now: one copy in memory, not two
        path = self.folder / self.ANN_FILE
        if self._ann is not None:
            self._ann = self._ann.updated(rowids, matrix)
        else:
            self._ann = ClusterIndex.load(path, rowids, matrix) or ClusterIndex.train(rowids, matrix)
        self._ann.save(path)
        self._ann_generation = generation
        return self._ann

    # ---- housekeeping ------------------------------------------------------------------------------

    def _transaction(self):
        return _Transaction(self._db)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._ann = None

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *exc_info: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _stack(blobs: list[bytes]):
    import numpy as np

    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)


def _chunk_record(row) -> ChunkRecord:
    (chunk_id, text, title_path, start, end, page, line_start, line_end, text_hash, ordinal, path, source,
     kind) = row
    return ChunkRecord(chunk_id, text, tuple(json.loads(title_path)), start, end, page, line_start, line_end,
                       text_hash, ordinal, path, source, kind)


def query_phrases(query: str) -> list[str]:
    """A natural-language question's meaningful words as FTS5 phrases ("doctor's" is one phrase of
    two tokens); the stop words only when there is nothing else."""
    terms = [w for w in words(query) if w not in STOPWORDS] or words(query)
    unique = list(dict.fromkeys(terms))[:32]
    return ['"' + term.replace('"', '""') + '"' for term in unique]


def any_of(phrases: list[str]) -> str:
    return " OR ".join(phrases)


def fts_query(query: str) -> str:
    """A natural-language question as one FTS5 expression: its meaningful words, any of them."""
    return any_of(query_phrases(query))


def _filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    clauses, parameters = [], []
    if filters.types:
        clauses.append(f"d.type IN ({','.join('?' * len(filters.types))})")
        parameters.extend(filters.types)
    if filters.source:
        pattern = filters.source
        if any(ch in pattern for ch in "*?["):
            clauses.append("(d.source GLOB ? OR d.path GLOB ?)")
            parameters.extend([pattern, pattern])
        else:  # a file or folder as shown in citations
            folder = pattern.rstrip("/") + "/"
            clauses.append("(d.source = ? OR d.path = ? OR substr(d.source, 1, ?) = ? OR substr(d.path, 1, ?) = ?)")
            parameters.extend([pattern, pattern, len(folder), folder, len(folder), folder])
    return "".join(" AND " + c for c in clauses), parameters
