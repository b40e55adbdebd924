"""Ingest throughput of `KnowledgeBase.add` against the raw speed of its embedding model, in one run.

The corpus is the SQuAD passages of bench/data as Markdown files (repeated under other names for
more text). The baseline embeds exactly the texts the pipeline embeds (the chunks' embedding
texts), in one call to the same all-MiniLM-L6-v2 on the same CPU: the best the model can do. The
pipeline run adds everything around it: scanning, hashing, reading, chunking, batching, writing
the store and its indexes. Both run with the model already loaded, alternately, several times;
compared are the best wall-clock times (the runs least disturbed by other work) and the median CPU
times of this process (all threads; steadier when other work shares the machine, but without a
PostgreSQL server's own CPU). Target (the issue): pipeline overhead under 15%.
Run: python bench/knowledge_ingest.py [--smoke] [--copies N] [--rounds N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _knowledge_data import load_squad, open_base, unique_name, write_documents  # noqa: E402
from _report import report  # noqa: E402


def embedding_texts(folder: Path) -> list[str]:
    """What the pipeline will embed: every chunk's embedding text, read and chunked the same way."""
    from plugdeck.plugins.knowledge.chunking import chunk_document
    from plugdeck.plugins.knowledge.readers import read_document
    from plugdeck.plugins.knowledge.settings import KnowledgeSettings

    settings = KnowledgeSettings()
    texts = []
    for path in sorted(folder.rglob("*.md")):
        texts += [c.embedding_text for c in chunk_document(read_document(path), settings.chunk_size,
                                                           settings.chunk_overlap)]
    return texts


def raw_seconds(embedder, texts: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds to embed the texts in one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    embedder.embed(texts)
    return time.perf_counter() - wall, time.process_time() - cpu


def pipeline_seconds(embedder, corpus: Path, home: Path, url: str | None, expected: int) -> tuple[float, float]:
    """(wall, CPU) seconds for a fresh knowledge base to add the corpus."""
    kb = open_base(unique_name("bench-ingest"), home, embedder, store=url)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        added = kb.add([corpus])
        seconds = time.perf_counter() - wall, time.process_time() - cpu
        assert added.embedded == expected, (added.embedded, expected)
        return seconds
    finally:
        kb.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one small round, for CI (well under 30 s)")
    parser.add_argument("--copies", type=int, default=3, help="how many times the corpus is repeated (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating baseline/pipeline rounds (default 5)")
    parser.add_argument("--postgres", metavar="URL", help="also ingest into a knowledge base kept in this database")
    args = parser.parse_args()
    from plugdeck.plugins.knowledge.embeddings import LocalEmbedder

    paragraphs = load_squad(16 if args.smoke else None)
    copies, rounds = (1, 1) if args.smoke else (args.copies, args.rounds)
    embedder = LocalEmbedder()
    embedder.load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_documents(paragraphs, Path(tmp) / "squad", copies=copies)
        texts = embedding_texts(corpus)
        embedder.embed(texts[:64])  # warm up: the first batches after loading are slower
        backends = [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
        for backend, url in backends:
            raw, pipeline = [], []
            for _ in range(rounds):
                raw.append(raw_seconds(embedder, texts))
                pipeline.append(pipeline_seconds(embedder, corpus, Path(tmp) / "home", url, len(texts)))
            raw_s, raw_cpu = min(t[0] for t in raw), statistics.median(t[1] for t in raw)
            pipeline_s, pipeline_cpu = min(t[0] for t in pipeline), statistics.median(t[1] for t in pipeline)
            rows.append({"backend": backend, "what": "raw embedding (baseline)", "chunks": len(texts),
                         "seconds": raw_s, "chunks_per_s": len(texts) / raw_s, "cpu_seconds": raw_cpu})
            rows.append({"backend": backend, "what": "kb.add pipeline", "chunks": len(texts), "seconds": pipeline_s,
                         "chunks_per_s": len(texts) / pipeline_s, "overhead_%": 100 * (pipeline_s / raw_s - 1),
                         "cpu_seconds": pipeline_cpu, "cpu_overhead_%": 100 * (pipeline_cpu / raw_cpu - 1)})
    columns = ["backend", "what", "chunks", "seconds", "chunks_per_s", "overhead_%", "cpu_seconds", "cpu_overhead_%"]
    report("knowledge_ingest", rows, columns, {
        "documents": len(paragraphs) * copies, "rounds": rounds, "smoke": args.smoke,
        "model": "all-MiniLM-L6-v2 (sentence-transformers, CPU)", "target": "overhead under 15%",
        "target_met": all(r["overhead_%"] < 15 for r in rows if "overhead_%" in r),
    })


if __name__ == "__main__":
    main()
