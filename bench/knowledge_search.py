"""Search latency of a knowledge base at 100k chunks: hybrid top-10, its parts, and an exact scan.

The chunks are made from the 3,300 sentences of the SQuAD passages in bench/data, so full-text
search sees real words. With so few sentences behind 100k chunks, every word would be far more
frequent than in a real corpus, and keyword search costs grow with the number of chunks a query
matches. Two corpora are therefore offered:

- `diluted` (the default): each chunk holds 1 or 2 SQuAD sentences and about 60 filler words drawn
  from a Zipf distribution over 200,000 made-up words (the long tail of a real vocabulary), about
  650 characters in all. A question's words then occur in a few percent of the chunks, as in a
  broad real corpus; the median share is reported as `keyword_match_share_p50`.
- `dense`: each chunk joins 3 to 6 SQuAD sentences, so a question matches a quarter of all chunks:
  a stress case, like a narrow knowledge base in which every chunk uses the same vocabulary.

A chunk's vector is the normalised mean of its SQuAD sentences' real all-MiniLM-L6-v2 vectors plus
a little noise, so that no two are equal; the store is filled directly, without the embedder. The
queries are the SQuAD questions, embedded one at a time by the real model; that time is reported on
its own line and is not part of the search latencies.

Measured per query, after a warm-up: the store's keyword search (FTS5 BM25 / PostgreSQL ts_rank)
and vector search (SQLite: the NumPy cluster index above 50k chunks, vector_index.py; PostgreSQL
without pgvector: the client's exact scan), the whole hybrid top-10 as the `search_knowledge` tool runs it (both lists,
fusion, reading the passages back), and as the baseline an exact numpy scan of the same vectors
(what any store must beat or match). Besides p50 and p95 wall-clock time, each row shows the best
time and this process's median CPU time, which stay close to an idle machine's latency when other
work shares the CPUs (the CPU time leaves out a database server's share and counts both threads of
numpy's scan). Both stores rank only the chunks that hold a query's rarer words when its words are
common (SQLiteStore.keyword_search, pgterms.py); `sqlite_keyword_recall@k_vs_unpruned_bm25` and
`postgresql_keyword_recall@k_vs_unpruned_ts_rank` are the shares of their top-k that a plain query,
which scores every matching chunk, agrees with. The hybrid search runs its keyword half on another
thread while the vector half runs (search.hybrid_search).
Targets (issue 16): hybrid top-10 p50 <= 8 ms (SQLite) and <= 25 ms (PostgreSQL) at 100k chunks.
Run: python bench/knowledge_search.py [--smoke] [--corpus diluted|dense] [--chunks N] [--queries N]
                                      [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _knowledge_data import load_squad, open_base, percentile, unique_name  # noqa: E402
from _report import report  # noqa: E402

CHUNKS_PER_DOCUMENT = 20


def sentences(paragraphs) -> list[tuple[str, str]]:
    """(article title, sentence) for every sentence of the passages."""
    from plugdeck.plugins.knowledge.text import sentence_spans

    return [(p.title.replace("_", " "), p.context[a:b]) for p in paragraphs for a, b in sentence_spans(p.context)]


def synthetic_chunks(pool, vectors, count: int, corpus: str, seed: int = 7):
    """(title, text) and a matrix of unit vectors for `count` chunks (see the module's docstring)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    texts, matrix = [], np.empty((count, vectors.shape[1]), dtype=np.float32)
    for i in range(count):
        sentences_in_chunk = int(rng.integers(1, 3)) if corpus == "diluted" else int(rng.integers(3, 7))
        picked = rng.choice(len(pool), size=sentences_in_chunk, replace=False)
        text = " ".join(pool[j][1] for j in picked)
        if corpus == "diluted":
            text += " " + filler(rng, 60)
        texts.append((pool[picked[0]][0], text))
        mean = vectors[picked].mean(axis=0) + rng.normal(0, 0.01, vectors.shape[1])
        matrix[i] = mean / np.linalg.norm(mean)
    return texts, matrix


def filler(rng, words: int, vocabulary: int = 200_000) -> str:
    """Made-up words with a Zipf distribution: a few common, most rare."""
    ranks = rng.zipf(1.1, words) % vocabulary
    return " ".join(made_up_word(int(r)) for r in ranks) + "."


def made_up_word(rank: int) -> str:
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "vo", "ri", "da", "pe", "zu", "fo", "gi", "he", "ju", "bo"]
    word = "q"  # no English word starts with "q" followed by these syllables, so none is matched by accident
    while True:
        word += syllables[rank % 16]
        rank //= 16
        if not rank:
            return word


