"""How long `plugdeck plugins add openapi` takes to turn a large real-world spec into tools.

For the largest specs in ../shared/fixtures/openapi (Spotify's, 280 KB of YAML, first), two phases,
each the best of N rounds in this process, in milliseconds:
- load: read the file, parse YAML/JSON, check the version (Swagger 2.0 converted);
- build: one tool per operation, every $ref inlined into the parameter schemas, names made wire-safe.
Also reported: the number of tools and the characters of their parameter schemas (what a model is sent).
Run: python bench/openapi_import.py [--repeat N] [--specs N] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _report import report  # noqa: E402
from shared_fixtures import FIXTURES  # noqa: E402

from plugdeck.plugins.openapi import guard_for, load_source, prepare  # noqa: E402

OPENAPI = FIXTURES / "openapi"
BASE = "https://api.example.com/v1"  # for specs whose server is relative or a placeholder
NOT_A_SPEC = {"openapi-3.0-schema.yaml"}  # the meta-schema sits among the fixtures


def largest_specs(count: int) -> list[Path]:
    specs = [p for p in OPENAPI.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.name not in NOT_A_SPEC]
    if not specs:
        sys.exit(f"no OpenAPI fixtures under {OPENAPI}: the shared fixtures must sit beside the checkout")
    return sorted(specs, key=lambda p: p.stat().st_size, reverse=True)[:count]


def measure(path: Path, repeat: int) -> dict:
    loads, builds = [], []
    for _ in range(repeat):
        guard = guard_for({})
        started = time.perf_counter()
        spec, _ = load_source(str(path), guard)
        loaded = time.perf_counter()
        plugin = prepare("bench", {"base_url": BASE}, spec=spec, guard=guard).plugin()
        built = time.perf_counter()
        loads.append(loaded - started)
        builds.append(built - loaded)
    schema_chars = sum(len(json.dumps(t.parameters)) for t in plugin.tools)
    return {"spec": str(path.relative_to(OPENAPI)), "kb": round(path.stat().st_size / 1024),
            "tools": len(plugin.tools), "schema_chars": schema_chars,
            "load_ms": round(min(loads) * 1000, 2), "build_ms": round(min(builds) * 1000, 2),
            "total_ms": round((min(loads) + min(builds)) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5, help="rounds per spec; the best is reported")
    parser.add_argument("--specs", type=int, default=4, help="how many of the largest specs")
    parser.add_argument("--smoke", action="store_true", help="the largest spec once (for the test suite)")
    args = parser.parse_args()
    if args.repeat < 1 or args.specs < 1:
        parser.error("--repeat and --specs must be at least 1")
    repeat, count = (1, 1) if args.smoke else (args.repeat, args.specs)
    rows = [measure(path, repeat) for path in largest_specs(count)]
    report("openapi_import", rows, ["spec", "kb", "tools", "schema_chars", "load_ms", "build_ms", "total_ms"],
           {"repeat": repeat})


if __name__ == "__main__":
    main()
