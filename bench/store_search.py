"""Store search latency over synthetic listings: in process, the keyword half alone (SQLite FTS5) and
keyword + semantic (the query embedded, then one matrix product over the listings' vectors, embedded
once beforehand as at publish), the query new or repeated (its vector cached); and the REST call
(GET /api/v1/search, both halves) through a real uvicorn on loopback. Goal (issue 13): p50 < 30 ms at
10,000 listings.
Run: python bench/store_search.py [--listings N --queries N] [--no-semantic] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _report import report  # noqa: E402
from _store_data import WORDS, listings  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--smoke", action="store_true", help="200 listings, 20 queries")
    parser.add_argument("--no-semantic", dest="semantic", action="store_false",
                        help="the keyword half only (no embedding model needed)")
    args = parser.parse_args()
    if args.smoke:
        args.listings, args.queries = 200, 20

    import httpx

    from plugdeck.store.manifest import parse_manifest
    from plugdeck.store.service import Listings, create_app

    rng = random.Random(11)
    queries = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "registry"
        folder.mkdir()
        db = Listings(folder / "registry.db", semantic=False)
        started = time.perf_counter()
        for raw in listings(args.listings, max(1, args.listings // 10)):
            db.add_version(parse_manifest(raw), {"schema": "ok", "scanner": [], "blocking": []})
        index_s = time.perf_counter() - started
        db.db.close()
        embed_s, semantic_note = 0.0, ""
        if args.semantic:  # the vectors publishing would have made, in batches
            db = Listings(folder / "registry.db")
            started = time.perf_counter()
            db.semantic.backfill()
            embed_s = time.perf_counter() - started
            semantic_note = db.semantic.problem
            db.db.close()

        app = create_app(folder, semantic=args.semantic)
        listings_db = app.state.listings
        timed: dict[str, list[float]] = {"in process, keyword (FTS5)": []}
        hits = []
        for q in queries:
            t = time.perf_counter()
            hits.append(len(listings_db.search(q, semantic=False)))
            timed["in process, keyword (FTS5)"].append((time.perf_counter() - t) * 1000)
        if args.semantic and not semantic_note:
            new, again = timed["in process, keyword + semantic, new query"], timed["in process, keyword + semantic, "
                                                                                    "repeated query"] = [], []
            listings_db.search("warm up", semantic=True)  # the model's first load is not a query's cost
            for q in queries:
                listings_db.semantic._queries.clear()
                t = time.perf_counter()
                listings_db.search(q)
                new.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                listings_db.search(q)
                again.append((time.perf_counter() - t) * 1000)

        listings_db.db.close()
        with socket.socket() as probe:  # a free port for the server process
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # The registry as `plugdeck store serve` runs it, in its own process (a server thread in this
        # process would share its interpreter lock with the client and time that instead).
        server = subprocess.Popen([sys.executable, "-m", "plugdeck.cli.main", "store", "serve", "--port", str(port),
                                   "--dir", str(folder), *([] if args.semantic else ["--no-semantic"])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        over_http = []
        try:
            with httpx.Client() as http:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        http.get(f"{url}/api/v1/search", params={"q": "weather"})  # up, and the connection warm
                        break
                    except httpx.HTTPError:
                        assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
                        time.sleep(0.1)
                for q in queries:
                    t = time.perf_counter()
                    answer = http.get(f"{url}/api/v1/search", params={"q": q})
                    over_http.append((time.perf_counter() - t) * 1000)
                    assert answer.status_code == 200
        finally:
            server.terminate()
            server.wait(10)
    timed["REST over loopback" + (", keyword + semantic" if args.semantic and not semantic_note else "")] = over_http
    rows = [{"path": path, "listings": args.listings, "queries": len(times), "p50_ms": statistics.median(times),
             "p95_ms": percentile(times, 95), "max_ms": max(times)} for path, times in timed.items()]
    report("store_search", rows, ["path", "listings", "queries", "p50_ms", "p95_ms", "max_ms"],
           {"index_seconds": index_s, "embed_seconds": embed_s, "semantic_off": semantic_note,
            "mean_hits": statistics.mean(hits), "goal_p50_ms": 30})


if __name__ == "__main__":
    main()
