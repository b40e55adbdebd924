"""The registry's index in PostgreSQL, so several `plugdeck store serve --db postgresql://...` replicas share
one: namespaces, tokens, versions, revocations, install counts, the search index and the semantic vectors.
(The TUF files stay in the folder the replicas share.)

What must hold across replicas is the database's job, not a process's: a namespace is claimed once and a
version published once (primary keys; the loser gets the same error as on SQLite); a package's search
row is rebuilt under a per-package advisory lock; each write bumps `index_generation`, which replicas
read to know their in-memory semantic matrix is stale (SQLite's PRAGMA data_version, spelled out).

Keyword search is PostgreSQL full text: a weighted tsvector per package (name A, description B, tools C)
matched with prefix terms and ranked by ts_rank; the permission filters read the manifest as JSONB.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from ..errors import ServiceError, UserError
from ..redaction import is_postgres, redact_url
from .manifest import parse_manifest, version_key
from .repo import TrustError
from .semantic import SemanticIndex
from .service import COLUMNS, AlreadyPublished, Listings, _listing, _sha256, permission_filters

SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY, public_key TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS packages (
    name TEXT NOT NULL, version TEXT NOT NULL, namespace TEXT NOT NULL, kind TEXT NOT NULL,
    description TEXT NOT NULL, manifest TEXT NOT NULL, checks TEXT NOT NULL, published_at DOUBLE PRECISION NOT NULL,
    installs BIGINT NOT NULL DEFAULT 0, revoked TEXT, document JSONB NOT NULL, PRIMARY KEY (name, version));
CREATE INDEX IF NOT EXISTS packages_by_installs ON packages (installs DESC, name);
CREATE TABLE IF NOT EXISTS latest (name TEXT PRIMARY KEY, version TEXT NOT NULL, words TSVECTOR NOT NULL);
CREATE INDEX IF NOT EXISTS latest_words ON latest USING GIN (words);
CREATE TABLE IF NOT EXISTS vectors (name TEXT NOT NULL, version TEXT NOT NULL, embedder TEXT NOT NULL,
    vector BYTEA NOT NULL, PRIMARY KEY (name, version, embedder));
CREATE TABLE IF NOT EXISTS index_generation (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO index_generation VALUES (1, 0) ON CONFLICT DO NOTHING;
"""
_SCHEMA_LOCK = 0x706473746F7265  # "pdstore": replicas starting together create the tables once
# ts_rank's weights for {D, C, B, A}: a name hit worth most, then the description, then the tools' text
# (SQLite's bm25(10, 3, 1)).
_RANK = "ts_rank('{0, 0.1, 0.3, 1.0}', l.words, q)"
_PERMISSIONS = "(p.document -> 'permissions')"
PERMISSION_FILTERS = permission_filters(f"jsonb_array_length({_PERMISSIONS} -> 'network')",
                                        f"jsonb_array_length({_PERMISSIONS} -> 'secrets')",
                                        f"({_PERMISSIONS} ->> 'filesystem')")


class RegistryDatabaseError(ServiceError):
    """The registry's PostgreSQL database cannot be reached or used; the message says where."""


def open_listings(target: str, *, semantic: bool = True, embedder: Any = None) -> PostgresListings:
    if not is_postgres(target):
        shown = redact_url(target, "registry database URL")
        raise UserError(f"the registry database {shown!r} is not a postgresql://USER@HOST/DATABASE URL "
                        "(leave --db out for the folder's SQLite registry.db)")
    return PostgresListings(target, semantic=semantic, embedder=embedder)


class _Database:
    """One autocommit connection per thread (the app's worker threads), `?` placeholders as SQLite's."""

    def __init__(self, url: str):
        try:
            import psycopg  # only with --db: `import plugdeck` stays light
        except ImportError:
            raise UserError("a PostgreSQL registry index needs psycopg: pip install 'plugdeck[store,postgres]'") \
                from None

        self.psycopg, self.url, self.where = psycopg, url, redact_url(url, "registry database URL")
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = self.psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                            application_name="plugdeck-store")
            except self.psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise RegistryDatabaseError(f"cannot reach the registry database at {self.where}: {first}. Check "
                                            "that PostgreSQL is running and accepts this user and database") from None
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def execute(self, sql: str, params: tuple | list = ()):
        return self.connection().execute(sql.replace("?", "%s"), params or None)

    def executemany(self, sql: str, rows: list) -> None:
        with self.connection().cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)

    def transaction(self):
        return self.connection().transaction()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class PostgresSemanticIndex(SemanticIndex):
    """The semantic half over the shared database: vectors as bytea, staleness by `index_generation`."""

    def _create_table(self) -> None:
        pass  # in PostgresListings' schema

    def _save(self, rows: list[tuple[str, str, str, bytes]]) -> None:
        self.db.executemany("INSERT INTO vectors VALUES (?, ?, ?, ?) ON CONFLICT (name, version, embedder) "
                            "DO UPDATE SET vector = EXCLUDED.vector", rows)
        self.db.execute("UPDATE index_generation SET n = n + 1 WHERE id = 1")

    def _shared_version(self) -> int:
        return self.db.execute("SELECT n FROM index_generation WHERE id = 1").fetchone()[0]


