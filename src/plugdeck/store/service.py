"""The registry service: `plugdeck store serve`.

REST under /api/v1 (its OpenAPI document at /openapi.json), and the TUF repository as static files
under /tuf/metadata and /tuf/targets, which a CDN may front: clients trust those files because of
their signatures, not because of this server. Listings live in SQLite (a folder's `registry.db`),
searched with FTS5 over names, descriptions and tool definitions.

Publishing needs the namespace's API token and an upload signed by the namespace's key (see repo.py);
uploads over the size limit are refused before they are read.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .keys import StoreKeyError, public_key_from_dict
from .layout import artifact_path, manifest_path, revoked_path
from .manifest import ManifestError, parse_manifest, version_key
from .repo import Repository, TrustError, check_namespace_name

DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY, public_key TEXT NOT NULL, token_sha256 TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS packages (
    name TEXT NOT NULL, version TEXT NOT NULL, namespace TEXT NOT NULL, kind TEXT NOT NULL,
    description TEXT NOT NULL, manifest TEXT NOT NULL, checks TEXT NOT NULL, published_at REAL NOT NULL,
    installs INTEGER NOT NULL DEFAULT 0, revoked TEXT, PRIMARY KEY (name, version));
CREATE VIRTUAL TABLE IF NOT EXISTS listing USING fts5(name, description, tools, package UNINDEXED, version UNINDEXED,
    tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS latest (name TEXT PRIMARY KEY, version TEXT NOT NULL, listing_rowid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS by_installs ON packages (installs DESC, name);
"""


COLUMNS = "p.name, p.version, p.kind, p.description, p.manifest, p.checks, p.installs"


def permission_filters(hosts: str, secret_names: str, filesystem: str) -> dict[str, str]:
    """What a search can ask of a package's declared permissions, as SQL conditions over three expressions
    in one database's dialect: how many network hosts, how many secrets, the filesystem kind."""
    return {
        "none": f"{hosts} = 0 AND {secret_names} = 0 AND {filesystem} = 'none'",
        "network": f"{hosts} > 0", "no-network": f"{hosts} = 0",
        "secrets": f"{secret_names} > 0", "no-secrets": f"{secret_names} = 0",
        "filesystem": f"{filesystem} != 'none'", "no-filesystem": f"{filesystem} = 'none'",
    }


PERMISSION_FILTERS = permission_filters("json_array_length(p.manifest, '$.permissions.network')",
                                        "json_array_length(p.manifest, '$.permissions.secrets')",
                                        "json_extract(p.manifest, '$.permissions.filesystem')")


class AlreadyPublished(TrustError):
    """This version of the package is in the index already (published through this or another replica)."""

    def __init__(self, name: str, version: str):
        super().__init__(f"{name} {version} is already published; versions are immutable, so publish a new version")


class NamespaceClaim(BaseModel):
    namespace: str
    public_key: dict[str, Any]


class Revocation(BaseModel):
    name: str
    version: str
    reason: str = Field(min_length=1, max_length=500)


