"""Embedders live in plugdeck.embedding (tool selection uses them too, and must not import a
plugin); these names are kept for code that imports them from here."""

from ...embedding import (Embedder, EmbeddingError, EndpointEmbedder, LocalEmbedder, SentenceTransformerEmbedder,
                          normalized)

__all__ = ["Embedder", "EmbeddingError", "EndpointEmbedder", "LocalEmbedder", "SentenceTransformerEmbedder",
           "normalized"]
