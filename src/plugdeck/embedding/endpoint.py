"""Embedders that call an OpenAI-compatible `/v1/embeddings` endpoint."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from ..retry import Backoff, retry_after
from . import EmbeddingError, normalized

if TYPE_CHECKING:
    import numpy as np


_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 10.0  # seconds: a longer wait the server asks for is cut to this


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
        problem, asked = "", None
        backoff = Backoff(self.backoff, 8.0, jitter="half")
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(asked, MAX_RETRY_AFTER) if asked is not None else backoff.delay(attempt))
            try:
                response = self._client.post(url, json={"model": self.model, "input": batch}, headers=self._headers())
            except httpx.HTTPError as exc:
                problem, asked = f"could not reach {url} ({type(exc).__name__}: {exc})", None
                continue
            if response.status_code in _RETRY_STATUS:
                problem = f"{url} answered {response.status_code}: {_error_message(response)}"
                asked = retry_after(response.headers)  # the server's wait instead of ours
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
