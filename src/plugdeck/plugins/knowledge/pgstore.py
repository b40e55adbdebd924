"""A knowledge base in PostgreSQL, so that a team shares one large base across machines.

Each knowledge base is one schema, `plugdeck_kb_NAME`, in a database named by URL
(`postgresql://user@host/db`; the password comes from the environment variable named by
`password_env`, or libpq's PGPASSWORD / ~/.pgpass, and is never recorded). Its tables mirror the
SQLite store: `meta`, `documents`, and `chunks` with the text, a `tsvector` and the vector.

Keyword search is PostgreSQL's own full-text search: the `english` configuration (stemming, stop
words), the title weighted above the text, a GIN index for matching and `ts_rank` with length
normalisation for ranking. (On SQuAD questions it ranks close to SQLite's BM25, recall@5 0.96 vs
0.96, where `ts_rank_cd`, which rewards query words close together, reaches 0.83; see
bench/knowledge_retrieval.py.)

Vector search depends on the server:

- With pgvector (`CREATE EXTENSION vector` succeeds when the base is created), chunks also get a
  `vector(dim)` column with an HNSW index, and the database orders by cosine distance (`<=>`).
  That is approximate, like the SQLite store's cluster index, and needs nothing in the client
  (bench/knowledge_search.py, 100k chunks, pgvector 0.6: top-40 in about 3 ms, recall@10 0.98 against
  an exact search; the index grows as chunks arrive, so filling the base took 280 s).
  pgvector (before 0.8) applies a filter after the index has found its ef_search nearest chunks, so
  when a filter leaves fewer than k of them, the chunks it admits are ranked exactly instead.
- Without it, vectors are stored as float32 `bytea` and scored exactly in the client: each process
  keeps every vector of the base in one matrix and scans it (`vector_index.exact_top_k`: about 6 ms for
  100k chunks of 384 dimensions on two idle cores). The matrix is refreshed when the base's change
  counter moves, and then incrementally: chunk row ids are never reused, so only rows that appeared
  are fetched and rows that vanished are dropped. The trade-off: exact results and no server
  extension, paid for with client memory (1.5 kB per chunk), one full download per process on its
  first search (0.9 s for 100k chunks over loopback), and a scan that grows linearly (ten times
  longer at a million chunks, where pgvector's index is the better choice).

Keyword search would rank every chunk that contains one of the query's words; PostgreSQL has no
top-k shortcut for that (without extensions such as RUM), so when a question's words are common
only the chunks holding its rarer words are ranked (pgterms.py; bench/knowledge_search.py).

Which of the two a base uses is decided when it is created and recorded in its `meta`, so every
machine that attaches to it searches it the same way.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ...redaction import register_secret
from .base import KnowledgeError
from .pgterms import DEFAULT_BUDGET, statistics_for
from .store import ChunkRecord, DocumentRecord, Filters, Hit
from .text import STOPWORDS, words

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 1
SCHEMA_PREFIX = "plugdeck_kb_"
MAX_NAME = 63 - len(SCHEMA_PREFIX)  # PostgreSQL cuts identifiers at 63 bytes
# ts_rank weights (each at most 1) for {D, C, B, A}: the text is D, the title path A, weighed 1.5
# times the text as in the SQLite store's BM25.
RANK_WEIGHTS = "{0.66, 0.66, 0.66, 1.0}"
RANK_NORMALIZATION = 1  # divide by 1 + log(length): long chunks do not win by size alone
# pgvector's HNSW settings: 16 links per node, 128 candidates while inserting, where pgvector's
# defaults (64) lose recall. Recall@10 against an exact search, 100k chunks of bench/knowledge_search.py:
# ef_construction 64 / ef_search 100: 0.87; 128 / 100: 0.94; 128 / 200: 0.98.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH = 200
HNSW_EF_SEARCH_MAX = 1000  # pgvector refuses larger values

_TABLES = """
CREATE TABLE meta (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE documents (
    id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, source text NOT NULL, type text NOT NULL,
    hash text NOT NULL, size bigint NOT NULL, title text NOT NULL DEFAULT '', pipeline text NOT NULL DEFAULT '',
    chunks integer NOT NULL DEFAULT 0, added_at double precision NOT NULL, updated_at double precision NOT NULL);
-- bigserial ids are never reused, so a client's cache of vectors can be synced by comparing ids.
CREATE TABLE chunks (
    id bigserial PRIMARY KEY, chunk_id text NOT NULL UNIQUE,
    doc_id bigint NOT NULL REFERENCES documents(id) ON DELETE CASCADE, ordinal integer NOT NULL,
    text text NOT NULL, title_path jsonb NOT NULL, start integer NOT NULL, "end" integer NOT NULL,
    page integer, line_start integer, line_end integer, text_hash text NOT NULL,
    search tsvector NOT NULL, vector bytea NOT NULL);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE INDEX chunks_search ON chunks USING gin(search);
"""

URL_FORMS = ("postgresql://USER@HOST[:PORT]/DATABASE, or postgresql://USER@/DATABASE?host=/SOCKET/FOLDER "
             "for a server on this machine's Unix socket")

_CHUNK_COLUMNS = ('c.chunk_id, c.text, c.title_path, c.start, c."end", c.page, c.line_start, c.line_end, '
                  "c.text_hash, c.ordinal, d.path, d.source, d.type")
_DOCUMENT_COLUMNS = "path, source, type, hash, size, title, pipeline, chunks, added_at, updated_at"


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


# ---- where a base lives ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresLocation:
    """A knowledge base's schema in a PostgreSQL database: what a machine records to find it again."""

    url: str  # never holds a password
    schema: str
    password_env: str | None = None

    @classmethod
    def for_base(cls, url: str, name: str, password_env: str | None = None) -> PostgresLocation:
        from psycopg.conninfo import conninfo_to_dict

        if not is_postgres_url(url):
            raise KnowledgeError(f"{url!r} is not a PostgreSQL URL: use {URL_FORMS}")
        try:
            parts = conninfo_to_dict(url)
        except Exception:
            raise KnowledgeError(f"the PostgreSQL URL could not be read: use {URL_FORMS} (percent-encode special "
                                 "characters)") from None
        if parts.get("password"):
            raise KnowledgeError("the PostgreSQL URL contains a password, which would be recorded in the knowledge "
                                 "base's settings: remove it from the URL and put it in an environment variable "
                                 "named with --password-env (or in PGPASSWORD or ~/.pgpass)")
        if len(name) > MAX_NAME:
            raise KnowledgeError(f"knowledge bases in PostgreSQL have names of at most {MAX_NAME} characters")
        return cls(url, SCHEMA_PREFIX + name, password_env)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PostgresLocation:
        return cls(data["url"], data["schema"], data.get("password_env"))

    def to_dict(self) -> dict[str, Any]:
        return {"backend": "postgresql", "url": self.url, "schema": self.schema, "password_env": self.password_env}

    def describe(self) -> str:
        return f"{self.url} (schema {self.schema})"

    def connect(self):
        import psycopg

        password = None
        if self.password_env:
            password = os.environ.get(self.password_env)
            if password is None:
                raise KnowledgeError(f"the password for {self.url} is read from ${self.password_env}, which is not set")
            register_secret(password, f"knowledge store {self.url} (${self.password_env})")
        try:
            return psycopg.connect(self.url, password=password, autocommit=True, connect_timeout=10,
                                   application_name="plugdeck-knowledge")
        except psycopg.Error as exc:
            raise KnowledgeError(f"cannot connect to PostgreSQL at {self.url}: {_first_line(exc)}") from None

    def exists(self) -> bool:
        with _closing(self.connect()) as conn:
            return _schema_exists(conn, self.schema)

    def open(self, *, create: bool = False) -> PostgresStore:
        return PostgresStore(self, create=create)

    def staging(self) -> PostgresLocation:
        """A fresh, unused schema beside this one, for building a replacement."""
        return PostgresLocation(self.url, f"{SCHEMA_PREFIX}_rebuild_{secrets.token_hex(6)}", self.password_env)

    def replace(self, target: PostgresLocation) -> None:
        """Make this schema the target's, dropping what the target held, in one transaction: readers see
        the old base or the new one, never a mix."""
        from psycopg import sql

        with _closing(self.connect()) as conn, conn.transaction():
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(target.schema)))
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(self.schema),
                                                                         sql.Identifier(target.schema)))

    def drop(self) -> None:
        from psycopg import sql

        with _closing(self.connect()) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def names(self) -> list[str]:
        """The knowledge bases in this database."""
        with _closing(self.connect()) as conn:
            rows = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY 1",
                                [SCHEMA_PREFIX]).fetchall()
        return [n[len(SCHEMA_PREFIX):] for (n,) in rows if not n.startswith(SCHEMA_PREFIX + "_")]