class PostgresListings(Listings):
    """Listings over PostgreSQL: the same methods and results as the SQLite one."""

    permission_filters = PERMISSION_FILTERS

    def __init__(self, url: str, *, semantic: bool = True, embedder: Any = None):
        self.db = _Database(url)
        try:
            with self.db.transaction():
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
                self.db.execute(SCHEMA)
        except self.db.psycopg.Error as exc:
            raise RegistryDatabaseError(f"cannot set up the registry database at {self.db.where}: {exc}") from None
        self.lock = threading.Lock()
        self.semantic = PostgresSemanticIndex(self.db, embedder) if semantic else None

    def close(self) -> None:
        self.db.close()

    def add_namespace(self, name: str, public_key: dict[str, Any]) -> str:
        token = "pds_" + secrets.token_urlsafe(32)
        try:
            self.db.execute("INSERT INTO namespaces VALUES (?, ?, ?, ?)",
                            (name, json.dumps(public_key), _sha256(token), time.time()))
        except self.db.psycopg.errors.UniqueViolation:
            raise TrustError(f"namespace {name!r} is already taken") from None
        return token

    def add_version(self, manifest, checks: dict[str, Any]) -> None:
        vector = self.semantic.vector(manifest) if self.semantic else None
        text = manifest.to_bytes().decode()
        try:
            with self.db.transaction():
                self.db.execute("INSERT INTO packages VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, ?::jsonb)",
                                (manifest.name, manifest.version, manifest.namespace, manifest.kind,
                                 manifest.description, text, json.dumps(checks), time.time(), text))
                self._relist(manifest.name)
                if self.semantic:
                    self.semantic.store(manifest.name, manifest.version, vector)
                self._bump()
        except self.db.psycopg.errors.UniqueViolation:
            raise AlreadyPublished(manifest.name, manifest.version) from None

    def revoke(self, name: str, version: str, reason: str) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE packages SET revoked = ? WHERE name = ? AND version = ?", (reason, name, version))
            self._relist(name)
            self._bump()

    def count_install(self, name: str, version: str) -> bool:
        return self.db.execute("UPDATE packages SET installs = installs + 1 WHERE name = ? AND version = ?",
                               (name, version)).rowcount == 1

    def _bump(self) -> None:
        self.db.execute("UPDATE index_generation SET n = n + 1 WHERE id = 1")

    def _relist(self, name: str) -> None:
        """The package's search row: its highest version not revoked. Two replicas writing one package
        take turns (the advisory lock), so the row is never built from a half-seen set of versions."""
        self.db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))
        self.db.execute("DELETE FROM latest WHERE name = ?", (name,))
        rows = self.db.execute("SELECT version, manifest FROM packages WHERE name = ? AND revoked IS NULL",
                               (name,)).fetchall()
        if not rows:
            return
        version, text = max(rows, key=lambda r: version_key(r[0]))
        manifest = parse_manifest(text)
        tools = " ".join(f"{t.name.replace('_', ' ')} {t.description}" for t in manifest.tools)
        self.db.execute("INSERT INTO latest VALUES (?, ?, setweight(to_tsvector('english', ?), 'A') || "
                        "setweight(to_tsvector('english', ?), 'B') || setweight(to_tsvector('english', ?), 'C'))",
                        (name, version, name.replace("/", " ").replace("-", " "), manifest.description, tools))

    def _keyword(self, words: list[str], where: list[str], params: list, limit: int,
                 columns: str = COLUMNS) -> list[Any]:
        """Listings matching every word (each as a prefix), best first."""
        filters = "".join(f" AND {w}" for w in where)
        join = "FROM latest l JOIN packages p ON p.name = l.name AND p.version = l.version"
        if words:
            # Words are letters and digits only (find() splits on the rest), so they are safe tsquery terms.
            sql = (f"SELECT {columns} {join}, to_tsquery('english', ?) q WHERE l.words @@ q{filters} "
                   f"ORDER BY {_RANK} DESC, p.installs DESC, p.name LIMIT ?")
            params = [" & ".join(f"{w}:*" for w in words), *params, limit]
        else:
            sql = f"SELECT {columns} {join} WHERE TRUE{filters} ORDER BY p.installs DESC, p.name LIMIT ?"
            params = [*params, limit]
        rows = self.db.execute(sql, params).fetchall()
        return [row[0] for row in rows] if columns == "p.name" else [_listing(row) for row in rows]
