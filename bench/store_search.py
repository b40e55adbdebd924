"""Store search latency over synthetic listings: the registry's SQLite FTS5 index in process, and the
REST call (GET /api/v1/search) through a real uvicorn on loopback. Goal (issue 13): p50 < 30 ms at
10,000 listings.
Run: python bench/store_search.py [--listings N --queries N] [--smoke]
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
    parser.add_argument("--smoke", action="store_true", help="500 listings, 30 queries")
    args = parser.parse_args()
    if args.smoke:
        args.listings, args.queries = 500, 30

    import httpx

    from plugdeck.store.manifest import parse_manifest
    from plugdeck.store.service import Listings, create_app

    rng = random.Random(11)
    queries = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "registry"
        folder.mkdir()
        db = Listings(folder / "registry.db")
        started = time.perf_counter()
        for raw in listings(args.listings, max(1, args.listings // 10)):
            db.add_version(parse_manifest(raw), {"schema": "ok", "scanner": [], "blocking": []})
        index_s = time.perf_counter() - started
        db.db.close()

        app = create_app(folder)
        listings_db = app.state.listings
        in_process, hits = [], []
        for q in queries:
            t = time.perf_counter()
            hits.append(len(listings_db.search(q)))
            in_process.append((time.perf_counter() - t) * 1000)

        listings_db.db.close()
        with socket.socket() as probe:  # a free port for the server process
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # The registry as `plugdeck store serve` runs it, in its own process (a server thread in this
        # process would share its interpreter lock with the client and time that instead).
        server = subprocess.Popen([sys.executable, "-m", "plugdeck.cli.main", "store", "serve", "--port", str(port),
                                   "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    rows = [{"path": path, "listings": args.listings, "queries": len(times), "p50_ms": statistics.median(times),
             "p95_ms": percentile(times, 95), "max_ms": max(times)}
            for path, times in (("in process (FTS5)", in_process), ("REST over loopback", over_http))]
    report("store_search", rows, ["path", "listings", "queries", "p50_ms", "p95_ms", "max_ms"],
           {"index_seconds": index_s, "mean_hits": statistics.mean(hits), "goal_p50_ms": 30})


if __name__ == "__main__":
    main()