class Listings:
    """The registry's database: namespaces, package versions, and the search index of latest versions.
    SQLite (a file); pg_listings.PostgresListings is the same over PostgreSQL, for several replicas."""

    permission_filters = PERMISSION_FILTERS

    def __init__(self, path: Path, *, semantic: bool = True, embedder: Any = None):
        from .semantic import SemanticIndex

        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        # Relevance as bm25 with a name hit worth most, then the description, then the tools' text.
        self.db.execute("INSERT INTO listing (listing, rank) VALUES ('rank', 'bm25(10.0, 3.0, 1.0, 0.0, 0.0)')")
        self.lock = threading.Lock()
        self.semantic = SemanticIndex(self.db, embedder) if semantic else None

    def namespace(self, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT public_key, token_sha256 FROM namespaces WHERE name = ?", (name,)).fetchone()
        return None if row is None else {"public_key": json.loads(row[0]), "token_sha256": row[1]}

    def add_namespace(self, name: str, public_key: dict[str, Any]) -> str:
        token = "pds_" + secrets.token_urlsafe(32)
        with self.lock:
            try:
                self.db.execute("INSERT INTO namespaces VALUES (?, ?, ?, ?)",
                                (name, json.dumps(public_key), _sha256(token), time.time()))
            except sqlite3.IntegrityError:
                raise TrustError(f"namespace {name!r} is already taken") from None
        return token

    def namespace_of_token(self, token: str) -> str | None:
        row = self.db.execute("SELECT name FROM namespaces WHERE token_sha256 = ?", (_sha256(token),)).fetchone()
        return None if row is None else row[0]

    def has_version(self, name: str, version: str) -> bool:
        return self.db.execute("SELECT 1 FROM packages WHERE name = ? AND version = ?", (name, version)).fetchone() \
            is not None

    def add_version(self, manifest, checks: dict[str, Any]) -> None:
        """Record a version; the search index keeps one row per package, its highest version. Its
        listing is embedded here, once, for semantic search."""
        vector = self.semantic.vector(manifest) if self.semantic else None
        with self.lock:
            self.db.execute("BEGIN")
            try:
                try:
                    self.db.execute("INSERT INTO packages VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, NULL)",
                                    (manifest.name, manifest.version, manifest.namespace, manifest.kind,
                                     manifest.description, manifest.to_bytes().decode(), json.dumps(checks),
                                     time.time()))
                except sqlite3.IntegrityError:
                    raise AlreadyPublished(manifest.name, manifest.version) from None
                self._relist(manifest.name)
                if self.semantic:
                    self.semantic.store(manifest.name, manifest.version, vector)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def revoke(self, name: str, version: str, reason: str) -> None:
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self.db.execute("UPDATE packages SET revoked = ? WHERE name = ? AND version = ?", (reason, name, version))
                self._relist(name)
                if self.semantic:
                    self.semantic.generation += 1
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def count_install(self, name: str, version: str) -> bool:
        with self.lock:
            return self.db.execute("UPDATE packages SET installs = installs + 1 WHERE name = ? AND version = ?",
                                   (name, version)).rowcount == 1

    def revoked(self, name: str, version: str) -> str | None:
        row = self.db.execute("SELECT revoked FROM packages WHERE name = ? AND version = ?", (name, version)).fetchone()
        return None if row is None else row[0]

    def _relist(self, name: str) -> None:
        """The search index's row for a package: its highest version that is not revoked, if any."""
        from .manifest import parse_manifest

        row = self.db.execute("SELECT listing_rowid FROM latest WHERE name = ?", (name,)).fetchone()
        if row is not None:
            self.db.execute("DELETE FROM listing WHERE rowid = ?", (row[0],))
            self.db.execute("DELETE FROM latest WHERE name = ?", (name,))
        rows = self.db.execute("SELECT version, manifest FROM packages WHERE name = ? AND revoked IS NULL",
                               (name,)).fetchall()
        if not rows:
            return
        version, text = max(rows, key=lambda r: version_key(r[0]))
        manifest = parse_manifest(text)
        tools = " ".join(f"{t.name.replace('_', ' ')} {t.description}" for t in manifest.tools)
        cursor = self.db.execute("INSERT INTO listing (name, description, tools, package, version) "
                                 "VALUES (?, ?, ?, ?, ?)",
                                 (name.replace("/", " ").replace("-", " "), manifest.description, tools, name, version))
        self.db.execute("INSERT INTO latest VALUES (?, ?, ?)", (name, version, cursor.lastrowid))

    def search(self, query: str, **options: Any) -> list[dict[str, Any]]:
        return self.find(query, **options)["results"]

    def find(self, query: str, *, kind: str | None = None, namespace: str | None = None,
             permission: str | None = None, limit: int = 20, semantic: bool = True) -> dict[str, Any]:
        """{"results", "semantic"(, "note")}: latest versions for `query`, best first, then most installed.

        Keyword: every word of the query (any word's prefix) over names, descriptions and tools.
        Semantic (unless off): listings whose embedding is near the query's. The two rankings are fused;
        with no query, every package by installs. `permission`: one of PERMISSION_FILTERS."""
        words = [w for w in "".join(c if c.isalnum() else " " for c in query.lower()).split() if w]
        limit = max(1, min(limit, 100))
        where, params = [], []
        for column, value in (("p.kind", kind), ("p.namespace", namespace)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if permission:
            if permission not in self.permission_filters:
                raise ValueError(f"permission filter {permission!r} is not one of {', '.join(self.permission_filters)}")
            where.append(self.permission_filters[permission])
        index = self.semantic if semantic else None
        if words and index is not None and index.embedder is not None:
            return {"results": self._hybrid(query, words, where, params, limit, index), "semantic": True}
        answer: dict[str, Any] = {"results": self._keyword(words, where, params, limit), "semantic": False}
        if words and index is not None and index.problem:
            answer["note"] = index.problem
        return answer

    def _hybrid(self, query: str, words: list[str], where: list[str], params: list, limit: int,
                index) -> list[dict[str, Any]]:
        from .semantic import CANDIDATES, fuse

        keyword = self._keyword(words, where, params, CANDIDATES, columns="p.name")
        near = index.rank(query)
        names = list(dict.fromkeys([*keyword, *(n for n, _ in near)]))
        if not names:
            return []
        filters = "".join(f" AND {w}" for w in where)
        scores = fuse(keyword, near)
        # Order the candidates that pass the filters by name and installs only; read whole rows for the winners.
        passing = self.db.execute(
            f"SELECT p.name, p.installs FROM packages p JOIN latest l ON l.name = p.name AND l.version = p.version "
            f"WHERE p.name IN ({','.join('?' * len(names))}){filters}", [*names, *params]).fetchall()
        best = [name for name, _ in sorted(passing, key=lambda r: (-scores[r[0]], -r[1], r[0]))[:limit]]
        if not best:
            return []
        rows = {row[0]: row for row in self.db.execute(
            f"SELECT {COLUMNS} FROM packages p JOIN latest l ON l.name = p.name AND l.version = p.version "
            f"WHERE p.name IN ({','.join('?' * len(best))})", best)}
        similarity, keyworded = dict(near), set(keyword)
        found = []
        for name in best:
            listing = _listing(rows[name])
            listing["relevance"] = {"score": round(scores[name], 5), "keyword": name in keyworded,
                                    "similarity": round(similarity[name], 3) if name in similarity else None}
            found.append(listing)
        return found

    def _keyword(self, words: list[str], where: list[str], params: list, limit: int,
                 columns: str = COLUMNS) -> list[Any]:
        """Listings matching every word, best first (or, with columns="p.name", their names)."""
        filters = "".join(f" AND {w}" for w in where)
        if words and not where:
            # The full-text index ranks and cuts first (FTS5's own order), then each hit's row is looked up.
            sql = (f"SELECT {columns} FROM (SELECT package, version, rank FROM listing WHERE listing MATCH ? "
                   "ORDER BY rank LIMIT ?) hit JOIN packages p ON p.name = hit.package AND p.version = hit.version "
                   "ORDER BY hit.rank, p.installs DESC, p.name")
            params = [" ".join(f'"{w}"*' for w in words), limit]
        elif words:
            sql = (f"SELECT {columns} FROM listing JOIN packages p ON p.name = listing.package AND "
                   f"p.version = listing.version WHERE listing MATCH ?{filters} ORDER BY listing.rank, "
                   "p.installs DESC, p.name LIMIT ?")
            params = [" ".join(f'"{w}"*' for w in words), *params, limit]
        else:
            sql = (f"SELECT {columns} FROM packages p INDEXED BY by_installs JOIN latest l ON l.name = p.name "
                   f"AND l.version = p.version WHERE 1{filters} ORDER BY p.installs DESC, p.name LIMIT ?")
            params = [*params, limit]
        rows = self.db.execute(sql, params).fetchall()
        return [row[0] for row in rows] if columns == "p.name" else [_listing(row) for row in rows]

    def manifest(self, name: str, version: str) -> str:
        row = self.db.execute("SELECT manifest FROM packages WHERE name = ? AND version = ?", (name, version)).fetchone()
        return row[0]

    def versions(self, name: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT name, version, kind, description, manifest, checks, installs, revoked "
                               "FROM packages WHERE name = ?", (name,)).fetchall()
        return sorted((_listing(r) for r in rows), key=lambda r: version_key(r["version"]), reverse=True)


def _listing(row) -> dict[str, Any]:
    manifest = json.loads(row[4])
    return {"name": row[0], "version": row[1], "kind": row[2], "description": row[3],
            "tools": [{"name": t["name"], "description": t.get("description", ""), "effect": t.get("effect", "read")}
                      for t in manifest["tools"]],
            "permissions": manifest.get("permissions", {}), "checks": json.loads(row[5]), "installs": row[6],
            "revoked": row[7] if len(row) > 7 else None}


def _sandbox_failure(result: dict[str, Any]) -> str:
    tools = result.get("tools") or {}
    return result["detail"] + "".join(f"; {what}: {', '.join(names)}" for what, names in tools.items())


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def publish_checks(manifest) -> dict[str, Any]:
    """The registry's own checks, shown on the listing; a high scanner finding refuses the upload (R13)."""
    from ..plugins.scan import ToolText, blocking, scan_tools

    findings = scan_tools(ToolText.of(t.name, t.description, t.parameters) for t in manifest.tools)
    return {"schema": "ok", "scanner": [str(f) for f in findings], "blocking": [str(f) for f in blocking(findings)]}


class RateLimit:
    """At most `per_minute` writes (POST) per client address in any sliding minute."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.seen: dict[str, list[float]] = {}

    def retry_after(self, client: str, now: float) -> float:
        """0 when the write may go ahead (and it is counted), else seconds until it may."""
        recent = [t for t in self.seen.get(client, []) if now - t < 60]
        if len(recent) >= self.per_minute:
            self.seen[client] = recent
            return 60 - (now - recent[0])
        recent.append(now)
        self.seen[client] = recent
        if len(self.seen) > 10_000:  # forget quiet clients, so the table stays small
            self.seen = {c: ts for c, ts in self.seen.items() if ts and now - ts[-1] < 60}
        return 0.0


def create_app(folder: Path, *, max_upload: int = DEFAULT_MAX_UPLOAD, admin_token: str | None = None,
               renew_every: float = 600.0, writes_per_minute: int = 60, run_packages: bool = True,
               semantic: bool = True, embedder: Any = None, db: str | None = None):
    """The registry app over `folder` (created if empty). Its index is the folder's registry.db (SQLite), or
    with `db` a postgresql:// URL, that PostgreSQL database: replicas sharing it and the folder (the TUF
    files) serve one registry. With `admin_token`, claiming a namespace needs
    it; without, namespaces are first come, first served (as on PyPI). With `run_packages` (default), a
    package is installed and its tools called once in the sandbox at publish (verify.py); one whose
    tools do not load as its manifest says is refused."""
    from contextlib import asynccontextmanager

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    repo = Repository.open_or_create(folder)
    if db:
        from .pg_listings import open_listings

        listings = open_listings(db, semantic=semantic, embedder=embedder)
    else:
        listings = Listings(folder / "registry.db", semantic=semantic, embedder=embedder)

    @asynccontextmanager
    async def lifespan(app):
        async def renew():
            while True:
                await asyncio.sleep(renew_every)
                await asyncio.to_thread(repo.renew_if_due)

        task = asyncio.create_task(renew())
        yield
        task.cancel()

    app = FastAPI(title="plugdeck store", version="1", lifespan=lifespan,
                  description="A plugdeck plugin registry: search, publish, and TUF-signed packages.")
    app.state.repo, app.state.listings = repo, listings

    limit = RateLimit(writes_per_minute)

    @app.middleware("http")
    async def upload_limit(request: Request, call_next):
        if request.method == "POST":
            wait = limit.retry_after(request.client.host if request.client else "?", time.monotonic())
            if wait:
                return JSONResponse({"detail": f"too many writes from this address; try again in {wait:.0f} s"},
                                    status_code=429, headers={"Retry-After": str(max(1, round(wait)))})
        # Refused before a byte of the body is read: a declared size over the limit, or no size at all.
        if request.method == "POST" and request.url.path == "/api/v1/packages":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return JSONResponse({"detail": "an upload needs a Content-Length"}, status_code=411)
            if int(length) > max_upload:
                return JSONResponse({"detail": f"the upload is {int(length)} bytes; this store takes at most "
                                               f"{max_upload}"}, status_code=413)
        return await call_next(request)

    def publisher(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        namespace = listings.namespace_of_token(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") \
            else None
        if namespace is None:
            raise HTTPException(401, "a valid namespace API token is needed (Authorization: Bearer ...)")
        return namespace

    @app.post("/api/v1/namespaces", status_code=201)
    def claim_namespace(claim: NamespaceClaim, request: Request) -> dict[str, Any]:
        """Claim a namespace for a publisher's Ed25519 key; the API token is returned once."""
        if admin_token is not None and request.headers.get("authorization") != f"Bearer {admin_token}":
            raise HTTPException(403, "this store registers namespaces only with its admin token")
        try:
            check_namespace_name(claim.namespace)
            key = public_key_from_dict(claim.public_key)
            token = listings.add_namespace(claim.namespace, key.to_dict() | {"keyid": key.keyid})
        except (TrustError, StoreKeyError) as exc:
            raise HTTPException(409 if "taken" in str(exc) else 422, str(exc)) from None
        return {"namespace": claim.namespace, "token": token}

    @app.get("/api/v1/namespaces/{namespace}/metadata")
    def namespace_metadata(namespace: str) -> Response:
        """The namespace's current signed metadata (what its publisher signs the next version on top of)."""
        md = repo.role(namespace) if listings.namespace(namespace) else None
        if md is None:
            raise HTTPException(404, f"namespace {namespace!r} has published nothing yet")
        from tuf.api.serialization.json import JSONSerializer

        return Response(md.to_bytes(JSONSerializer(compact=True)), media_type="application/json")

    @app.post("/api/v1/packages", status_code=201)
    async def publish(request: Request) -> dict[str, Any]:
        """Publish a version: multipart fields manifest, artifact and metadata (the namespace's next
        metadata, signed by its key)."""
        namespace = publisher(request)
        form = await request.form(max_files=3, max_fields=3)
        parts = {}
        for field in ("manifest", "artifact", "metadata"):
            item = form.get(field)
            if item is None or isinstance(item, str):
                raise HTTPException(422, f"the upload needs a file field {field!r}")
            parts[field] = await item.read()
        try:
            manifest = parse_manifest(parts["manifest"])
        except ManifestError as exc:
            raise HTTPException(422, str(exc)) from None
        if manifest.namespace != namespace:
            raise HTTPException(403, f"this token publishes in namespace {namespace!r}, not {manifest.namespace!r}")
        if listings.has_version(manifest.name, manifest.version):
            raise HTTPException(409, f"{manifest.name} {manifest.version} is already published; versions are "
                                     "immutable, so publish a new version")
        artifact = parts["artifact"]
        if hashlib.sha256(artifact).hexdigest() != manifest.artifact.sha256 or len(artifact) != manifest.artifact.length:
            raise HTTPException(422, "the artifact does not match the sha256 and length in its manifest")
        checks = publish_checks(manifest)
        if checks["blocking"]:
            raise HTTPException(422, "the metadata scanner found what reads like hidden instructions to the model "
                                     "in the tool definitions:\n" + "\n".join(checks["blocking"]))
        if run_packages:
            from .verify import verify_package

            checks["sandbox"] = await asyncio.to_thread(verify_package, manifest, artifact)
            if checks["sandbox"]["status"] == "failed":
                raise HTTPException(422, f"{manifest.name} {manifest.version} failed the registry's run of it: "
                                         f"{_sandbox_failure(checks['sandbox'])}")
        else:
            checks["sandbox"] = {"status": "skipped", "detail": "this registry does not run packages at publish"}
        files = {manifest_path(manifest.name, manifest.version): parts["manifest"],
                 artifact_path(manifest.name, manifest.version, manifest.artifact.file): artifact}
        try:
            version = await asyncio.to_thread(repo.accept, namespace, listings.namespace(namespace)["public_key"],
                                              parts["metadata"], files)
        except TrustError as exc:
            raise HTTPException(422, str(exc)) from None
        try:  # embedding its listing takes a moment
            await asyncio.to_thread(listings.add_version, manifest, checks)
        except AlreadyPublished as exc:  # another replica (or request) recorded it first
            raise HTTPException(409, str(exc)) from None
        return {"name": manifest.name, "version": manifest.version, "namespace_metadata_version": version,
                "checks": checks}

    @app.get("/api/v1/search")
    def search(q: str = "", kind: str | None = None, namespace: str | None = None, permission: str | None = None,
               limit: int = 20, semantic: bool = True) -> dict[str, Any]:
        """Packages (their latest versions) for q: keyword matches over names, descriptions and tools fused
        with semantic ones (`semantic` in the answer says whether that half ran; `note` says why not),
        ranked by relevance, then installs. permission: none, network, no-network, secrets, no-secrets,
        filesystem, no-filesystem."""
        try:
            return listings.find(q, kind=kind, namespace=namespace, permission=permission, limit=limit,
                                 semantic=semantic)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/api/v1/packages/{namespace}/{package}")
    def package(namespace: str, package: str) -> dict[str, Any]:
        """A package's versions, newest first, with tools, permissions and publish-time checks."""
        versions = listings.versions(f"{namespace}/{package}")
        if not versions:
            raise HTTPException(404, f"no package {namespace}/{package}")
        live = [v["version"] for v in versions if not v["revoked"]]
        return {"name": f"{namespace}/{package}", "latest": live[0] if live else None, "versions": versions}

    @app.get("/api/v1/packages/{namespace}/{package}/{version}/server.json")
    def server_json(namespace: str, package: str, version: str) -> dict[str, Any]:
        """An mcp package's version as the official MCP registry's server.json."""
        from .mcp_package import write_server_json

        found = [v for v in listings.versions(f"{namespace}/{package}") if v["version"] == version]
        if not found:
            raise HTTPException(404, f"no version {version} of {namespace}/{package}")
        manifest = parse_manifest(listings.manifest(f"{namespace}/{package}", version))
        if manifest.kind != "mcp":
            raise HTTPException(404, f"{namespace}/{package} is a {manifest.kind} package, not an MCP server")
        return write_server_json(manifest)

    @app.post("/api/v1/packages/{namespace}/{package}/{version}/installs", status_code=204)
    def count_install(namespace: str, package: str, version: str) -> Response:
        """A client says it installed this version (the install count that breaks ties in search). Anyone
        can send it: it orders results, it is never a sign of trust."""
        if not listings.count_install(f"{namespace}/{package}", version):
            raise HTTPException(404, f"no version {version} of {namespace}/{package}")
        return Response(status_code=204)

    @app.post("/api/v1/revocations", status_code=201)
    async def revoke(request: Request) -> dict[str, Any]:
        """A publisher revokes one of its versions: multipart fields revocation (JSON: name, version,
        reason) and metadata (the namespace's next metadata, listing the revocation, signed by its key)."""
        namespace = publisher(request)
        form = await request.form(max_files=2, max_fields=2)
        parts = {}
        for field in ("revocation", "metadata"):
            item = form.get(field)
            if item is None or isinstance(item, str):
                raise HTTPException(422, f"the request needs a file field {field!r}")
            parts[field] = await item.read()
        try:
            revocation = Revocation.model_validate_json(parts["revocation"])
        except ValueError as exc:
            raise HTTPException(422, f"the revocation is not valid: {exc}") from None
        if revocation.name.partition("/")[0] != namespace:
            raise HTTPException(403, f"this token revokes in namespace {namespace!r} only")
        files = {revoked_path(revocation.name, revocation.version): parts["revocation"]}
        _revocable(revocation)
        try:
            await asyncio.to_thread(repo.accept, namespace, listings.namespace(namespace)["public_key"],
                                    parts["metadata"], files)
        except TrustError as exc:
            raise HTTPException(422, str(exc)) from None
        listings.revoke(revocation.name, revocation.version, f"by its publisher: {revocation.reason}")
        return {"name": revocation.name, "version": revocation.version, "revoked": revocation.reason}

    @app.post("/api/v1/admin/revocations", status_code=201)
    async def revoke_as_admin(revocation: Revocation, request: Request) -> dict[str, Any]:
        """The store's admin revokes a version (signed with the store's online key, in the bin)."""
        if admin_token is None or request.headers.get("authorization") != f"Bearer {admin_token}":
            raise HTTPException(403, "revoking as the store needs its admin token")
        _revocable(revocation)
        data = revocation.model_dump_json().encode()
        try:
            await asyncio.to_thread(repo.revoke_as_store, revocation.name, revocation.version, data)
        except TrustError as exc:
            raise HTTPException(422, str(exc)) from None
        listings.revoke(revocation.name, revocation.version, f"by the store: {revocation.reason}")
        return {"name": revocation.name, "version": revocation.version, "revoked": revocation.reason}

    def _revocable(revocation) -> None:
        if listings.revoked(revocation.name, revocation.version) is not None:
            raise HTTPException(409, f"{revocation.name} {revocation.version} is already revoked")
        if not listings.has_version(revocation.name, revocation.version):
            raise HTTPException(404, f"no version {revocation.version} of {revocation.name}")

    from fastapi.responses import HTMLResponse

    from .web import CSP, index_page, package_page

    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status, headers={"Content-Security-Policy": CSP,
                                                               "X-Content-Type-Options": "nosniff"})

    @app.get("/", include_in_schema=False)
    def home(q: str = "") -> HTMLResponse:
        return html(index_page(q, listings.search(q, limit=50)))

    @app.get("/packages/{namespace}/{package}", include_in_schema=False)
    def package_html(namespace: str, package: str, request: Request) -> HTMLResponse:
        versions = listings.versions(f"{namespace}/{package}")
        if not versions:
            return html(index_page("", []).replace("No packages found.", f"No package {namespace}/{package}."), 404)
        live = [v["version"] for v in versions if not v["revoked"]]
        data = {"name": f"{namespace}/{package}", "latest": live[0] if live else versions[0]["version"],
                "versions": versions}
        return html(package_page(data, str(request.base_url).rstrip("/")))

    app.mount("/tuf/metadata", StaticFiles(directory=repo.metadata_dir), name="metadata")
    app.mount("/tuf/targets", StaticFiles(directory=repo.targets_dir), name="targets")
    return app

