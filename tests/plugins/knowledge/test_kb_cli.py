"""The real `plugdeck kb` commands, run in a subprocess as a person would."""

import json
import re

from conftest import plugdeck


def test_add_search_list_show_remove(cli_env, corpus, tmp_path):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 cut short")
    (corpus / "diagram.png").write_bytes(b"\x89PNG")
    added = plugdeck(cli_env, "kb", "add", str(corpus), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("handbook: 6 new · ") and "chunks written" in added.stdout
    assert "skipped handbook/broken.pdf: not a readable PDF" in added.stderr
    assert "skipped 1 file(s) of types that cannot be read (.png)" in added.stderr
    assert "Traceback" not in added.stderr

    again = plugdeck(cli_env, "kb", "add", str(corpus), "--json", cwd=tmp_path)
    report = json.loads(again.stdout)
    assert report["counts"]["unchanged"] == 6 and report["embedded"] == 0

    found = plugdeck(cli_env, "kb", "search", "handbook", "How many vacation days do new employees get?", "-k", "2",
                     "--json")
    assert found.returncode == 0, found.stderr
    passages = json.loads(found.stdout)
    assert [p["citation"] for p in passages] == ["[1]", "[2]"]
    assert passages[0]["source"] == "handbook/leave.md" and passages[0]["location"] == "lines 10–18"
    assert "25 days" in passages[0]["text"]

    listed = json.loads(plugdeck(cli_env, "kb", "list", "--json").stdout)
    assert [(b["name"], b["documents"]) for b in listed] == [("handbook", 6)]
    shown = json.loads(plugdeck(cli_env, "kb", "show", "handbook", "--json").stdout)
    assert shown["embedder"]["id"] == "local:all-MiniLM-L6-v2" and shown["roots"] == [str(corpus)]
    assert {d["source"] for d in shown["document_list"]} >= {"handbook/leave.md", "handbook/security.pdf"}
    table = plugdeck(cli_env, "kb", "show", "handbook")
    assert "handbook/benefits.docx" in table.stdout and "local:all-MiniLM-L6-v2" in table.stdout

    removed = plugdeck(cli_env, "kb", "remove", "handbook", "--yes")
    assert removed.returncode == 0 and "your files were not touched" in removed.stdout
    assert (corpus / "leave.md").exists()
    assert json.loads(plugdeck(cli_env, "kb", "list", "--json").stdout) == []


def test_clear_errors(cli_env, tmp_path):
    missing = plugdeck(cli_env, "kb", "search", "handbook", "anything")
    assert missing.returncode == 1
    assert missing.stderr.strip() == ("error: no knowledge base named 'handbook' (there are none yet). "
                                      "Create it with: plugdeck kb add PATH --name handbook")
    nowhere = plugdeck(cli_env, "kb", "add", str(tmp_path / "no-such-folder"))
    assert nowhere.returncode == 1 and "no such file or folder" in nowhere.stderr
    bad_type = plugdeck(cli_env, "kb", "search", "handbook", "x", "--type", "xls")
    assert bad_type.returncode == 1 and "unknown document type xls (known: csv docx html md pdf txt)" in bad_type.stderr
    sheet = tmp_path / "budget.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    unsupported = plugdeck(cli_env, "kb", "add", str(sheet))
    assert unsupported.returncode == 1
    assert "skipped budget.xlsx: unsupported file type .xlsx; supported: .csv .docx" in unsupported.stderr
    assert json.loads(plugdeck(cli_env, "kb", "list", "--json").stdout) == []  # no empty knowledge base left
    for result in (missing, nowhere, bad_type, unsupported):
        assert "Traceback" not in result.stderr


def test_progress_shows_chunks_as_they_are_embedded_and_a_bomb_is_skipped(cli_env, tmp_path):
    """Issue 11 item 18: the bar counts embedded chunks while it embeds (it sat at `0 chunks` before);
    item 4: a zip bomb among the files is skipped with its reason and the rest goes in."""
    from hostile_files import docx_bomb

    folder = tmp_path / "notes"
    folder.mkdir()
    for number in range(3):  # 3 files x 60 paragraphs: more than two batches of 64 chunks to embed
        (folder / f"notes-{number}.md").write_text("\n\n".join(
            f"# Note {number}-{i}\n\nMeeting {i} of team {number} decided item {i * 7 + number}." for i in range(60)))
    docx_bomb(folder / "bomb.docx", 60)
    terminal = {**cli_env, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "160", "NO_COLOR": "1"}
    added = plugdeck(terminal, "kb", "add", str(folder), cwd=tmp_path, timeout=300)
    assert added.returncode == 0, added.stderr
    assert "notes: 3 new · 180 chunks written" in added.stdout
    assert "skipped notes/bomb.docx: the .docx part word/document.xml inflates too much (60 MB" in added.stderr
    assert "max_member_mb in [knowledge.limits]" in added.stderr
    shown = [int(done) for done in re.findall(r"(\d+)/180 chunks embedded", added.stderr)]
    assert 64 in shown and 128 in shown and 180 in shown  # each batch as it was embedded
    assert re.search(r"4/4\s+files", added.stderr) and "loading the model" in added.stderr
