"""Issue 11 item 4 through the server: POST /api/kb/NAME/documents skips an upload over the size cap
(never saving it) and a zip bomb (judged by its zip directory), and indexes the rest. A real server
on loopback, the caps from plugdeck.toml, real embeddings."""

from __future__ import annotations

from pathlib import Path

import httpx
from hostile_files import docx_bomb

from plugdeck.assemble import AgentSetup
from serverkit import start_server


def test_upload_skips_files_over_a_cap_and_indexes_the_rest(env, tmp_path):
    (tmp_path / "plugdeck.toml").write_text("[knowledge.limits]\nmax_file_mb = 0.5\n")  # the server's cwd
    bomb = docx_bomb(tmp_path / "bomb.docx", 60).read_bytes()
    big = b"A line of a log file that goes on and on.\n" * 20_000  # 840 kB: over the 0.5 MB cap
    good = b"# Leave\n\nNew employees get 25 days of paid vacation per year.\n"
    files = [("files", ("leave.md", good, "text/markdown")), ("files", ("huge.txt", big, "text/plain")),
             ("files", ("bomb.docx", bomb, "application/octet-stream"))]
    with start_server(AgentSetup(plugins=["calculator"])) as server:
        response = httpx.post(f"{server.url}/api/kb/handbook/documents", files=files, timeout=300)
        assert response.status_code == 200, response.text
        report = response.json()
        outcome = {f["source"]: f for f in report["files"]}
        assert {name: f["status"] for name, f in outcome.items()} == {
            "leave.md": "new", "huge.txt": "skipped", "bomb.docx": "skipped"}
        assert "the file is too large (0.8 MB; the limit is 0.5 MB)" in outcome["huge.txt"]["reason"]
        assert "word/document.xml inflates too much" in outcome["bomb.docx"]["reason"]
        assert report["counts"]["skipped"] == 2 and report["counts"]["new"] == 1
        uploads = Path(env["PLUGDECK_HOME"]) / "uploads" / "handbook"
        assert sorted(p.name for p in uploads.iterdir()) == ["bomb.docx", "leave.md"]  # huge.txt never saved
        found = httpx.get(f"{server.url}/api/kb/handbook/search", params={"q": "vacation days"}, timeout=120).json()
        assert found[0]["text"].startswith("New employees get 25 days")
