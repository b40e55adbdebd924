"""plugdeck reaches the MCP SDK only through its public modules (a private one can change in any
release), and a remote server still gets the configured headers through the client built with the
public httpx2 API."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from plugdeck.plugins.mcp import mcp_plugin
from plugdeck.tools import ToolError

SOURCE = Path(__file__).resolve().parents[3] / "src" / "plugdeck"
PRIVATE = re.compile(r"^\s*(from|import)\s+mcp(\.\w+)*\._", re.MULTILINE)


def test_no_module_imports_a_private_part_of_the_mcp_sdk():
    offenders = [f"{path.relative_to(SOURCE)}: {match.group(0).strip()}"
                 for path in SOURCE.rglob("*.py") for match in PRIVATE.finditer(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_pattern_catches_a_private_import():
    assert PRIVATE.search("        from mcp.shared._httpx_utils import create_mcp_http_client")
    assert not PRIVATE.search("from mcp.client.streamable_http import streamable_http_client")


async def test_a_remote_server_gets_the_configured_header(monkeypatch):
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.headers.get("X-Team-Token"))
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TEAM_TOKEN", "tok-7f3a")
    try:
        with pytest.raises(ToolError):
            await mcp_plugin("remote", url=f"http://127.0.0.1:{server.server_address[1]}/mcp",
                             headers_env={"X-Team-Token": "TEAM_TOKEN"}, timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert seen and seen[0] == "tok-7f3a"
