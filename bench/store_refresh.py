"""A client's TUF refresh against a store holding 10,000 packages (1,000 publisher namespaces), and the
install of a small Python plugin, cold and from a warm cache. The registry runs as `plugdeck store
serve` in its own process on loopback. Goals (issue 13): refresh < 1 s, metadata downloaded < 1 MB.
Run: python bench/store_refresh.py [--packages N --namespaces N] [--smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _report import report  # noqa: E402
from _store_data import bulk_repository, listings  # noqa: E402

PLUGIN = '''from plugdeck import Plugin, tool


@tool
def echo(text: str) -> str:
    """Say the text back.

    Args:
        text: What to say.
    """
    return text


plugin = Plugin(name="benchecho", version="1.0.0", tools=[echo])
'''


def small_wheel() -> bytes:
    """A one-module plugin wheel, written directly (no build step to time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr("benchecho/__init__.py", PLUGIN)
        wheel.writestr("benchecho-1.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: benchecho\nVersion: 1.0.0\n")
        wheel.writestr("benchecho-1.0.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr("benchecho-1.0.0.dist-info/entry_points.txt", "[plugdeck.plugins]\nbenchecho = benchecho:plugin\n")
    return buffer.getvalue()


def serve(folder: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "plugdeck.cli.main", "store", "serve", "--port", str(port),
                               "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/api/v1/search", timeout=2)
            return server, url
        except httpx.HTTPError:
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
            time.sleep(0.1)


def metadata_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.json") if p.name != "root.json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=1_000)
    parser.add_argument("--smoke", action="store_true", help="300 packages in 30 namespaces")
    args = parser.parse_args()
    if args.smoke:
        args.packages, args.namespaces = 300, 30

    from plugdeck.store import client, keys
    from plugdeck.store.layout import manifest_path
    from plugdeck.store.manifest import parse_manifest
    from plugdeck.store.publish import Package, _describe, register, upload

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        manifests = listings(args.packages, args.namespaces)
        repo, db = bulk_repository(tmp / "registry", manifests)
        db.db.close()
        build_s = time.perf_counter() - started
        server, url = serve(tmp / "registry")
        try:
            # A small real plugin, published through the API.
            data = small_wheel()
            (tmp / "w.whl").write_bytes(data)
            tools = _describe(tmp / "w.whl", "benchecho:plugin", "benchecho", tmp / "described")["tools"]
            manifest = parse_manifest({"name": "bench/echo", "version": "1.0.0", "kind": "python",
                                       "plugin": "benchecho", "entry_point": "benchecho:plugin", "tools": tools,
                                       "artifact": {"file": "benchecho-1.0.0-py3-none-any.whl",
                                                    "sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}})
            signer = keys.generate(tmp / "bench.pem")
            upload(url, Package(manifest, data), signer, register(url, "bench", signer))

            home = tmp / "home"
            client.add_store(home, "bench", url, client.fetch_first_root(url))
            meta = client.store_dir(home, "bench") / "metadata"
            t = time.perf_counter()
            updater = client._updater(home, "bench", url)
            updater.refresh()
            refresh_s = time.perf_counter() - t
            top_bytes = metadata_bytes(meta)
            snapshot_kb = (meta / "snapshot.json").stat().st_size / 1024
            rows.append({"step": "refresh (timestamp, snapshot, targets)", "packages": args.packages,
                         "seconds": refresh_s, "metadata_kb": top_bytes / 1024})
            t = time.perf_counter()
            some = manifests[len(manifests) // 2]
            assert updater.get_targetinfo(manifest_path(some["name"], some["version"])) is not None
            rows.append({"step": "look up one package (its bin and namespace)", "packages": args.packages,
                         "seconds": time.perf_counter() - t, "metadata_kb": (metadata_bytes(meta) - top_bytes) / 1024})
            for step in ("install a small plugin (cold)", "install it again (warm cache)"):
                before = metadata_bytes(meta)
                t = time.perf_counter()
                client.install(home, "bench/echo", store="bench", consent=lambda fetched, findings: True)
                rows.append({"step": step, "packages": args.packages, "seconds": time.perf_counter() - t,
                             "metadata_kb": max(0, metadata_bytes(meta) - before) / 1024})
        finally:
            server.terminate()
            server.wait(10)
    report("store_refresh", rows, ["step", "packages", "seconds", "metadata_kb"],
           {"namespaces": args.namespaces, "repository_build_seconds": build_s, "snapshot_kb": snapshot_kb,
            "goals": {"refresh_seconds": 1, "metadata_mb": 1}})


if __name__ == "__main__":
    main()
