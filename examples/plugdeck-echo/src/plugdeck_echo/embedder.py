"""An embedder for knowledge bases: hashed bag of words, no weights (set model = "echo:DIMENSION")."""

from __future__ import annotations

import hashlib
import re


class HashedWords:
    def __init__(self, dimension: int):
        self.dimension = dimension
        self.id = f"echo:hashed-words-{dimension}"

    def load(self) -> None:
        pass

    def describe(self) -> dict:
        return {"id": self.id, "dimension": self.dimension}

    def embed(self, texts: list[str]):
        import numpy as np

        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % self.dimension] += 1
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def hashed_words(name: str) -> HashedWords:
    return HashedWords(int(name or 256))