# ---- the store -------------------------------------------------------------------------------------


class PostgresStore:
    """The `Store` interface over one knowledge base's schema. One connection, used under a lock
    (tool calls run in worker threads)."""

    def __init__(self, location: PostgresLocation, *, create: bool = False, keyword_budget: int = DEFAULT_BUDGET):
        self.location = location
        self.created = False  # whether this store made the schema (an add that finds nothing removes it again)
        self._lock = threading.RLock()
        self._conn = None
        with self._session() as conn:
            if not _schema_exists(conn, location.schema):
                if not create:
                    raise KnowledgeError(f"there is no knowledge base in {location.describe()}: someone may have "
                                         "removed it")
                self._create(conn)
            meta = self.get_meta()
        if meta.get("schema") != SCHEMA_VERSION:
            raise KnowledgeError(f"{location.describe()} was written by another plugdeck version (schema "
                                 f"{meta.get('schema')}); rebuild it with this version")
        self.pgvector = meta.get("vector_index") == "pgvector"
        self._vectors = _VectorCache.shared(location)
        self._terms = statistics_for(location.url, location.schema)
        self.keyword_budget = keyword_budget

    # ---- connection ----------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.location.connect()
                    self._use_schema(self._conn)
                yield self._conn
            except psycopg.OperationalError as exc:
                self.close()
                raise KnowledgeError(f"lost the connection to PostgreSQL at {self.location.url}: "
                                     f"{_first_line(exc)}; try again") from None
            except psycopg.errors.UndefinedTable:
                raise KnowledgeError(f"there is no knowledge base in {self.location.describe()} any more: someone "
                                     "removed it") from None
            except psycopg.Error as exc:
                raise KnowledgeError(f"PostgreSQL at {self.location.url} refused: {_first_line(exc)}") from None

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._session() as conn, conn.transaction():
            yield conn

    def _create(self, conn) -> None:
        import psycopg
        from psycopg import sql

        try:
            # The search path names the base's schema, which does not exist yet: CREATE EXTENSION would find
            # no schema to create in, so it gets the server's default path (normally public).
            conn.execute("SET search_path TO DEFAULT")
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            pgvector = True
        except psycopg.Error:  # not installed on the server, or not allowed: vectors are scored in the client
            pgvector = False
        self._use_schema(conn)  # pgvector's types may have just appeared
        with conn.transaction():
            # Two machines creating the same base at once: the second waits, then finds it made.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self.location.schema])
            if _schema_exists(conn, self.location.schema):
                return
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.location.schema)))
            conn.execute(_TABLES)
            if pgvector:
                conn.execute("ALTER TABLE chunks ADD COLUMN embedding vector")
            self.created = True
            meta = {"schema": SCHEMA_VERSION, "generation": 0, "store_id": uuid.uuid4().hex,
                    "vector_index": "pgvector" if pgvector else "exact"}
            self._write_meta(conn, meta)

    def _use_schema(self, conn) -> None:
        """Unqualified names resolve in the base's schema (which may not exist yet), then where pgvector's
        types live."""
        from psycopg import sql

        row = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                           "WHERE extname = 'vector'").fetchone()
        path = [sql.Identifier(self.location.schema)] + ([sql.SQL(row[0])] if row else [])
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.SQL(", ").join(path)))

    # ---- meta and documents ----------------------------------------------------------------------

    def get_meta(self) -> dict[str, Any]:
        with self._session() as conn:
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: Any) -> None:
        with self._transaction() as conn:
            self._write_meta(conn, values)

    @staticmethod
    def _write_meta(conn, values: dict[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO meta(key, value) VALUES (%s, %s) "
                               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               [(k, Jsonb(v)) for k, v in values.items()])

    def documents(self) -> list[DocumentRecord]:
        with self._session() as conn:
            rows = conn.execute(f"SELECT {_DOCUMENT_COLUMNS} FROM documents ORDER BY source").fetchall()
        return [DocumentRecord(*row) for row in rows]

    def document(self, path: str) -> DocumentRecord | None:
        with self._session() as conn:
            row = conn.execute(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE path = %s", [path]).fetchone()
        return DocumentRecord(*row) if row else None

    def put_document(self, document: DocumentRecord, chunks: list[ChunkRecord], vectors: np.ndarray) -> None:
        """Add or replace a document with its chunks and their vectors, all at once."""
        import numpy as np

        vectors = np.asarray(vectors, dtype=np.float32)
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        now = time.time()
        with self._transaction() as conn:
            self._bump_generation(conn)  # first: it also makes concurrent writers take turns
            old = conn.execute("SELECT id, added_at FROM documents WHERE path = %s", [document.path]).fetchone()
            if old:
                conn.execute("DELETE FROM documents WHERE id = %s", [old[0]])  # its chunks go with it
            doc_id = conn.execute(
                f"INSERT INTO documents({_DOCUMENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                [document.path, document.source, document.type, document.hash, document.size, document.title,
                 document.pipeline, len(chunks), old[1] if old else now, now]).fetchone()[0]
            if not chunks:
                return
            if self.pgvector:
                self._prepare_pgvector(conn, vectors.shape[1])
            embedding = ", embedding" if self.pgvector else ""
            placeholder = ", %s::vector" if self.pgvector else ""
            rows = []
            for chunk, vector in zip(chunks, vectors):
                title = " ".join(chunk.title_path)
                row = [chunk.chunk_id, doc_id, chunk.ordinal, chunk.text, json.dumps(list(chunk.title_path)),
                       chunk.start, chunk.end, chunk.page, chunk.line_start, chunk.line_end, chunk.text_hash,
                       title, chunk.text, vector.tobytes()]
                if self.pgvector:
                    row.append("[" + ",".join(map(repr, vector.tolist())) + "]")
                rows.append(row)
            with conn.cursor() as cursor:
                cursor.executemany(
                    'INSERT INTO chunks(chunk_id, doc_id, ordinal, text, title_path, start, "end", page, line_start, '
                    f"line_end, text_hash, search, vector{embedding}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, setweight(to_tsvector('english', %s), 'A') || to_tsvector('english', %s), %s"
                    f"{placeholder})", rows)

    def _prepare_pgvector(self, conn, dimension: int) -> None:
        """Give the embedding column its dimension and an HNSW index, once, when the first vectors arrive."""
        found = conn.execute("SELECT value FROM meta WHERE key = 'vector_dimension'").fetchone()
        if found:
            return
        conn.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dimension)})")
        conn.execute("CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops) "
                     f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")
        self._write_meta(conn, {"vector_dimension": int(dimension)})

    def remove_document(self, path: str) -> int:
        with self._transaction() as conn:
            self._bump_generation(conn)
            row = conn.execute("DELETE FROM documents WHERE path = %s RETURNING chunks", [path]).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _bump_generation(conn) -> None:
        conn.execute("UPDATE meta SET value = to_jsonb((value #>> '{}')::bigint + 1) WHERE key = 'generation'")

    def vectors_by_text_hash(self, path: str) -> dict[str, np.ndarray]:
        import numpy as np

        with self._session() as conn:
            rows = conn.execute("SELECT c.text_hash, c.vector FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                "WHERE d.path = %s", [path], binary=True).fetchall()
        return {h: np.frombuffer(blob, dtype=np.float32) for h, blob in rows}

    def counts(self) -> tuple[int, int]:
        with self._session() as conn:
            return conn.execute("SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)").fetchone()

    # ---- reading chunks ----------------------------------------------------------------------------

    def chunks(self, chunk_ids: list[str]) -> list[ChunkRecord]:
        """The chunks, in the order asked for."""
        if not chunk_ids:
            return []
        with self._session() as conn:
            rows = conn.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                "WHERE c.chunk_id = ANY(%s)", [list(chunk_ids)]).fetchall()
        found = {row[0]: _chunk_record(row) for row in rows}
        return [found[i] for i in chunk_ids if i in found]

    def document_chunks(self, path: str) -> list[ChunkRecord]:
        with self._session() as conn:
            rows = conn.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                "WHERE d.path = %s ORDER BY c.ordinal", [path]).fetchall()
        return [_chunk_record(row) for row in rows]

    def vectors(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        import numpy as np

        if not chunk_ids:
            return {}
        with self._session() as conn:
            rows = conn.execute("SELECT chunk_id, vector FROM chunks WHERE chunk_id = ANY(%s)", [list(chunk_ids)],
                                binary=True).fetchall()
        return {chunk_id: np.frombuffer(blob, dtype=np.float32) for chunk_id, blob in rows}

    # ---- search --------------------------------------------------------------------------------------

    def keyword_search(self, query: str, k: int, filters: Filters = Filters()) -> list[Hit]:
        """The k chunks with the best ts_rank for any of the query's words, ranking only the chunks that
        hold its rarer words when its words are common (pgterms.py)."""
        terms = tsquery_terms(query)
        if not terms:
            return []
        where, parameters = _filter_sql(filters)
        documents = f"AND c.doc_id IN (SELECT d.id FROM documents d WHERE true {where})" if where else ""
        with self._session() as conn:
            selective = self._terms.selective(conn, self._token(conn), terms, self.keyword_budget)
            if not selective:  # only stop words
                return []
            rows = conn.execute(
                f"SELECT c.chunk_id, ts_rank('{RANK_WEIGHTS}', c.search, to_tsquery('english', %s), "
                f"{RANK_NORMALIZATION}) AS rank FROM chunks c WHERE c.search @@ to_tsquery('english', %s) {documents} "
                "ORDER BY rank DESC, c.id LIMIT %s", [" | ".join(terms), " | ".join(selective), *parameters, k]).fetchall()
        return [Hit(chunk_id, float(rank)) for chunk_id, rank in rows]

    @staticmethod
    def _token(conn) -> tuple[str, int]:
        """(store id, generation): which version of the base this is."""
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('store_id', 'generation')").fetchall())
        return meta["store_id"], int(meta["generation"])

    def vector_search(self, vector: np.ndarray, k: int, filters: Filters = Filters()) -> list[Hit]:
        import numpy as np

        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self.pgvector:
            return self._pgvector_search(vector, k, filters)
        allowed = self._allowed_ids(filters) if filters else None
        return self._vectors.search(self, vector, k, allowed)

    def _pgvector_search(self, vector, k: int, filters: Filters) -> list[Hit]:
        where, parameters = _filter_sql(filters)
        literal = "[" + ",".join(map(repr, vector.tolist())) + "]"
        ef_search = min(max(HNSW_EF_SEARCH, k), HNSW_EF_SEARCH_MAX)
        with self._transaction() as conn:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
            rows = conn.execute(
                "SELECT c.chunk_id, 1 - (c.embedding <=> %s::vector) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                f"WHERE true {where} ORDER BY c.embedding <=> %s::vector LIMIT %s",
                [literal, *parameters, literal, k]).fetchall()
            if where and len(rows) < k:
                rows = self._pgvector_exact(conn, literal, k, where, parameters)
        return [Hit(chunk_id, float(similarity)) for chunk_id, similarity in rows]

    @staticmethod
    def _pgvector_exact(conn, literal: str, k: int, where: str, parameters: list[Any]) -> list[tuple[str, float]]:
        """The k nearest of the chunks a filter admits, scanning them all. The HNSW index finds the ef_search
        nearest chunks of the whole base and the filter is applied after it, so a narrow filter leaves
        fewer than k; then the chunks it admits are few, and ranking each of them is cheap. (The
        materialized CTE keeps the planner from using the index for the ordering.)"""
        return conn.execute(
            "WITH admitted AS MATERIALIZED (SELECT c.chunk_id, c.embedding <=> %s::vector AS distance "
            f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE true {where}) "
            "SELECT chunk_id, 1 - distance FROM admitted ORDER BY distance LIMIT %s",
            [literal, *parameters, k]).fetchall()

    def _allowed_ids(self, filters: Filters) -> np.ndarray:
        import numpy as np

        where, parameters = _filter_sql(filters)
        with self._session() as conn:
            rows = conn.execute(f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE true {where}",
                                parameters).fetchall()
        return np.array([r for (r,) in rows], dtype=np.int64)

    # ---- housekeeping ------------------------------------------------------------------------------

    def optimize(self) -> None:
        """Refresh the planner's statistics after an ingest (the GIN and HNSW indexes are always current)."""
        with self._session() as conn:
            conn.execute("ANALYZE documents")
            conn.execute("ANALYZE chunks")

    def size_bytes(self) -> int:
        with self._session() as conn:
            return conn.execute("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
                                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE n.nspname = %s AND c.relkind = 'r'", [self.location.schema]).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# ---- exact vector search in the client ---------------------------------------------------------------


@dataclass
class _VectorCache:
    """Every vector of one base, in one matrix, shared by the stores of a process."""

    token: tuple[str, int] | None = None  # (store_id, generation) the matrix reflects
    ids: Any = None  # chunk row ids, int64
    chunk_ids: Any = None  # numpy array of str
    matrix: Any = None  # float32, one row per id
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def shared(cls, location: PostgresLocation) -> _VectorCache:
        with _caches_lock:
            return _caches.setdefault((location.url, location.schema), cls())

    def search(self, store: PostgresStore, vector, k: int, allowed) -> list[Hit]:
        import numpy as np

        from .vector_index import exact_top_k

        with self.lock:
            self._sync(store)
            ids, chunk_ids, matrix = self.ids, self.chunk_ids, self.matrix
        if not len(ids):
            return []
        if allowed is not None:
            rows = np.flatnonzero(np.isin(ids, allowed))
            top, scores = exact_top_k(matrix[rows], vector, k)
            top = rows[top]
        else:
            top, scores = exact_top_k(matrix, vector, k)
        return [Hit(str(chunk_ids[i]), float(score)) for i, score in zip(top, scores)]

    def _sync(self, store: PostgresStore) -> None:
        import numpy as np

        with store._session() as conn:
            # The token is read before the rows, so it is never newer than the matrix it labels.
            meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('store_id', 'generation')").fetchall())
            token = (meta["store_id"], int(meta["generation"]))
            if token == self.token:
                return
            if self.token is None or self.token[0] != token[0]:  # first use, or the base was rebuilt
                rows = conn.execute("SELECT id, chunk_id, vector FROM chunks", binary=True).fetchall()
                self.ids, self.chunk_ids, self.matrix = _columns(rows)
            else:
                present = np.array(conn.execute("SELECT id FROM chunks").fetchall(), dtype=np.int64).reshape(-1)
                keep = np.isin(self.ids, present)
                new = np.setdiff1d(present, self.ids)
                rows = (conn.execute("SELECT id, chunk_id, vector FROM chunks WHERE id = ANY(%s)", [new.tolist()],
                                     binary=True).fetchall() if len(new) else [])
                ids, chunk_ids, matrix = _columns(rows)
                if not keep.all() or len(ids):
                    self.ids = np.concatenate([self.ids[keep], ids])
                    self.chunk_ids = np.concatenate([self.chunk_ids[keep], chunk_ids])
                    parts = [m for m in (self.matrix[keep], matrix) if len(m)]
                    self.matrix = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
            self.token = token


_caches: dict[tuple[str, str], _VectorCache] = {}
_caches_lock = threading.Lock()


def _columns(rows):
    import numpy as np

    ids = np.array([r[0] for r in rows], dtype=np.int64)
    chunk_ids = np.array([r[1] for r in rows], dtype=object)
    if not rows:
        return ids, chunk_ids, np.zeros((0, 0), dtype=np.float32)
    matrix = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype=np.float32).reshape(len(rows), -1)
    return ids, chunk_ids, matrix


