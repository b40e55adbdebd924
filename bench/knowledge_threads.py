"""One query's embedding on a quiet and on a busy machine: the embedder's own thread count against
the BLAS default (issue 16, part 3: with torch's default threads one query took 17 ms quiet and 480 ms
on a busy machine).

`ours` is LocalEmbedder as shipped: BLAS on one thread for a single text (threadpoolctl) and batches
on threads of its own. `blas default` is the same NumPy model with BLAS left at its default thread
count (one per core). "Busy" runs one CPU-bound process per core beside the measurement, as other
work on a shared machine would. Reported per mode and load: p50, p95 and best of single-question
embeddings (SQuAD questions).
Run: python bench/knowledge_threads.py [--queries N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _knowledge_data import load_squad, percentile  # noqa: E402
from _report import report  # noqa: E402


def spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def timings(embed, questions) -> list[float]:
    embed(questions[:5])  # warm up
    out = []
    for question in questions:
        started = time.perf_counter()
        embed(question)
        out.append(1000 * (time.perf_counter() - started))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100, help="questions per mode and load (default 100)")
    args = parser.parse_args()
    from plugdeck.embedding import LocalEmbedder, _local_model

    questions = [q for p in load_squad(None) for q in p.questions][: args.queries]
    ours = LocalEmbedder()
    ours.load()
    model = _local_model()
    modes = {"ours": lambda q: ours.embed([q] if isinstance(q, str) else q),
             "blas default": lambda q: model.encode([q] if isinstance(q, str) else q, threads=1)}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    rows = []
    for load in ("quiet", "busy"):
        stop = multiprocessing.Event()
        burners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(cores if load == "busy" else 0)]
        for burner in burners:
            burner.start()
        try:
            for _ in range(2):  # interleaved, so that a change in the machine's load hits both modes
                for name, embed in modes.items():
                    wall = timings(embed, questions[: len(questions) // 2])
                    rows.append({"mode": name, "load": load, "wall": wall})
        finally:
            stop.set()
            for burner in burners:
                burner.join()
    merged = {}
    for row in rows:
        merged.setdefault((row["mode"], row["load"]), []).extend(row["wall"])
    results = [{"mode": mode, "load": load, "p50_ms": percentile(wall, 0.5), "p95_ms": percentile(wall, 0.95),
                "best_ms": min(wall), "queries": len(wall)} for (mode, load), wall in merged.items()]
    report("knowledge_threads", results, ["mode", "load", "p50_ms", "p95_ms", "best_ms", "queries"],
           {"cores": cores, "burners_when_busy": cores})


if __name__ == "__main__":
    main()
