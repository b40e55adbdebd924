"""Retrieval quality of knowledge bases on SQuAD v1.1 dev questions (see bench/data/README.md).

Every passage becomes one Markdown document (its article title as heading) in a knowledge base
built by the real pipeline with the real all-MiniLM-L6-v2. Each question is asked three ways:
keyword search alone (SQLite FTS5 BM25; PostgreSQL ts_rank), vector search alone, and the
hybrid search that the `search_knowledge` tool uses. A question counts as found at k when a chunk
of its gold passage is among the first k results; the keyword and vector searches are the
baselines that the hybrid must beat. Target (the issue): hybrid recall@5 >= 0.90.
Run: python bench/knowledge_retrieval.py [--smoke] [--postgres postgresql://USER@HOST/DB]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _knowledge_data import load_squad, open_base, unique_name, write_documents  # noqa: E402
from _report import report  # noqa: E402

KS = (1, 5)


def evaluate(kb, embedder, paragraphs, backend: str) -> list[dict]:
    from plugdeck.plugins.knowledge.search import hybrid_search

    questions = [(question, p.source) for p in paragraphs for question in p.questions]
    started = time.perf_counter()
    vectors = embedder.embed([q for q, _ in questions])
    embed_seconds = time.perf_counter() - started
    store = kb.store
    found = {mode: {k: 0 for k in KS} for mode in ("keyword", "vector", "hybrid")}
    reciprocal = {mode: 0.0 for mode in found}
    for (question, gold), vector in zip(questions, vectors):
        ranked = {
            "keyword": _sources(store, store.keyword_search(question, max(KS))),
            "vector": _sources(store, store.vector_search(vector, max(KS))),
            "hybrid": [p.source for p in hybrid_search(store, embedder, question, max(KS), query_vector=vector)],
        }
        for mode, sources in ranked.items():
            for k in KS:
                found[mode][k] += gold in sources[:k]
            if gold in sources:
                reciprocal[mode] += 1 / (sources.index(gold) + 1)
    total = len(questions)
    return [{"backend": backend, "mode": mode, "recall@1": found[mode][1] / total, "recall@5": found[mode][5] / total,
             "mrr@5": reciprocal[mode] / total, "questions": total, "passages": len(paragraphs),
             "query_embed_ms": 1000 * embed_seconds / total} for mode in found]


def _sources(store, hits) -> list[str]:
    chunks = {c.chunk_id: c.source for c in store.chunks([h.chunk_id for h in hits])}
    return [chunks[h.chunk_id] for h in hits]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="12 passages, for CI (well under 30 s)")
    parser.add_argument("--postgres", metavar="URL", help="also measure a knowledge base kept in this database")
    args = parser.parse_args()
    from plugdeck.plugins.knowledge.embeddings import LocalEmbedder

    paragraphs = load_squad(12 if args.smoke else None)
    embedder = LocalEmbedder()
    embedder.load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_documents(paragraphs, Path(tmp) / "squad")
        stores = [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
        for backend, url in stores:
            kb = open_base(unique_name("bench-retrieval"), Path(tmp) / "home", embedder, store=url)
            try:
                report_ = kb.add([corpus])
                assert report_.count("new") == len(paragraphs), report_.to_dict()["counts"]
                rows += evaluate(kb, embedder, paragraphs, backend)
            finally:
                kb.delete()
    columns = ["backend", "mode", "recall@1", "recall@5", "mrr@5", "questions", "passages"]
    hybrid = [r for r in rows if r["mode"] == "hybrid"]
    report("knowledge_retrieval", rows, columns, {
        "dataset": "SQuAD v1.1 dev subset (bench/data/squad-dev-v1.1-subset.jsonl), CC BY-SA 4.0",
        "smoke": args.smoke, "target": "hybrid recall@5 >= 0.90",
        "target_met": all(r["recall@5"] >= 0.90 for r in hybrid),
    })


if __name__ == "__main__":
    main()
