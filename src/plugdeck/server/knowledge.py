"""Knowledge bases over HTTP: list them, upload documents into one, search it.

Uploaded files are kept under `PLUGDECK_HOME/uploads/NAME/` (a knowledge base records where its
documents are, and adding again re-reads only what changed), by their base name only. Reading and
embedding run in a thread, one upload per knowledge base at a time. An upload over the file-size cap
of `[knowledge.limits]` is reported as skipped and never read into memory; the files that are kept
pass the same caps as `plugdeck kb add` (decompressed size, characters, chunks).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Protocol

from .errors import ApiError

_locks: dict[str, asyncio.Lock] = {}
_UNSAFE = re.compile(r"[^\w.\- ]+")
READ_BLOCK = 1 << 20


class Upload(Protocol):
    """An uploaded file as the web framework hands it over (starlette's UploadFile)."""

    filename: str | None
    size: int | None

    async def read(self, size: int = -1) -> bytes: ...


def _errors() -> tuple[type[Exception], ...]:
    from ..plugins.knowledge.base import KnowledgeError
    from ..plugins.knowledge.embeddings import EmbeddingError
    from ..plugins.knowledge.settings import SettingsError

    return KnowledgeError, EmbeddingError, SettingsError


def _open(name: str, home: Path, must_exist: bool = True):
    from ..plugins.knowledge.base import KnowledgeBase

    try:
        return KnowledgeBase.open(name, home, must_exist=must_exist)
    except _errors() as exc:
        raise ApiError(404 if must_exist else 400, str(exc), code="knowledge_base") from None


def list_bases(home: Path, allowed=lambda name: True) -> list[dict[str, Any]]:
    from ..plugins.knowledge.base import names

    out = []
    for name in names(home):
        if allowed(name):
            kb = _open(name, home)
            try:
                info = kb.info()
            finally:
                kb.close()
            out.append({k: info[k] for k in ("name", "documents", "chunks", "types", "embedder", "updated_at")})
    return out


def safe_filename(filename: str | None) -> str:
    """The base name of an uploaded file, without anything that could climb out of the folder."""
    base = Path((filename or "").replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base:
        raise ApiError(400, f"the uploaded file name {filename!r} cannot be used; give the file a name",
                       code="bad_filename")
    return base[:200]


async def add_documents(home: Path, name: str, files: list[Upload]) -> dict[str, Any]:
    """Save the files and add them to the knowledge base NAME (created if new)."""
    from ..plugins.knowledge.base import check_name
    from ..plugins.knowledge.limits import OverLimit, check_file_size
    from ..plugins.knowledge.readers import SUPPORTED
    from ..plugins.knowledge.settings import load_settings

    try:
        check_name(name)
        limits = load_settings().limits
    except _errors() as exc:
        raise ApiError(400, str(exc), code="knowledge_base") from None
    if not files:
        raise ApiError(400, "no files were uploaded: send them as multipart form field `files`", code="no_files")
    folder = Path(home) / "uploads" / name
    names = []
    for upload in files:
        safe = safe_filename(upload.filename)
        if Path(safe).suffix.lower() not in SUPPORTED:
            known = " ".join(sorted(SUPPORTED))
            raise ApiError(400, f"{safe}: this file type cannot be read (supported: {known})", code="unsupported_type")
        names.append(safe)
    paths, skipped = [], []
    for safe, upload in zip(names, files):
        try:
            if upload.size is not None:
                check_file_size(upload.size, limits)  # judged before its bytes are read
            data = await _read_capped(upload, limits.max_file_bytes)
            check_file_size(len(data), limits)
        except OverLimit as exc:
            skipped.append({"source": safe, "status": "skipped", "chunks": 0, "reason": str(exc)})
            continue
        paths.append((folder / safe, data))
    async with _locks.setdefault(name, asyncio.Lock()):
        result = await asyncio.to_thread(_write_and_add, home, name, folder, paths) if paths else _nothing(name)
    result["files"] += skipped
    result["counts"]["skipped"] += len(skipped)
    return result


async def _read_capped(upload: Upload, cap: int) -> bytes:
    """The upload's bytes, reading at most one block past the cap."""
    parts, size = [], 0
    while size <= cap:
        block = await upload.read(READ_BLOCK)
        if not block:
            break
        parts.append(block)
        size += len(block)
    return b"".join(parts)


def _nothing(name: str) -> dict[str, Any]:
    from ..plugins.knowledge.base import AddReport

    return AddReport(name).to_dict()


def _write_and_add(home: Path, name: str, folder: Path, paths: list[tuple[Path, bytes]]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in paths:
        path.write_bytes(data)
    kb = _open(name, home, must_exist=False)
    try:
        report = kb.add([str(path) for path, _ in paths])
    except _errors() as exc:
        raise ApiError(400, str(exc), code="knowledge_base") from None
    finally:
        kb.close()
    result = report.to_dict()
    for item in result["files"]:  # the page shows names, not where the server keeps them
        item.pop("path", None)
    return result


def search(home: Path, name: str, query: str, k: int) -> list[dict[str, Any]]:
    kb = _open(name, home)
    try:
        passages = kb.search(query, k)
    except _errors() as exc:
        raise ApiError(400, str(exc), code="knowledge_base") from None
    finally:
        kb.close()
    return [{"label": p.label(), "text": p.text, "similarity": p.similarity} for p in passages]
