"""Knowledge settings: the `[knowledge]` table of the same config files as the rest of plugdeck,
overridden by `PLUGDECK_EMBEDDING_*` variables.

    [knowledge]
    chunk_size = 800                  # characters
    chunk_overlap = 120

    [knowledge.embeddings]            # leave out to use the built-in all-MiniLM-L6-v2 (NumPy, no torch)
    # model = "sentence-transformers:all-mpnet-base-v2"   # a sentence-transformers model (knowledge-torch extra)
    base_url = "http://127.0.0.1:8080/v1"
    model = "nomic-embed-text"
    api_key_env = "EMBEDDINGS_KEY"    # the variable that holds the key; the key is never written here

    [knowledge.limits]                # caps on one file, so a zip bomb is skipped (see limits.py)
    max_file_mb = 100
    max_unpacked_mb = 200
    max_chars = 5000000
    max_chunks = 20000
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ...config import config_tables
from ...errors import UserError
from .chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP
from .embeddings import Embedder, EndpointEmbedder, LocalEmbedder, SentenceTransformerEmbedder
from .limits import ReadLimits


class SettingsError(UserError, ValueError):
    pass


@dataclass(frozen=True)
class KnowledgeSettings:
    chunk_size: int = DEFAULT_MAX_CHARS
    chunk_overlap: int = DEFAULT_OVERLAP
    embedding_base_url: str | None = None
    embedding_model: str | None = None
    embedding_api_key_env: str | None = None
    limits: ReadLimits = field(default_factory=ReadLimits)

    def embedder(self) -> Embedder:
        if not self.embedding_base_url and ":" in (self.embedding_model or ""):
            # `PREFIX:NAME` with no endpoint: an embedder a package registers (plugdeck.embedders)
            from ... import extensions

            prefix, _, name = (self.embedding_model or "").partition(":")
            if prefix == "sentence-transformers":
                if not name:
                    raise SettingsError("[knowledge.embeddings] model = \"sentence-transformers:NAME\" needs a NAME")
                return SentenceTransformerEmbedder(name)
            backend = extensions.embedder_backend(prefix)
            if backend is not None:
                return backend(name)
        if not self.embedding_base_url:
            return LocalEmbedder()
        if not self.embedding_model:
            raise SettingsError("[knowledge.embeddings] has a base_url but no model: name the embedding model to use")
        return EndpointEmbedder(self.embedding_base_url, self.embedding_model, api_key_env=self.embedding_api_key_env)


def load_settings(cwd: Path | None = None) -> KnowledgeSettings:
    table: dict = {}
    for path, data in config_tables("knowledge", cwd):
        if not isinstance(data, dict):
            raise SettingsError(f"{path}: knowledge must be a table ([knowledge])")
        embeddings = {**table.get("embeddings", {}), **data.get("embeddings", {})}
        limits = {**table.get("limits", {}), **data.get("limits", {})}
        table.update(data)
        table["embeddings"] = embeddings
        table["limits"] = limits
    embeddings = table.get("embeddings", {})
    environment = {
        "base_url": os.environ.get("PLUGDECK_EMBEDDING_URL"),
        "model": os.environ.get("PLUGDECK_EMBEDDING_MODEL"),
        "api_key_env": os.environ.get("PLUGDECK_EMBEDDING_KEY_ENV"),
    }
    embeddings = {**embeddings, **{k: v for k, v in environment.items() if v}}
    unknown = set(embeddings) - {"base_url", "model", "api_key_env"}
    unknown |= set(table) - {"chunk_size", "chunk_overlap", "embeddings", "limits"}
    if unknown:
        raise SettingsError(f"unknown [knowledge] setting(s): {', '.join(sorted(unknown))}")
    try:
        return KnowledgeSettings(
            chunk_size=int(table.get("chunk_size", DEFAULT_MAX_CHARS)),
            chunk_overlap=int(table.get("chunk_overlap", DEFAULT_OVERLAP)),
            embedding_base_url=embeddings.get("base_url"),
            embedding_model=embeddings.get("model"),
            embedding_api_key_env=embeddings.get("api_key_env"),
            limits=ReadLimits.from_table(table.get("limits", {})),
        )
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"bad [knowledge] setting: {exc}") from None


def default_home() -> Path:
    from ...config import load_config

    return load_config().home
