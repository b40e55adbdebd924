"""What the redactor (plugdeck.redaction) costs on a tool result, the hot path it runs on for every call.

A 20 KB JSON result (rows of text, numbers and ids, none of them secret, so the whole text is scanned)
is redacted with 0, 1, 5, 20 and 50 registered secrets (32-character random keys); the figure is the
median of N calls, in milliseconds, plus the one-off time to build the matcher after a registration.
Run: python bench/redaction.py [--repeat N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import time

from _report import report

from plugdeck.redaction import Redactor


def result_text(size: int) -> str:
    rng = random.Random(7)
    words = "order pizza margherita pepperoni customer street total status delivered pending note".split()
    rows, text = [], ""
    while len(text) < size:
        rows.append({"id": f"ord_{rng.getrandbits(40):010x}", "customer": " ".join(rng.choices(words, k=3)),
                     "total": round(rng.uniform(5, 90), 2), "items": rng.randint(1, 6),
                     "note": " ".join(rng.choices(words, k=12)), "placed_at": f"2026-12-0{rng.randint(1, 9)}T12:00:00Z"})
        text = json.dumps({"status": 200, "body": rows})
    return text[:size]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    text = result_text(args.size)
    rows = []
    for count in (0, 1, 5, 20, 50):
        redactor = Redactor([secrets.token_urlsafe(24) for _ in range(count)])
        started = time.perf_counter()
        redactor.redact("warm up")  # builds the matcher
        build = time.perf_counter() - started
        times = []
        for i in range(args.repeat):
            fresh = f"{i:06d}" + text[6:]  # a text not seen before: remembered results would not count
            started = time.perf_counter()
            out = redactor.redact(fresh)
            times.append(time.perf_counter() - started)
            assert out == fresh  # nothing secret in it: every character was looked at and kept
        started = time.perf_counter()
        redactor.redact(fresh)  # the same text again, as a run's earlier messages come back in each event
        again = time.perf_counter() - started
        rows.append({"secrets": count, "result_bytes": len(text), "median_ms": statistics.median(times) * 1000,
                     "p90_ms": sorted(times)[int(len(times) * 0.9)] * 1000, "seen_again_ms": again * 1000,
                     "build_ms": build * 1000})
    report("redaction", rows, ["secrets", "result_bytes", "median_ms", "p90_ms", "seen_again_ms", "build_ms"])


if __name__ == "__main__":
    main()
