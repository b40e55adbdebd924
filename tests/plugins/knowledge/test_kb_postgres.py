"""Knowledge bases kept in a real PostgreSQL (127.0.0.1:5432), shared by two "machines" (two
PLUGDECK_HOMEs). Each test module run gets its own database, dropped afterwards."""

import json
import secrets
import threading

import psycopg
import pytest
from conftest import SETTINGS, plugdeck, write_corpus

from plugdeck.plugins.knowledge.base import KnowledgeBase, KnowledgeError
from plugdeck.plugins.knowledge.pgstore import PostgresLocation, glob_regex, tsquery

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def database():
    try:
        admin = psycopg.connect(ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres ({exc}); these tests need it "
                    "running (CI starts it)", pytrace=False)
    name = f"plugdeck_kbtest_{secrets.token_hex(4)}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def url(database):
    """The database, emptied of knowledge bases from earlier tests."""
    with psycopg.connect(database, autocommit=True) as conn:
        for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'plugdeck_kb_%'").fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return database


def pgvector_available(url) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None


def shared(name, home, url, embedder, **options):
    return KnowledgeBase.open(name, home, embedder=embedder, settings=SETTINGS, store=url, **options)


def sources(passages):
    return [p.source for p in passages]


def test_a_shared_base_is_searched_from_a_second_machine(tmp_path, url, embedder):
    corpus = write_corpus(tmp_path / "handbook")
    first = shared("handbook", tmp_path / "machine-1", url, embedder)
    report = first.add([corpus])
    assert report.count("new") == 6 and report.embedded == report.chunks > 0
    assert sources(first.search("How many vacation days do new employees get?", 2))[0] == "handbook/leave.md"
    pointer = json.loads((tmp_path / "machine-1" / "kb" / "handbook" / "store.json").read_text())
    assert pointer == {"backend": "postgresql", "url": url, "schema": "plugdeck_kb_handbook", "password_env": None}
    assert not (tmp_path / "machine-1" / "kb" / "handbook" / "knowledge.sqlite").exists()

    second = KnowledgeBase.attach("handbook", url, tmp_path / "machine-2", embedder=embedder, settings=SETTINGS)
    assert second.info()["documents"] == 6 and second.info()["store"]["backend"] == "postgresql"
    found = second.search("When must I tell my manager that I am sick?", 1)[0]
    assert found.source == "handbook/leave.md" and "doctor's note" in found.text
    assert sources(second.search("badges", 5, type="pdf")) == ["handbook/security.pdf"] * 2
    assert set(sources(second.search("badges", 5, source="handbook/s*.pdf"))) == {"handbook/security.pdf"}
    assert set(sources(second.search("rules", 5, source="handbook/office.txt"))) == {"handbook/office.txt"}

    # A change on one machine reaches the other's next search, keyword and vector side alike.
    assert "handbook/office.txt" in sources(second.search("visitor badge at the reception", 3))
    (corpus / "office.txt").unlink()
    assert first.add([corpus]).count("removed") == 1
    assert "handbook/office.txt" not in sources(second.search("visitor badge at the reception", 5))
    (corpus / "office.txt").write_text("Parking permits are handed out at the reception desk.\n")
    first.add([corpus])
    assert second.search("Where do I get a parking permit?", 1)[0].source == "handbook/office.txt"
    first.close()
    second.close()


def test_adding_again_skips_unchanged_files_and_keeps_vectors(tmp_path, url, embedder):
    corpus = write_corpus(tmp_path / "handbook")
    kb = shared("handbook", tmp_path / "home", url, embedder)
    kb.add([corpus])
    again = kb.add([corpus])
    assert again.count("unchanged") == 6 and again.embedded == 0
    leave = corpus / "leave.md"
    leave.write_text(leave.read_text() + "\n## Parental leave\n\nParents get 16 weeks of paid leave.\n")
    changed = kb.add([corpus])
    assert changed.count("changed") == 1 and changed.reused > 0 and changed.embedded < changed.chunks
    assert kb.search("How long is parental leave?", 1)[0].text.endswith("Parents get 16 weeks of paid leave.")
    documents, chunks = kb.store.counts()
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO plugdeck_kb_handbook")
        assert conn.execute("SELECT sum(chunks) FROM documents").fetchone()[0] == chunks
        assert conn.execute("SELECT count(*) FROM chunks WHERE search = ''::tsvector").fetchone()[0] == 0
    assert documents == 6
    kb.close()


