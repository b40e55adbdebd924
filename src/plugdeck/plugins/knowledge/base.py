"""KnowledgeBase: a named collection of documents, searchable by keywords and meaning.

One knowledge base is one folder, `PLUGDECK_HOME/kb/NAME`, holding its store: a SQLite file, or
for a base shared through PostgreSQL, `store.json` saying where it lives (no password). Adding is
incremental: a file whose bytes (and the chunking settings) are unchanged is skipped, a changed
file is re-chunked (vectors of unchanged chunks are reused), and a file that disappeared from an
added folder is removed. The embedding model is recorded; any other model is refused.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ...errors import UserError
from .chunking import chunk_document
from .embeddings import Embedder
from .ingest import Candidate, scan
from .limits import OverLimit, check_chunks, check_file_size
from .readers import SUPPORTED, ReadError, read_document
from .search import Passage, hybrid_search
from .settings import KnowledgeSettings, default_home, load_settings
from .store import DEFAULT_ANN_THRESHOLD, ChunkRecord, DocumentRecord, Filters, SQLiteStore, Store

if TYPE_CHECKING:
    from .pgstore import PostgresLocation

STORE_FILE = "store.json"  # in the folder of a base kept elsewhere (PostgreSQL): where it lives
READERS_VERSION = 1  # bump when a reader extracts text differently: files are then re-read
EMBED_BATCH = 64
PENDING_TEXTS = 16 * EMBED_BATCH  # texts gathered (and sorted by length) before they are embedded and written
LOADING = "loading the embedding model"  # Progress.current while the model loads
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class KnowledgeError(UserError):
    """Something a person can fix: a missing knowledge base, another embedding model, nothing to add."""


def knowledge_home(home: Path | None = None) -> Path:
    return Path(home or default_home()) / "kb"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise KnowledgeError(f"{name!r} is not a valid knowledge base name: use lowercase letters, digits, '-' "
                             "and '_' (at most 64), starting with a letter or digit")
    return name


def name_for(path: str) -> str:
    """A knowledge base name from a folder, file or glob: './Handbook 2024' -> 'handbook-2024'."""
    import os

    text = os.path.abspath(os.path.expanduser(path))
    while any(ch in text for ch in "*?["):
        text = os.path.dirname(text)
    base = Path(text)
    stem = base.name if base.is_dir() or not base.suffix else base.stem
    return re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:64]


def document_types(types: str | Iterable[str] | None) -> tuple[str, ...]:
    """'md', 'pdf,.docx' or ['md', 'csv'] as known type names; an unknown one is an error."""
    items = [types] if isinstance(types, str) else list(types or ())
    wanted = tuple(t.strip().lower().lstrip(".") for item in items for t in item.split(",") if t.strip())
    known = sorted(set(SUPPORTED.values()))
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise KnowledgeError(f"unknown document type {', '.join(unknown)} (known: {' '.join(known)})")
    return wanted


def names(home: Path | None = None) -> list[str]:
    root = knowledge_home(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if ((p / SQLiteStore.FILE).exists() or (p / STORE_FILE).exists()) and not p.name.startswith("."))


@dataclass
class FileOutcome:
    source: str
    path: str
    # new | changed | unchanged | removed | failed (with the reason) | skipped (over a cap in
    # [knowledge.limits], with the reason) | missing (an input that matched nothing) | unsupported (a
    # file of another type found in an added folder)
    status: str
    chunks: int = 0
    reason: str = ""


@dataclass
class AddReport:
    knowledge_base: str
    files: list[FileOutcome] = field(default_factory=list)
    chunks: int = 0  # chunks written
    embedded: int = 0  # texts embedded (chunks whose text was new)
    reused: int = 0  # chunks whose vector was kept from before
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def problems(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status in ("failed", "skipped", "missing")]

    def to_dict(self) -> dict[str, Any]:
        statuses = ("new", "changed", "unchanged", "removed", "failed", "skipped", "unsupported", "missing")
        return {
            "knowledge_base": self.knowledge_base,
            "counts": {s: self.count(s) for s in statuses},
            "chunks": self.chunks, "embedded": self.embedded, "reused": self.reused,
            "seconds": round(self.seconds, 3), "embed_seconds": round(self.embed_seconds, 3),
            "files": [asdict(f) for f in self.files],
        }


@dataclass
class Progress:
    """How far an add has come, for progress bars."""

    files_total: int
    files_done: int = 0
    chunks: int = 0  # chunks written to the store
    to_embed: int = 0  # chunks whose text is new, so far: each is embedded before it is written
    embedded: int = 0  # of those, embedded already
    embed_seconds: float = 0.0
    current: str = ""

    @property
    def embedding(self) -> bool:
        return self.embedded < self.to_embed


@dataclass
class _Pending:
    record: DocumentRecord
    chunks: list[ChunkRecord]
    texts: list[str]  # what is embedded, one per chunk
    vectors: dict[int, Any]  # position -> vector (reused ones first, new ones once embedded)
    outcome: FileOutcome
    reused: int = 0


class KnowledgeBase:
    def __init__(self, name: str, folder: Path, *, embedder: Embedder | None = None,
                 settings: KnowledgeSettings | None = None, ann_threshold: int = DEFAULT_ANN_THRESHOLD,
                 location: PostgresLocation | None = None):
        self.name = check_name(name)
        self.folder = Path(folder)
        self.settings = settings or load_settings()
        self._embedder = embedder
        self.ann_threshold = ann_threshold
        self.location = self._where(location)  # None: the SQLite file in the folder
        self._store: Store | None = None

    @classmethod
    def open(cls, name: str, home: Path | None = None, *, embedder: Embedder | None = None,
             settings: KnowledgeSettings | None = None, must_exist: bool = False,
             ann_threshold: int = DEFAULT_ANN_THRESHOLD, store: str | None = None,
             password_env: str | None = None) -> KnowledgeBase:
        """The knowledge base NAME under PLUGDECK_HOME/kb. Its folder is created by the first `add`.

        `store` is where a new base is kept: a PostgreSQL URL (postgresql://user@host/db) shares it
        with every machine that can reach the database; the password is read from the environment
        variable named `password_env`. Left out, a new base is a SQLite file in its folder."""
        check_name(name)
        location = None
        if store:
            from .pgstore import PostgresLocation

            location = PostgresLocation.for_base(store, name, password_env)
        kb = cls(name, knowledge_home(home) / name, embedder=embedder, settings=settings, ann_threshold=ann_threshold,
                 location=location)
        if must_exist:
            kb._require()
        return kb

    @classmethod
    def attach(cls, name: str, store: str, home: Path | None = None, *, password_env: str | None = None,
               embedder: Embedder | None = None, settings: KnowledgeSettings | None = None) -> KnowledgeBase:
        """Use a knowledge base that another machine created in PostgreSQL, under the name NAME."""
        kb = cls.open(name, home, embedder=embedder, settings=settings, store=store, password_env=password_env)
        if kb.exists:
            raise KnowledgeError(f"knowledge base {name!r} is already attached, from {kb.location.describe()}")
        if not kb.location.exists():
            there = kb.location.names()
            listing = f"it has: {', '.join(there)}" if there else "it has none"
            raise KnowledgeError(f"there is no knowledge base named {name!r} in {store} ({listing}). "
                                 f"Create it with: plugdeck kb add PATH --name {name} --store {store}")
        try:
            kb._open_store(create=False)
            kb._check_embedder(kb.store.get_meta())
        except BaseException:
            kb.close()
            shutil.rmtree(kb.folder, ignore_errors=True)
            raise
        return kb

    def _where(self, asked: PostgresLocation | None) -> PostgresLocation | None:
        """Where this base's store is: as recorded in its folder, else as asked for a new base."""
        pointer = self.folder / STORE_FILE
        if pointer.exists():
            import json

            from .pgstore import PostgresLocation

            recorded = PostgresLocation.from_dict(json.loads(pointer.read_text(encoding="utf-8")))
            if asked and (asked.url, asked.schema) != (recorded.url, recorded.schema):
                raise KnowledgeError(f"knowledge base {self.name!r} is kept in {recorded.describe()}, not in "
                                     f"{asked.url}; pick another name for a new one")
            return asked or recorded
        if asked and (self.folder / SQLiteStore.FILE).exists():
            raise KnowledgeError(f"knowledge base {self.name!r} is kept on this machine, not in {asked.url}; "
                                 "pick another name for a shared one")
        return asked

    # ---- state -------------------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return (self.folder / (STORE_FILE if self.location else SQLiteStore.FILE)).exists()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self.settings.embedder()
        return self._embedder

    @property
    def store(self) -> Store:
        if self._store is None:
            self._open_store(create=not self.exists)
        return self._store

    def _open_store(self, create: bool) -> None:
        if self.location is None:
            self._store = SQLiteStore(self.folder, ann_threshold=self.ann_threshold)
            return
        import json

        self._store = self.location.open(create=create)
        pointer = self.folder / STORE_FILE
        if not pointer.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            pointer.write_text(json.dumps(self.location.to_dict(), indent=2), encoding="utf-8")

    def _require(self) -> Store:
        if not self.exists:
            known = names(self.folder.parent.parent)
            listing = f"known: {', '.join(known)}" if known else "there are none yet"
            raise KnowledgeError(f"no knowledge base named {self.name!r} ({listing}). "
                                 f"Create it with: plugdeck kb add PATH --name {self.name}")
        return self.store

    def info(self) -> dict[str, Any]:
        store = self._require()
        meta = store.get_meta()
        documents = store.documents()
        types: dict[str, int] = {}
        for d in documents:
            types[d.type] = types.get(d.type, 0) + 1
        where = self.location.to_dict() if self.location else {"backend": "sqlite",
                                                               "file": str(self.folder / SQLiteStore.FILE)}
        return {
            "name": self.name, "folder": str(self.folder), "store": where, "documents": len(documents),
            "chunks": sum(d.chunks for d in documents), "types": types,
            "embedder": meta.get("embedder"), "chunking": meta.get("chunking"), "roots": meta.get("roots", []),
            "created_at": meta.get("created_at"), "updated_at": meta.get("updated_at"),
            "size_bytes": store.size_bytes(),
        }

    def documents(self) -> list[DocumentRecord]:
        return self._require().documents()

    def _check_embedder(self, meta: dict[str, Any]) -> None:
        recorded = (meta.get("embedder") or {}).get("id")
        if recorded and recorded != self.embedder.id:
            raise KnowledgeError(
                f"knowledge base {self.name!r} was built with the embedding model {recorded}, but this session "
                f"uses {self.embedder.id}; vectors of different models cannot be compared. Use {recorded} again "
                f"(see [knowledge.embeddings] in plugdeck.toml), or re-embed the documents with the new model: "
                f"plugdeck kb rebuild {self.name}")

    def _check_dimension(self, dimension: int) -> None:
        meta = self.store.get_meta()
        recorded = (meta.get("embedder") or {}).get("dimension")
        if recorded is None:
            self.store.set_meta(embedder={**meta["embedder"], "dimension": dimension})
        elif recorded != dimension:
            raise KnowledgeError(
                f"the embedding model {self.embedder.id} now returns {dimension}-dimensional vectors, but "
                f"knowledge base {self.name!r} holds {recorded}-dimensional ones: it is not the same model any more. "
                f"Re-embed with: plugdeck kb rebuild {self.name}")

    # ---- search ------------------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, *, source: str | None = None, type: str | Iterable[str] | None = None,
               highlights: bool = False) -> list[Passage]:
        """The k passages that best match the query, best first."""
        store = self._require()
        self._check_embedder(store.get_meta())
        if not query.strip():
            raise KnowledgeError("the search query is empty")
        types = document_types(type)
        query_vector = self.embedder.embed([query])[0]
        self._check_dimension(len(query_vector))
        return hybrid_search(store, self.embedder, query, k, Filters(source=source, types=types),
                             query_vector=query_vector, knowledge_base=self.name, highlights=highlights)

    # ---- ingest ------------------------------------------------------------------------------------

    def add(self, paths: str | Path | Iterable[str | Path], progress: Callable[[Progress], None] | None = None) -> AddReport:
        """Add files, folders (recursively) and globs; re-adding processes only what changed."""
        started = time.perf_counter()
        inputs = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not inputs:
            raise KnowledgeError("nothing to add: give files, folders or glob patterns")
        found = scan(inputs)
        known = {d.path for d in self.store.documents()} if self.exists else set()
        # A missing input that names a document of this base means "it was deleted"; otherwise a typo.
        gone = [raw for raw, path in zip(found.missing, found.missing_roots) if path not in known]
        if gone and len(gone) == len(inputs):
            raise KnowledgeError(f"nothing found at {', '.join(gone)}: no such file or folder, and no file matches")
        created = not self.exists
        store = self.store
        meta = store.get_meta()
        self._check_embedder(meta)
        if "embedder" not in meta:
            store.set_meta(name=self.name, created_at=time.time(), embedder=self.embedder.describe(),
                           chunking={"size": self.settings.chunk_size, "overlap": self.settings.chunk_overlap},
                           roots=[])
        report = AddReport(self.name)
        state = Progress(files_total=len(found.files))
        report.files += [FileOutcome(c.source, str(c.path), "failed", reason=reason)
                         for c, reason in found.explicit_unsupported]
        report.files += [FileOutcome(c.source, str(c.path), "unsupported", reason=f"unsupported file type "
                                     f"{c.path.suffix or '(no extension)'}") for c in found.unsupported]
        report.files += [FileOutcome(m, m, "missing", reason="no such file or folder, and no file matches")
                         for m in gone]
        pipeline = f"readers={READERS_VERSION};chunk={self.settings.chunk_size}/{self.settings.chunk_overlap}"
        pending: list[_Pending] = []
        for candidate in found.files:
            state.current = candidate.source
            item = self._prepare(candidate, pipeline, report)
            if item is not None:
                pending.append(item)
            if sum(len(p.texts) - len(p.vectors) for p in pending) >= PENDING_TEXTS:
                self._write(pending, report, state, progress)
                pending = []
            state.files_done += 1
            if progress:
                progress(state)
        self._write(pending, report, state, progress)
        for document in store.documents():
            if found.covers(document.path) and not Path(document.path).exists():
                store.remove_document(document.path)
                report.files.append(FileOutcome(document.source, document.path, "removed", document.chunks,
                                                "the file no longer exists"))
        roots = [r for r in dict.fromkeys([*store.get_meta().get("roots", []), *found.roots])
                 if r not in found.missing_roots]
        store.set_meta(roots=roots, updated_at=time.time())
        store.optimize()
        report.seconds = time.perf_counter() - started
        if created and store.counts()[0] == 0:  # nothing could be added: leave no empty knowledge base behind
            # A shared base that someone else created stays; one this add created goes.
            self._discard(keep_shared=self.location is not None and not store.created)
        return report

    def _discard(self, keep_shared: bool = False) -> None:
        """Remove the folder and, unless told to keep it, a shared base's schema."""
        self.close()
        if self.location and not keep_shared:
            self.location.drop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _prepare(self, candidate: Candidate, pipeline: str, report: AddReport) -> _Pending | None:
        path = str(candidate.path)
        limits = self.settings.limits
        try:
            check_file_size(candidate.path.stat().st_size, limits)  # before its bytes are read to hash them
            data = candidate.path.read_bytes()
        except OverLimit as exc:
            report.files.append(FileOutcome(candidate.source, path, "skipped", reason=str(exc)))
            return None
        except OSError as exc:
            report.files.append(FileOutcome(candidate.source, path, "failed", reason=f"cannot read it: {exc.strerror}"))
            return None
        digest = hashlib.sha256(data).hexdigest()
        before = self.store.document(path)
        if before and before.hash == digest and before.pipeline == pipeline:
            report.files.append(FileOutcome(candidate.source, path, "unchanged", before.chunks))
            return None
        kept = "; the version added before is kept" if before else ""
        try:
            document = read_document(candidate.path, limits)
            chunks = chunk_document(document, self.settings.chunk_size, self.settings.chunk_overlap)
            check_chunks(len(chunks), limits)
        except OverLimit as exc:
            report.files.append(FileOutcome(candidate.source, path, "skipped", reason=f"{exc}{kept}"))
            return None
        except ReadError as exc:
            report.files.append(FileOutcome(candidate.source, path, "failed", reason=f"{exc}{kept}"))
            return None
        except Exception as exc:  # a reader's library choking on a hostile file fails that file, not the add
            reason = f"it could not be read ({type(exc).__name__}: {str(exc)[:200]}){kept}"
            report.files.append(FileOutcome(candidate.source, path, "failed", reason=reason))
            return None
        reusable = self.store.vectors_by_text_hash(path) if before else {}
        records, texts, vectors, seen = [], [], {}, {}
        for ordinal, chunk in enumerate(chunks):
            text = chunk.embedding_text
            text_hash = hashlib.sha256(text.encode()).hexdigest()
            occurrence = seen[text_hash] = seen.get(text_hash, -1) + 1
            chunk_id = hashlib.sha256(f"{path}\0{text_hash}\0{occurrence}".encode()).hexdigest()[:12]
            records.append(ChunkRecord(chunk_id, chunk.text, chunk.title_path, chunk.start, chunk.end, chunk.page,
                                       chunk.line_start, chunk.line_end, text_hash, ordinal))
            texts.append(text)
            if text_hash in reusable:
                vectors[ordinal] = reusable[text_hash]
        record = DocumentRecord(path, candidate.source, document.type, digest, len(data), document.title, pipeline)
        outcome = FileOutcome(candidate.source, path, "changed" if before else "new", len(records))
        return _Pending(record, records, texts, vectors, outcome, reused=len(vectors))

    def _write(self, pending: list[_Pending], report: AddReport, state: Progress,
               progress: Callable[[Progress], None] | None) -> None:
        """Embed what is new in these documents, then store each document with all its chunks."""
        import numpy as np

        wanted = [(item, i) for item in pending for i in range(len(item.texts)) if i not in item.vectors]
        # Similar lengths in a batch: the model pads every text to the batch's longest, and mixed lengths
        # cost about a fifth more embedding time (bench/knowledge_ingest.py).
        wanted.sort(key=lambda entry: len(entry[0].texts[entry[1]]))
        state.to_embed += len(wanted)
        if wanted:
            current, state.current = state.current, LOADING
            if progress:
                progress(state)
            self.embedder.load()  # loading the model is not embedding: keep it out of embeddings/s
            state.current = current
        for start in range(0, len(wanted), EMBED_BATCH):
            batch = wanted[start : start + EMBED_BATCH]
            began = time.perf_counter()
            vectors = self.embedder.embed([item.texts[i] for item, i in batch])
            state.embed_seconds += time.perf_counter() - began
            if start == 0:
                self._check_dimension(vectors.shape[1])
            for (item, i), vector in zip(batch, vectors):
                item.vectors[i] = vector
            state.embedded += len(batch)
            report.embedded += len(batch)
            if progress:
                progress(state)
        report.embed_seconds = state.embed_seconds
        for item in pending:
            matrix = np.stack([item.vectors[i] for i in range(len(item.chunks))]) if item.chunks else np.zeros((0, 0))
            self.store.put_document(item.record, item.chunks, matrix)
            report.files.append(item.outcome)
            report.chunks += len(item.chunks)
            report.reused += item.reused
            state.chunks += len(item.chunks)

    # ---- whole-base operations ----------------------------------------------------------------------

    def rebuild(self, progress: Callable[[Progress], None] | None = None) -> AddReport:
        """Read every added folder, file and glob again into a fresh copy with the current settings and
        embedding model, then swap it in. If that fails, the knowledge base is left as it was."""
        store = self._require()
        meta = store.get_meta()
        roots = meta.get("roots") or []
        if not roots:
            raise KnowledgeError(f"knowledge base {self.name!r} has no recorded folders or files to rebuild from")
        before = store.counts()[0]
        staging = self.folder.with_name(f".{self.name}.rebuild")
        shutil.rmtree(staging, ignore_errors=True)
        fresh = KnowledgeBase(self.name, staging, embedder=self.embedder, settings=self.settings,
                              ann_threshold=self.ann_threshold, location=self.location and self.location.staging())
        try:
            report = fresh.add(roots, progress)
            if fresh.store.counts()[0] == 0 and before:
                raise KnowledgeError(f"rebuild found none of the documents again (looked in: {', '.join(roots)}); "
                                     f"knowledge base {self.name!r} was left as it was")
            fresh.store.set_meta(created_at=meta.get("created_at"))
        except BaseException:
            fresh._discard()
            raise
        fresh.close()
        self.close()
        if fresh.location:  # one transaction in the database swaps the whole base
            fresh.location.replace(self.location)
            shutil.rmtree(staging, ignore_errors=True)
            return report
        retired = self.folder.with_name(f".{self.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        self.folder.rename(retired)
        staging.rename(self.folder)
        shutil.rmtree(retired, ignore_errors=True)
        return report

    def delete(self) -> None:
        """Remove the knowledge base (its index, never the documents themselves). A shared base is
        removed from the database, for every machine."""
        self._require()
        self._discard()

    def detach(self) -> None:
        """Forget a shared knowledge base on this machine; it stays in the database for the others."""
        self._require()
        if not self.location:
            raise KnowledgeError(f"knowledge base {self.name!r} is kept on this machine, not shared: there is "
                                 f"nothing to detach (to delete it: plugdeck kb remove {self.name})")
        self.close()
        shutil.rmtree(self.folder)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f", store={self.location.url!r}" if self.location else ""
        return f"KnowledgeBase({self.name!r}, folder={str(self.folder)!r}{where})"
