"""Tool selection at scale: recall@k and prompt tokens saved on BFCL v3 `multiple` and `parallel_multiple`.

For each set, every function doc of the set is installed at once (identical docs once; different
docs that share a name stay distinct tools, told apart by the Toolset's wire names). For each
question the selector picks k tools, k = 1, 3, 5, 10, 20, and we report:

- recall: per question, the share of its ground-truth functions (distinct names) among the
  selected, averaged; all: the share of questions with every ground-truth function selected;
  exact: recall counting only the very doc the question came with (not a same-named variant).
- tokens: the tool schemas sent per request, as the JSON of the OpenAI tool specs (compact
  separators) divided by 4 characters per token, rounded up: all tools vs the selected ones,
  hence tokens saved per request and %.
- ms: the selection's own time per request, median, once warm (model loaded, tools embedded).

Methods, in the same run: hybrid (keyword + embedding, fused), keyword only (BM25), embedding
only (all-MiniLM-L6-v2). The fusion weights were tuned on every 4th question (index % 4 == 0) of
both sets (`--tune` repeats the search); the table reports the other three quarters.
Data: ../shared/fixtures/bfcl/v3_core (Berkeley Function Calling Leaderboard, Apache-2.0).
Run: python bench/tool_selection.py [--smoke] [--tune] [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _report import report  # noqa: E402
from shared_fixtures import FIXTURES  # noqa: E402

from plugdeck.agent.selection import ToolSelector  # noqa: E402
from plugdeck.tools import Tool, Toolset, tool_from_schema  # noqa: E402

BFCL = FIXTURES / "bfcl" / "v3_core"
SETS = ["multiple", "parallel_multiple"]
KS = [1, 3, 5, 10, 20]
METHODS = ["hybrid", "keyword", "embedding"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Question:
    def __init__(self, entry: dict, answer: list[dict], tools_by_doc: dict[str, Tool]):
        self.id = entry["id"]
        self.index = int(self.id.rsplit("_", 1)[1])
        self.text = "\n".join(m["content"] for turn in entry["question"] for m in turn if m["role"] == "user")
        self.names = list(dict.fromkeys(name for call in answer for name in call))
        docs = {doc["name"]: doc for doc in entry["function"]}
        missing = [n for n in self.names if n not in docs]
        if missing:
            raise ValueError(f"{self.id}: the ground truth calls {missing}, which its function docs do not define")
        self.exact = [tools_by_doc[canonical(docs[n])] for n in self.names]


def canonical(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True)


def install(name: str) -> tuple[list[Tool], list[Question]]:
    """Every function doc of the set as one tool list (identical docs once), and the questions."""
    entries = read_jsonl(BFCL / f"BFCL_v3_{name}.json")
    answers = {a["id"]: a["ground_truth"] for a in read_jsonl(BFCL / "possible_answer" / f"BFCL_v3_{name}.json")}
    tools_by_doc: dict[str, Tool] = {}
    for entry in entries:
        for doc in entry["function"]:
            if canonical(doc) not in tools_by_doc:
                # The plugin (the question that brought the doc) keeps same-named variants apart.
                tools_by_doc[canonical(doc)] = tool_from_schema(
                    doc["name"], doc.get("description", ""), doc["parameters"], lambda **kw: kw, plugin=entry["id"])
    questions = [Question(e, answers[e["id"]], tools_by_doc) for e in entries]
    return list(tools_by_doc.values()), questions


def tokens(toolset: Toolset, tools: list[Tool]) -> int:
    """~4 characters per token over the compact JSON of the OpenAI tool specs: deterministic and
    close to what BPE tokenizers give for English-heavy JSON."""
    specs = [spec.openai() for spec in toolset.offering(tools).specs]
    return math.ceil(len(json.dumps(specs, separators=(",", ":"), ensure_ascii=False)) / 4) if specs else 0


def evaluate(selector: ToolSelector, toolset: Toolset, questions: list[Question], method: str,
             ks: list[int]) -> dict[int, dict]:
    """recall / all / exact / tokens per k, selecting once at the largest k (a prefix is the smaller k)."""
    found = {k: {"recall": [], "all": [], "exact": [], "tokens": []} for k in ks}
    timings = []
    for q in questions:
        start = time.perf_counter()
        ranked = selector.select(q.text, max(ks), mode=method)
        timings.append(time.perf_counter() - start)
        for k in ks:
            chosen = ranked[:k]
            names = {t.name for t in chosen}
            hits = sum(n in names for n in q.names)
            found[k]["recall"].append(hits / len(q.names))
            found[k]["all"].append(hits == len(q.names))
            found[k]["exact"].append(sum(any(t is e for t in chosen) for e in q.exact) / len(q.exact))
            found[k]["tokens"].append(tokens(toolset, chosen))
    ms = statistics.median(timings) * 1000
    ms_p90 = statistics.quantiles(timings, n=10)[-1] * 1000 if len(timings) > 1 else ms
    return {k: {"recall": statistics.fmean(v["recall"]), "all": statistics.fmean(v["all"]),
                "exact": statistics.fmean(v["exact"]), "tokens": statistics.fmean(v["tokens"]), "ms": ms,
                "ms_p90": ms_p90}
            for k, v in found.items()}


class _MemoEmbedder:
    """The real embedder, remembering query vectors, so a grid search embeds each question once."""

    def __init__(self, inner):
        self.inner, self.id, self.memo = inner, inner.id, {}

    def embed(self, texts):
        import numpy as np

        todo = [t for t in texts if t not in self.memo]
        if todo:
            self.memo.update(zip(todo, self.inner.embed(todo)))
        return np.vstack([self.memo[t] for t in texts])


def tune(loaded: dict) -> dict:
    """Grid search of the fusion constants on the tuning quarter: mean recall over k = 1, 3, 5, 10."""
    from plugdeck.plugins.knowledge.embeddings import LocalEmbedder

    embedder = _MemoEmbedder(LocalEmbedder())
    results = []
    for rrf_k in (1, 5, 10, 20, 60):
        for keyword_weight in (0.5, 0.75, 1.0, 1.5, 2.0):
            scores = []
            for tools, toolset, questions in loaded.values():
                selector = ToolSelector(tools, embedder=embedder, rrf_k=rrf_k, keyword_weight=keyword_weight)
                part = [q for q in questions if q.index % 4 == 0]
                measured = evaluate(selector, toolset, part, "hybrid", [1, 3, 5, 10])
                scores.extend(m["recall"] for m in measured.values())
            results.append({"rrf_k": rrf_k, "keyword_weight": keyword_weight, "score": statistics.fmean(scores)})
    results.sort(key=lambda r: -r["score"])
    for r in results[:5]:
        print(f"rrf_k={r['rrf_k']:<3} keyword_weight={r['keyword_weight']:<5} mean recall@1,3,5,10 {r['score']:.4f}")
    return results[0]


def warm_start_seconds(name: str, home: str) -> dict:
    """In a fresh process: build a selector over the set from the cache under home, and time it."""
    code = (f"import sys, time; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import tool_selection as b; tools, _ = b.install({name!r}); "
            "from plugdeck.agent.selection import ToolSelector; t = time.perf_counter(); "
            f"s = ToolSelector(tools, home={home!r}); s.load(); "
            "import json; print(json.dumps({'seconds': time.perf_counter() - t, **s.stats, "
            "'torch_imported': 'torch' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="every 10th reported question, k = 1, 5, 20 (under 30 s)")
    parser.add_argument("--tune", action="store_true", help="search the fusion constants on the tuning quarter first")
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads(N) first (1 is far faster for "
                                                            "single queries on a busy machine)")
    args = parser.parse_args()
    ks = [1, 5, 20] if args.smoke else KS
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    from plugdeck.plugins.knowledge.embeddings import LocalEmbedder

    began = time.perf_counter()
    LocalEmbedder().load()
    model_load = time.perf_counter() - began
    rows, builds, loaded, selectors = [], {}, {}, {}
    with tempfile.TemporaryDirectory() as home:
        for name in SETS:
            tools, questions = install(name)
            started = time.perf_counter()
            selector = ToolSelector(tools, home=home)
            selector.load()  # cold: this process has embedded nothing yet but the other set's shared docs
            builds[name] = {"tools": len(tools), "names": len({t.name for t in tools}),
                            "cold_build_s": round(time.perf_counter() - started, 3), **selector.stats}
            if not args.smoke:
                builds[name]["warm_start"] = warm_start_seconds(name, home)
            loaded[name] = (tools, Toolset(tools), questions)
            selectors[name] = selector
    chosen = tune(loaded) if args.tune else None
    for name, (tools, toolset, questions) in loaded.items():
        selector = selectors[name]
        if chosen:
            selector.rrf_k, selector.keyword_weight = chosen["rrf_k"], chosen["keyword_weight"]
        report_on = [q for q in questions if q.index % 4 != 0]
        if args.smoke:
            report_on = report_on[::10]
        every = tokens(toolset, tools)
        for method in METHODS:
            for k, m in evaluate(selector, toolset, report_on, method, ks).items():
                rows.append({"set": name, "method": method, "k": k, "recall": round(m["recall"], 4),
                             "all": round(m["all"], 4), "exact": round(m["exact"], 4),
                             "tokens": round(m["tokens"]), "tokens_all": every, "saved": round(every - m["tokens"]),
                             "saved_pct": round(100 * (1 - m["tokens"] / every), 2), "ms": round(m["ms"], 2),
                             "ms_p90": round(m["ms_p90"], 2), "questions": len(report_on)})
    columns = ["set", "method", "k", "recall", "all", "exact", "tokens", "tokens_all", "saved", "saved_pct", "ms"]
    report("tool_selection_smoke" if args.smoke else "tool_selection", rows, columns,
           {"model_load_s": round(model_load, 3), "builds": builds, "tuned": chosen,
            "split": "fusion tuned on questions with index % 4 == 0; reported on the others",
            "token_count": "ceil(len(compact JSON of the OpenAI tool specs) / 4)",
            "load_average": os.getloadavg(),  # selection times are CPU-bound: a busy machine slows them
            "torch_threads": args.torch_threads,
            "seconds": round(time.perf_counter() - began, 1)})


if __name__ == "__main__":
    main()