def test_vector_search_is_exact_and_matches_the_sqlite_store(tmp_path, url, embedder):
    corpus = write_corpus(tmp_path / "handbook")
    remote = shared("handbook", tmp_path / "home", url, embedder)
    local = KnowledgeBase.open("local", tmp_path / "home", embedder=embedder, settings=SETTINGS)
    remote.add([corpus])
    local.add([corpus])
    meta = remote.store.get_meta()
    assert meta["vector_index"] == ("pgvector" if pgvector_available(url) else "exact")
    query = embedder.embed(["Which class is train travel booked in?"])[0]
    hits = remote.store.vector_search(query, 5)
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in local.store.vector_search(query, 5)]
    stored = remote.store.vectors([h.chunk_id for h in hits])
    assert [h.score for h in hits] == pytest.approx([float(stored[h.chunk_id] @ query) for h in hits], abs=1e-5)
    assert remote.search("Which class is train travel booked in?", 1)[0].source == "handbook/expenses.html"
    remote.close()
    local.close()


def test_rebuild_swaps_the_whole_base_for_every_machine(tmp_path, url, embedder):
    corpus = write_corpus(tmp_path / "handbook")
    first = shared("handbook", tmp_path / "machine-1", url, embedder)
    first.add([corpus])
    second = KnowledgeBase.attach("handbook", url, tmp_path / "machine-2", embedder=embedder, settings=SETTINGS)
    assert second.search("visitor badge", 1)[0].source == "handbook/office.txt"  # fills machine 2's vector cache
    created = first.info()["created_at"]
    (corpus / "office.txt").write_text("The cafeteria serves lunch from 11:30 to 14:00.\n")
    report = first.rebuild()
    assert report.count("new") == 6 and first.info()["created_at"] == created
    assert PostgresLocation.for_base(url, "handbook").names() == ["handbook"]  # no staging schema left
    assert second.search("When is lunch served?", 1)[0].text.startswith("The cafeteria serves lunch")
    assert not list((tmp_path / "machine-1" / "kb").glob(".handbook*"))
    first.close()
    second.close()


def test_two_machines_adding_at_once(tmp_path, url, embedder):
    first = shared("team", tmp_path / "machine-1", url, embedder)
    first.add([write_corpus(tmp_path / "a")])
    bases = [first, KnowledgeBase.attach("team", url, tmp_path / "machine-2", embedder=embedder, settings=SETTINGS)]
    folders = []
    for i in range(2):
        folder = tmp_path / f"notes-{i}"
        folder.mkdir()
        for j in range(4):
            (folder / f"note-{j}.txt").write_text(f"Note {j} from machine {i}: room {i}{j} is booked on Fridays.\n")
        folders.append(folder)
    errors = []

    def add(kb, folder):
        try:
            kb.add([folder])
        except Exception as exc:  # collected, so the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(kb, folder)) for kb, folder in zip(bases, folders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    documents, chunks = bases[0].store.counts()
    assert documents == 6 + 8
    assert sum(d.chunks for d in bases[1].documents()) == chunks
    assert bases[1].search("Which room from machine 0 is booked?", 1)[0].source.startswith("notes-0/")
    for kb in bases:
        kb.close()


def test_names_urls_and_passwords(tmp_path, url, embedder, monkeypatch):
    with pytest.raises(KnowledgeError, match="contains a password"):
        KnowledgeBase.open("x", tmp_path, store=url.replace("postgres@", "postgres:hunter2@"))
    with pytest.raises(KnowledgeError, match="not a PostgreSQL URL"):
        KnowledgeBase.open("x", tmp_path, store="mysql://root@127.0.0.1/test")
    with pytest.raises(KnowledgeError, match="at most 51 characters"):
        KnowledgeBase.open("n" * 52, tmp_path, store=url)
    unreachable = shared("x", tmp_path / "home", url.replace(":5432/", ":1/"), embedder)
    with pytest.raises(KnowledgeError, match="cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/"):
        unreachable.add([write_corpus(tmp_path / "docs")])
    assert not (tmp_path / "home" / "kb" / "x").exists()

    missing = shared("x", tmp_path / "home", url, embedder, password_env="PLUGDECK_TEST_KB_PASSWORD")
    monkeypatch.delenv("PLUGDECK_TEST_KB_PASSWORD", raising=False)
    with pytest.raises(KnowledgeError, match=r"read from \$PLUGDECK_TEST_KB_PASSWORD, which is not set"):
        missing.add([tmp_path / "docs"])
    monkeypatch.setenv("PLUGDECK_TEST_KB_PASSWORD", "s3cret-value")  # the server trusts local logins
    missing.add([tmp_path / "docs"])
    recorded = (tmp_path / "home" / "kb" / "x" / "store.json").read_text()
    assert "PLUGDECK_TEST_KB_PASSWORD" in recorded and "s3cret-value" not in recorded
    missing.close()

    local = KnowledgeBase.open("mine", tmp_path / "home", embedder=embedder, settings=SETTINGS)
    local.add([tmp_path / "docs"])
    with pytest.raises(KnowledgeError, match="'mine' is kept on this machine"):
        KnowledgeBase.open("mine", tmp_path / "home", store=url)
    with pytest.raises(KnowledgeError, match="there is no knowledge base named 'nope' in .* \\(it has: x\\)"):
        KnowledgeBase.attach("nope", url, tmp_path / "other", embedder=embedder, settings=SETTINGS)
    with pytest.raises(KnowledgeError, match="not shared: there is nothing to detach"):
        local.detach()
    local.close()


