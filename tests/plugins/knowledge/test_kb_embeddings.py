"""Embedding models: an OpenAI-compatible /v1/embeddings endpoint (a real HTTP server on 127.0.0.1),
and refusing to mix vectors of different models."""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest import SETTINGS

from plugdeck.plugins.knowledge.base import KnowledgeBase, KnowledgeError
from plugdeck.plugins.knowledge.embeddings import EmbeddingError, EndpointEmbedder
from plugdeck.plugins.knowledge.text import stem, words


def hashed_vector(text: str, dimension: int) -> list[float]:
    """A bag-of-words vector: texts that share words point the same way (enough to test the plumbing)."""
    vector = [0.0] * dimension
    for word in words(text):
        vector[int(hashlib.sha1(stem(word).encode()).hexdigest(), 16) % dimension] += 1.0
    return vector


class EmbeddingServer:
    """POST /v1/embeddings like OpenAI's; `faults` is a queue of statuses to answer first."""

    def __init__(self, dimension: int = 64, key: str | None = None):
        self.dimension, self.key = dimension, key
        self.faults: list[int] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                if server.faults:
                    status = server.faults.pop(0)
                    return self.reply(status, {"error": {"message": f"fault {status}"}}, {"Retry-After": "0"})
                if server.key and self.headers.get("Authorization") != f"Bearer {server.key}":
                    return self.reply(401, {"error": {"message": "Incorrect API key provided"}})
                if self.path != "/v1/embeddings":
                    return self.reply(404, {"error": {"message": "no such route"}})
                data = [{"object": "embedding", "index": i, "embedding": hashed_vector(text, server.dimension)}
                        for i, text in enumerate(body["input"])]
                self.reply(200, {"object": "list", "model": body["model"], "data": list(reversed(data))})

            def reply(self, status, payload, headers=None):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_endpoint_embedder_speaks_the_openai_format(monkeypatch):
    monkeypatch.setenv("TEST_EMBEDDINGS_KEY", "sk-test-secret")
    with EmbeddingServer(key="sk-test-secret") as server:
        embedder = EndpointEmbedder(server.base_url, "hash-64", api_key_env="TEST_EMBEDDINGS_KEY", batch_size=2)
        vectors = embedder.embed(["vacation days", "vacation day", "printer toner"])
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[0] @ vectors[1] > 0.99 > vectors[0] @ vectors[2]  # order kept although answered reversed
    assert [r["input"] for r in server.requests] == [["vacation days", "vacation day"], ["printer toner"]]
    assert server.requests[0]["model"] == "hash-64"
    assert server.headers[0]["Authorization"] == "Bearer sk-test-secret"
    assert embedder.describe() == {"id": "endpoint:hash-64", "kind": "endpoint", "model": "hash-64",
                                   "base_url": server.base_url, "api_key_env": "TEST_EMBEDDINGS_KEY"}


def test_endpoint_retries_and_errors(monkeypatch):
    monkeypatch.setenv("TEST_EMBEDDINGS_KEY", "sk-wrong-secret")
    with EmbeddingServer(key="sk-right") as server:
        embedder = EndpointEmbedder(server.base_url, "hash-64", api_key_env="TEST_EMBEDDINGS_KEY", backoff=0.01)
        with pytest.raises(EmbeddingError) as refused:
            embedder.embed(["hello"])
        assert "401" in str(refused.value) and "Check the API key" in str(refused.value)
        assert "sk-wrong-secret" not in str(refused.value)
        monkeypatch.setenv("TEST_EMBEDDINGS_KEY", "sk-right")
        server.faults = [429, 503]
        assert embedder.embed(["hello"]).shape == (1, 64)  # retried through both
        server.faults = [500] * 4
        with pytest.raises(EmbeddingError, match="failed after 4 attempts.*500"):
            embedder.embed(["hello"])
    monkeypatch.delenv("TEST_EMBEDDINGS_KEY")
    with pytest.raises(EmbeddingError, match=r"\$TEST_EMBEDDINGS_KEY, which is not set"):
        EndpointEmbedder("http://127.0.0.1:9/v1", "m", api_key_env="TEST_EMBEDDINGS_KEY").embed(["x"])
    with pytest.raises(EmbeddingError, match="could not reach"):
        EndpointEmbedder("http://127.0.0.1:9/v1", "m", attempts=1).embed(["x"])


def test_another_embedding_model_is_refused_until_rebuild(home, corpus, embedder):
    with EmbeddingServer() as server:
        remote = EndpointEmbedder(server.base_url, "hash-64")
        kb = KnowledgeBase.open("handbook", home, embedder=remote, settings=SETTINGS)
        kb.add([corpus])
        assert kb.info()["embedder"] == {**remote.describe(), "dimension": 64}
        assert kb.search("vacation days", 1)[0].title == "Vacation"
        kb.close()

    local = KnowledgeBase.open("handbook", home, embedder=embedder, settings=SETTINGS)
    for attempt in (lambda: local.search("vacation days"), lambda: local.add([corpus])):
        with pytest.raises(KnowledgeError) as refused:
            attempt()
        message = str(refused.value)
        assert "endpoint:hash-64" in message and "local:all-MiniLM-L6-v2" in message
        assert "plugdeck kb rebuild handbook" in message
    local.rebuild()  # re-embeds every document with the model of this session
    assert local.info()["embedder"]["id"] == "local:all-MiniLM-L6-v2"
    assert local.search("How many vacation days do new employees get?", 1)[0].title == "Vacation"


def test_a_model_whose_vectors_change_size_is_caught(home, corpus):
    with EmbeddingServer(dimension=64) as server:
        kb = KnowledgeBase.open("handbook", home, embedder=EndpointEmbedder(server.base_url, "m"), settings=SETTINGS)
        kb.add([corpus / "leave.md"])
        server.dimension = 32  # the same model name now answers with other vectors
        with pytest.raises(KnowledgeError, match="now returns 32-dimensional vectors.*holds 64"):
            kb.add([corpus / "office.txt"])
        assert kb.info()["documents"] == 1
