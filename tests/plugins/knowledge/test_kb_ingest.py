"""KnowledgeBase: ingest, update and delete cycles on real files of every type, search and filters."""

import sqlite3

import pytest
from conftest import SETTINGS, pdf_bytes

from plugdeck.plugins.knowledge.base import KnowledgeBase, KnowledgeError, names


def open_kb(home, embedder, name="handbook", **options):
    return KnowledgeBase.open(name, home, embedder=embedder, settings=SETTINGS, **options)


def statuses(report):
    return {f.source: f.status for f in report.files}


def test_add_update_and_delete_cycle(home, corpus, embedder):
    kb = open_kb(home, embedder)
    first = kb.add([corpus])
    assert statuses(first) == {f"handbook/{n}": "new" for n in
                               ("benefits.docx", "expenses.html", "leave.md", "office.txt", "security.pdf", "staff.csv")}
    assert first.chunks == first.embedded > 0 and not first.problems
    info = kb.info()
    assert info["documents"] == 6 and info["types"] == {t: 1 for t in ("md", "txt", "html", "pdf", "docx", "csv")}
    assert info["embedder"]["id"] == "local:all-MiniLM-L6-v2" and info["embedder"]["dimension"] == 384
    assert (home / "kb" / "handbook" / "knowledge.sqlite").exists()

    # Unchanged content: nothing is read or embedded again (idempotent).
    again = kb.add([corpus])
    assert set(statuses(again).values()) == {"unchanged"} and again.embedded == 0 and again.chunks == 0

    # One paragraph changes: only that file is re-read, only the changed chunk is embedded.
    before = {c.text: c.chunk_id for c in kb.store.document_chunks(str(corpus / "leave.md"))}
    leave = corpus / "leave.md"
    leave.write_text(leave.read_text().replace("25 days", "27 days"), encoding="utf-8")
    changed = kb.add([corpus])
    assert statuses(changed)["handbook/leave.md"] == "changed"
    assert [s for s in statuses(changed).values() if s != "unchanged"] == ["changed"]
    assert changed.embedded == 1 and changed.reused == 2
    after = {c.text: c.chunk_id for c in kb.store.document_chunks(str(leave))}
    kept = set(before) & set(after)
    assert len(kept) == 2 and all(before[t] == after[t] for t in kept)  # chunk ids are stable
    assert kb.search("How many vacation days do new employees get?", 1)[0].text.startswith("New employees get 27 days")

    # A deleted file's chunks go when its folder is added again.
    (corpus / "office.txt").unlink()
    removed = kb.add([corpus])
    assert statuses(removed)["handbook/office.txt"] == "removed"
    assert kb.info()["documents"] == 5
    assert all(p.source != "handbook/office.txt" for p in kb.search("When does the office open?", 10))
    kb.close()


def test_a_file_that_cannot_be_read_is_reported_and_the_rest_goes_in(home, corpus, embedder):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (corpus / "photo.png").write_bytes(b"\x89PNG")
    (corpus / ".hidden.md").write_text("# Secret\n\nNot to be indexed.")
    kb = open_kb(home, embedder)
    report = kb.add([corpus])
    outcome = {f.source: f for f in report.files}
    assert outcome["handbook/broken.pdf"].status == "failed"
    assert "not a readable PDF" in outcome["handbook/broken.pdf"].reason
    assert outcome["handbook/photo.png"].status == "unsupported"
    assert "handbook/.hidden.md" not in outcome
    assert report.count("new") == 6


def test_a_changed_file_that_breaks_keeps_its_previous_version(home, corpus, embedder):
    kb = open_kb(home, embedder)
    kb.add([corpus])
    (corpus / "security.pdf").write_bytes(b"%PDF-1.4 damaged on disk")
    report = kb.add([corpus])
    failed = next(f for f in report.files if f.source == "handbook/security.pdf")
    assert failed.status == "failed" and "version added before is kept" in failed.reason
    assert kb.search("cable lock for laptops", 1)[0].source == "handbook/security.pdf"


def test_files_and_globs(home, corpus, embedder, tmp_path):
    kb = open_kb(home, embedder)
    report = kb.add([str(corpus / "*.md"), corpus / "staff.csv"])
    assert statuses(report) == {"handbook/leave.md": "new", "staff.csv": "new"}
    named = kb.add([corpus / "notes.xlsx", corpus / "leave.md"])
    assert named.count("missing") == 1 and named.count("unchanged") == 1
    (corpus / "report.xlsx").write_bytes(b"PK")
    explicit = kb.add([corpus / "report.xlsx"])
    assert explicit.files[0].status == "failed" and "unsupported file type .xlsx" in explicit.files[0].reason
    with pytest.raises(KnowledgeError, match="no such file or folder"):
        kb.add([tmp_path / "nowhere"])


def test_search_finds_facts_in_every_type_with_locations(handbook):
    expected = {
        "How many vacation days do new employees get?": ("handbook/leave.md", "Vacation", "lines 10–18"),
        "When does the office open?": ("handbook/office.txt", "", "lines 1–3"),
        "What is the hotel limit per night?": ("handbook/expenses.html", "Travel", ""),
        "Do I have to lock my laptop?": ("handbook/security.pdf", "", "page 2"),
        "When can I join the pension plan?": ("handbook/benefits.docx", "Pension", ""),
        "Which office does Bob work in?": ("handbook/staff.csv", "", "rows 2–3"),
    }
    for question, (source, title, location) in expected.items():
        best = handbook.search(question, 3)[0]
        assert (best.source, best.title, best.location) == (source, title, location), question
        assert best.similarity > 0.3