# ---- helpers -------------------------------------------------------------------------------------------


def _schema_exists(conn, schema: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() is not None


@contextmanager
def _closing(conn) -> Iterator[Any]:
    try:
        yield conn
    finally:
        conn.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _chunk_record(row) -> ChunkRecord:
    (chunk_id, text, title_path, start, end, page, line_start, line_end, text_hash, ordinal, path, source,
     kind) = row
    return ChunkRecord(chunk_id, text, tuple(title_path), start, end, page, line_start, line_end, text_hash, ordinal,
                       path, source, kind)


def tsquery_terms(query: str) -> list[str]:
    """A natural-language question's meaningful words, for a to_tsquery expression. Only letters and
    digits reach the expression, so a query cannot change its syntax."""
    terms = [w for w in words(query) if w not in STOPWORDS] or words(query)
    parts = dict.fromkeys(part for term in terms for part in re.findall(r"[^\W_]+", term))
    return list(parts)[:32]


def tsquery(query: str) -> str:
    """A natural-language question as a to_tsquery expression: its meaningful words, any of them."""
    return " | ".join(tsquery_terms(query))


def glob_regex(pattern: str) -> str:
    """A glob (* ? [...], as SQLite's GLOB reads it) as an anchored POSIX regular expression."""
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            start = i + 1 + (pattern[i + 1 : i + 2] == "^")
            start += pattern[start : start + 1] == "]"  # a ']' first in the set is a member
            end = pattern.find("]", start)
            if end == -1:
                out.append(r"\[")
            else:
                out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out) + "$"


def _filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    clauses, parameters = [], []
    if filters.types:
        clauses.append("d.type = ANY(%s)")
        parameters.append(list(filters.types))
    if filters.source:
        pattern = filters.source
        if any(ch in pattern for ch in "*?["):
            clauses.append("(d.source ~ %s OR d.path ~ %s)")
            parameters.extend([glob_regex(pattern)] * 2)
        else:  # a file or folder as shown in citations
            folder = pattern.rstrip("/") + "/"
            clauses.append("(d.source = %s OR d.path = %s OR starts_with(d.source, %s) OR starts_with(d.path, %s))")
            parameters.extend([pattern, pattern, folder, folder])
    return "".join(" AND " + c for c in clauses), parameters