def fill(store, texts, matrix) -> None:
    from plugdeck.plugins.knowledge.store import ChunkRecord, DocumentRecord

    for first in range(0, len(texts), CHUNKS_PER_DOCUMENT):
        number = first // CHUNKS_PER_DOCUMENT
        path = f"/bench/synthetic/doc-{number:05d}.md"
        chunks, offset = [], 0
        for ordinal, (title, text) in enumerate(texts[first : first + CHUNKS_PER_DOCUMENT]):
            chunks.append(ChunkRecord(f"c{first + ordinal:07d}", text, (title,), offset, offset + len(text),
                                      text_hash=f"{first + ordinal:x}", ordinal=ordinal))
            offset += len(text) + 2
        document = DocumentRecord(path, f"synthetic/doc-{number:05d}.md", "md", f"{number:x}", offset,
                                  chunks[0].title_path[0])
        store.put_document(document, chunks, matrix[first : first + len(chunks)])


def timed(function, queries) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds per call, one call per query."""
    wall, cpu = [], []
    for query in queries:
        started, cpu_started = time.perf_counter(), time.process_time()
        function(query)
        wall.append(1000 * (time.perf_counter() - started))
        cpu.append(1000 * (time.process_time() - cpu_started))
    return wall, cpu


def latency_row(backend: str, search: str, wall: list[float], cpu: list[float]) -> dict:
    return {"backend": backend, "search": search, "p50_ms": percentile(wall, 0.5), "p95_ms": percentile(wall, 0.95),
            "best_ms": min(wall), "cpu_p50_ms": percentile(cpu, 0.5), "queries": len(wall)}


def measure(store, embedder, questions, vectors, matrix, backend: str) -> tuple[list[dict], dict]:
    import numpy as np

    from plugdeck.plugins.knowledge.search import hybrid_search

    queries = list(zip(questions, vectors))
    exact_ids = [f"c{i:07d}" for i in range(len(matrix))]

    def exact(query, k=40):
        scores = matrix @ query[1]
        top = np.argpartition(-scores, k - 1)[:k]
        return [exact_ids[i] for i in top[np.argsort(-scores[top])]]

    searches = {
        "keyword top-40": lambda q: store.keyword_search(q[0], 40),
        "vector top-40": lambda q: store.vector_search(q[1], 40),
        "exact numpy scan top-40 (baseline)": exact,
        "hybrid top-10": lambda q: hybrid_search(store, embedder, q[0], 10, query_vector=q[1]),
    }
    for function in searches.values():  # warm up: caches, the vector index, the database's buffers
        timed(function, queries[:20])
    rows = [latency_row(backend, name, *timed(function, queries)) for name, function in searches.items()]
    found = [len({h.chunk_id for h in store.vector_search(v, 10)} & set(exact((q, v), 10))) / 10 for q, v in queries]
    return rows, {f"{backend}_vector_recall@10_vs_exact": sum(found) / len(found)}


def match_share(store, questions, chunks: int) -> float:
    """The median share of all chunks that a question's keyword query matches (what keyword search
    must rank); read from the SQLite store's full-text index."""
    from plugdeck.plugins.knowledge.store import fts_query

    count = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
    counts = [store._db.execute(count, [fts_query(q)]).fetchone()[0] for q in questions if fts_query(q)]
    return percentile(counts, 0.5) / chunks


def keyword_agreement(store, questions, k: int) -> float:
    """The mean share of the SQLite store's keyword top-k that an unpruned FTS5 BM25 query (every
    matching chunk scored) also puts in its top-k: what the store's pruning of common words costs."""
    from plugdeck.plugins.knowledge.store import fts_query

    unpruned = ("SELECT c.chunk_id FROM (SELECT rowid, bm25(chunks_fts, 1.0, 1.5) AS rank FROM chunks_fts "
                "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?) f JOIN chunks c ON c.rowid = f.rowid")
    shares = []
    for question in questions:
        if not fts_query(question):
            continue
        reference = {chunk_id for (chunk_id,) in store._db.execute(unpruned, [fts_query(question), k])}
        found = {hit.chunk_id for hit in store.keyword_search(question, k)}
        shares.append(len(reference & found) / max(1, len(reference)))
    return sum(shares) / len(shares)