def test_filters_by_source_and_type(handbook):
    question = "What are the rules?"
    assert {p.type for p in handbook.search(question, 10, type="pdf")} == {"pdf"}
    assert {p.type for p in handbook.search(question, 10, type=["md", "csv"])} == {"md", "csv"}
    assert {p.source for p in handbook.search(question, 10, source="handbook/*.html")} == {"handbook/expenses.html"}
    assert {p.source for p in handbook.search(question, 10, source="handbook/leave.md")} == {"handbook/leave.md"}
    assert len({p.source for p in handbook.search(question, 10, source="handbook")}) > 3
    assert handbook.search(question, 10, source="elsewhere/*") == []


def test_hybrid_ranking_uses_both_keywords_and_meaning(handbook):
    exact = handbook.search("doctor's note", 3)[0]  # words that appear verbatim
    assert exact.title == "Sick leave" and exact.keyword_rank == 1
    meaning = handbook.search("What happens if I am ill for several days?", 3)[0]  # no shared words
    assert meaning.title == "Sick leave" and meaning.vector_rank == 1


def test_several_knowledge_bases_coexist(home, corpus, embedder):
    one = open_kb(home, embedder, "one")
    two = open_kb(home, embedder, "two")
    one.add([corpus / "leave.md"])
    two.add([corpus / "office.txt"])
    assert names(home) == ["one", "two"]
    assert {p.source for p in one.search("office opening hours", 5)} == {"leave.md"}
    assert {p.source for p in two.search("vacation", 5)} == {"office.txt"}
    one.delete()
    assert names(home) == ["two"]


def test_missing_knowledge_base_and_bad_names(home, embedder):
    with pytest.raises(KnowledgeError, match="no knowledge base named 'nothing'.*plugdeck kb add PATH --name nothing"):
        open_kb(home, embedder, "nothing").search("anything")
    with pytest.raises(KnowledgeError, match="not a valid knowledge base name"):
        open_kb(home, embedder, "Bad Name!")


def test_rebuild_reads_everything_again_and_swaps(home, corpus, embedder):
    kb = open_kb(home, embedder)
    kb.add([corpus])
    created = kb.info()["created_at"]
    (corpus / "staff.csv").unlink()
    report = kb.rebuild()
    assert report.count("new") == 5 and kb.info()["documents"] == 5
    assert kb.info()["created_at"] == created
    assert not list(home.glob("kb/.handbook*"))  # no staging folder left behind
    for path in list(corpus.iterdir()):
        path.unlink()
    with pytest.raises(KnowledgeError, match="left as it was"):
        kb.rebuild()
    assert kb.info()["documents"] == 5


def test_large_bases_use_the_approximate_index(home, tmp_path, embedder):
    folder = tmp_path / "many"
    folder.mkdir()
    topics = ["parking", "coffee", "printers", "holidays", "security", "laptops", "travel", "lunch", "meetings",
              "plants", "music", "bicycles"]
    for topic in topics:
        (folder / f"{topic}.txt").write_text(f"Everything about {topic}.\n\nThe {topic} rules are posted on the wall.")
    exact = open_kb(home, embedder, "exact")
    approximate = open_kb(home, embedder, "approximate", ann_threshold=5)
    for kb in (exact, approximate):
        kb.add([folder])
    assert (home / "kb" / "approximate" / "vectors.clusters.npz").exists()
    assert not (home / "kb" / "exact" / "vectors.clusters.npz").exists()
    for topic in topics:
        assert approximate.search(f"Tell me about {topic}", 1)[0].source == exact.search(f"Tell me about {topic}", 1)[0].source
    (folder / "coffee.txt").unlink()
    approximate.add([folder])
    # The index drops the deleted file's vectors, also after reopening from disk.
    reopened = open_kb(home, embedder, "approximate", ann_threshold=5)
    vector = embedder.embed(["Everything about coffee."])[0]
    hits = reopened.store.vector_search(vector, 30)
    chunk_sources = {c.source for c in reopened.store.chunks([h.chunk_id for h in hits])}
    assert "many/coffee.txt" not in chunk_sources and len(hits) == 11
    assert {p.source for p in reopened.search("coffee", 5, source="many/t*")} <= {"many/travel.txt"}


def test_store_stays_consistent(handbook):
    db = sqlite3.connect(handbook.folder / "knowledge.sqlite")
    chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert chunks == db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
    assert chunks == db.execute("SELECT sum(chunks) FROM documents").fetchone()[0]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_pdf_pages_are_searchable_by_page(home, tmp_path, embedder):
    path = tmp_path / "manual.pdf"
    path.write_bytes(pdf_bytes([["Chapter one: installing the printer."], ["Chapter two: replacing the toner."],
                                ["Chapter three: clearing a paper jam."]]))
    kb = open_kb(home, embedder, "manual")
    kb.add([path])
    assert kb.search("How do I fix a paper jam?", 1)[0].location == "page 3"
