"""How far the no-usage token estimate (plugdeck.models.token_estimate) is from a real tokenizer.

The reference is OpenAI's o200k_base (gpt-4o) through the `bpe-openai` package, which carries the
vocabulary (tiktoken downloads it, and this machine is offline). Samples: the BFCL prompts in
shared/fixtures (user questions plus their function specs, as a request sends them), and a few
non-English texts. Prints the per-sample error distribution and the error on the total.

    pip install bpe-openai   # in any venv; plugdeck itself never needs it
    PYTHONPATH=src python bench/token_estimate.py [FIXTURES]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from plugdeck.models.token_estimate import estimate_tokens

FIXTURES = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fixtures") / "bfcl" / "v3_core"
OTHER_SCRIPTS = [
    "Der schnelle braune Fuchs springt über den faulen Hund, während die Sonne über den Bergen aufgeht.",
    "Le conseil municipal a approuvé hier soir le budget prévisionnel pour l'année prochaine.",
    "敏捷的棕色狐狸跳过了懒狗。今天的天气非常好，我们去公园散步吧。",
    "素早い茶色の狐がのろまな犬を飛び越えた。明日は雨が降るでしょう。",
    "Быстрая коричневая лиса перепрыгивает через ленивую собаку.",
]


def samples() -> list[tuple[str, str]]:
    found = []
    for name in ("BFCL_v3_simple.json", "BFCL_v3_multiple.json", "BFCL_v3_parallel.json"):
        for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()[:200]:
            entry = json.loads(line)
            question = " ".join(m["content"] for turn in entry["question"] for m in turn)
            found.append(("bfcl " + name.split("_")[2].split(".")[0], question + json.dumps(entry["function"])))
    found += [("other scripts", text) for text in OTHER_SCRIPTS]
    return found


def main() -> None:
    import bpe_openai

    encoding = bpe_openai.get_encoding("o200k_base")
    by_kind: dict[str, list[float]] = {}
    totals = {}
    for kind, text in samples():
        real, estimate = len(encoding.encode(text)), estimate_tokens(text)
        by_kind.setdefault(kind, []).append((estimate - real) / real)
        sums = totals.setdefault(kind, [0, 0])
        sums[0], sums[1] = sums[0] + real, sums[1] + estimate
    print(f"{'samples':16} {'n':>4} {'real tokens':>12} {'estimate':>9} {'total err':>9} {'median':>7} {'p10':>7} {'p90':>7}")
    for kind, errors in by_kind.items():
        real, estimate = totals[kind]
        deciles = statistics.quantiles(errors, n=10) if len(errors) > 1 else errors * 9
        print(f"{kind:16} {len(errors):>4} {real:>12} {estimate:>9} {(estimate - real) / real:>+9.1%} "
              f"{statistics.median(errors):>+7.1%} {deciles[0]:>+7.1%} {deciles[-1]:>+7.1%}")


if __name__ == "__main__":
    main()