def pg_keyword_agreement(store, questions, k: int) -> float:
    """As keyword_agreement, for the PostgreSQL store against ts_rank over every matching chunk."""
    from plugdeck.plugins.knowledge.pgstore import RANK_NORMALIZATION, RANK_WEIGHTS, tsquery

    unpruned = (f"SELECT c.chunk_id FROM to_tsquery('english', %s) q, chunks c WHERE c.search @@ q "
                f"ORDER BY ts_rank('{RANK_WEIGHTS}', c.search, q, {RANK_NORMALIZATION}) DESC, c.id LIMIT %s")
    shares = []
    for question in questions[:100]:  # the unpruned query takes long: a hundred questions are enough
        if not tsquery(question):
            continue
        with store._session() as conn:
            reference = {chunk_id for (chunk_id,) in conn.execute(unpruned, [tsquery(question), k])}
        found = {hit.chunk_id for hit in store.keyword_search(question, k)}
        shares.append(len(reference & found) / max(1, len(reference)))
    return sum(shares) / len(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="30 passages, 2,000 chunks, 30 queries, for CI (under 30 s)")
    parser.add_argument("--corpus", choices=("diluted", "dense"), default="diluted", help="see above (default diluted)")
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the knowledge base (default 100000)")
    parser.add_argument("--queries", type=int, default=300, help="questions asked (default 300)")
    parser.add_argument("--postgres", metavar="URL", help="also measure a knowledge base kept in this database")
    args = parser.parse_args()
    from plugdeck.plugins.knowledge.embeddings import LocalEmbedder

    count, asked = (2_000, 30) if args.smoke else (args.chunks, args.queries)
    paragraphs = load_squad(30 if args.smoke else None)
    embedder = LocalEmbedder()
    embedder.load()
    pool = sentences(paragraphs)
    texts, matrix = synthetic_chunks(pool, embedder.embed([s for _, s in pool]), count, args.corpus)
    questions = [q for p in paragraphs for q in p.questions][:asked]
    rows = [latency_row("-", "query embedding (not in the above)", *timed(lambda q: embedder.embed([q]), questions))]
    vectors = embedder.embed(questions)
    extra = {"chunks": count, "corpus": args.corpus, "smoke": args.smoke,
             "mean_chunk_chars": sum(len(t) for _, t in texts) / len(texts),
             "target": "hybrid top-10 p50 <= 8 ms (sqlite), <= 25 ms (postgresql) at 100k chunks"}
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
        for backend, url in backends:
            kb = open_base(unique_name("bench-search"), Path(tmp) / "home", embedder, store=url)
            try:
                store = kb.store
                started = time.perf_counter()
                fill(store, texts, matrix)
                store.optimize()  # builds the vector index where there is one
                extra[f"{backend}_build_seconds"] = time.perf_counter() - started
                measured, quality = measure(store, embedder, questions, vectors, matrix, backend)
                rows += measured
                extra.update(quality)
                if backend == "sqlite":
                    extra["keyword_match_share_p50"] = match_share(store, questions, count)
                    for k in (10, 40):
                        extra[f"sqlite_keyword_recall@{k}_vs_unpruned_bm25"] = keyword_agreement(store, questions, k)
                elif hasattr(store, "keyword_budget"):
                    for k in (10, 40):
                        extra[f"postgresql_keyword_recall@{k}_vs_unpruned_ts_rank"] = pg_keyword_agreement(
                            store, questions, k)
            finally:
                kb.close()
                if url:
                    kb.location.drop()
    hybrid = [r for r in rows if r["search"] == "hybrid top-10"]
    goals = {"sqlite": 8, "postgresql": 25}
    extra["target_met"] = count >= 100_000 and all(r["p50_ms"] <= goals[r["backend"]] for r in hybrid)
    columns = ["backend", "search", "p50_ms", "p95_ms", "best_ms", "cpu_p50_ms", "queries"]
    report("knowledge_search", rows, columns, extra)


if __name__ == "__main__":
    main()