def test_an_add_that_finds_nothing_leaves_no_shared_base(tmp_path, url, embedder):
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    kb = shared("empty", tmp_path / "home", url, embedder)
    report = kb.add([tmp_path / "sheet.xlsx"])
    assert report.problems and not kb.exists
    assert PostgresLocation.for_base(url, "empty").names() == []


def test_queries_cannot_change_the_full_text_syntax(tmp_path, url, embedder):
    assert tsquery("vacation & (days | !x):* 'quoted' <-> sick_leave") == "vacation | days | x | quoted | sick | leave"
    assert tsquery("???") == ""
    kb = shared("handbook", tmp_path / "home", url, embedder)
    kb.add([write_corpus(tmp_path / "handbook")])
    assert kb.store.keyword_search("vacation & (days | !x):* <->", 3)[0].chunk_id
    assert kb.store.keyword_search("???", 3) == []
    assert kb.search("vacation & (days | !x):*", 1)[0].source == "handbook/leave.md"
    kb.close()


@pytest.mark.parametrize(("pattern", "matches", "misses"), [
    ("handbook/*.md", ["handbook/leave.md", "handbook/a/b.md"], ["handbook/leave.mdx", "other/leave.md"]),
    ("handbook/?.txt", ["handbook/a.txt"], ["handbook/ab.txt"]),
    ("notes/[ab]*", ["notes/a1", "notes/b"], ["notes/c"]),
    ("notes/[^ab]*", ["notes/c"], ["notes/a"]),
    ("a.b+(c)", ["a.b+(c)"], ["aXb+(c)", "a.bb(c)"]),
])
def test_glob_filters_read_like_sqlite_glob(url, pattern, matches, misses):
    with psycopg.connect(url) as conn:
        for text in matches:
            assert conn.execute("SELECT %s ~ %s", [text, glob_regex(pattern)]).fetchone()[0], (pattern, text)
        for text in misses:
            assert not conn.execute("SELECT %s ~ %s", [text, glob_regex(pattern)]).fetchone()[0], (pattern, text)


def test_the_cli_shares_a_base_between_two_homes(cli_env, tmp_path, url):
    corpus = write_corpus(tmp_path / "handbook")
    added = plugdeck(cli_env, "kb", "add", str(corpus), "--name", "handbook", "--store", url)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("handbook: 6 new · ")

    other = {**cli_env, "PLUGDECK_HOME": str(tmp_path / "second-machine")}
    attached = plugdeck(other, "kb", "attach", "handbook", "--store", url)
    assert attached.returncode == 0, attached.stderr
    assert "attached knowledge base 'handbook' (6 documents" in attached.stdout
    listed = json.loads(plugdeck(other, "kb", "list", "--json").stdout)
    assert [(b["name"], b["documents"], b["store"]["url"]) for b in listed] == [("handbook", 6, url)]
    answer = plugdeck(other, "ask", "--kb", "handbook", "How many vacation days do new employees get?")
    assert answer.returncode == 0, answer.stderr
    assert "25 days" in answer.stdout and "handbook/leave.md" in answer.stdout
    detached = plugdeck(other, "kb", "detach", "handbook")
    assert detached.returncode == 0 and f"it is still in {url}" in detached.stdout
    assert json.loads(plugdeck(other, "kb", "list", "--json").stdout) == []

    refused = plugdeck(cli_env, "kb", "add", str(corpus), "--name", "x", "--store", url.replace("@", ":pw@"))
    assert refused.returncode == 1 and "contains a password" in refused.stderr and "pw" not in refused.stderr
    removed = plugdeck(cli_env, "kb", "remove", "handbook", "--yes")
    assert removed.returncode == 0, removed.stderr
    gone = plugdeck(other, "kb", "attach", "handbook", "--store", url)
    assert gone.returncode == 1 and "there is no knowledge base named 'handbook'" in gone.stderr
    for result in (added, attached, answer, detached, refused, removed, gone):
        assert "Traceback" not in result.stderr
