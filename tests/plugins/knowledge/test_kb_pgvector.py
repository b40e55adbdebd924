"""Knowledge bases in a PostgreSQL that has pgvector, so that vectors get a `vector` column with an
HNSW index and the database ranks them by cosine distance. The server is pgserver's (PostgreSQL 16
with pgvector, from PyPI), started for this module and reached through a Unix socket, so the URL
form `postgresql://user@/db?host=/socket/dir` is exercised as well."""

import json
import secrets
import shutil
import tempfile

import numpy as np
import psycopg
import pytest
from conftest import SETTINGS, write_corpus
from test_kb_postgres import shared, sources

from plugdeck.plugins.knowledge.base import KnowledgeBase, KnowledgeError
from plugdeck.plugins.knowledge.pgstore import HNSW_EF_SEARCH, PostgresLocation
from plugdeck.plugins.knowledge.store import ChunkRecord, DocumentRecord, Filters

pgserver = pytest.importorskip("pgserver", reason="pgserver (PostgreSQL with pgvector, from PyPI) is not installed: "
                                                  "pip install pgserver")


@pytest.fixture(scope="module")
def server():
    """A PostgreSQL 16 with pgvector of its own, listening only on a Unix socket in its data folder."""
    folder = tempfile.mkdtemp(prefix="plugdeck-pgvector-")  # short: socket paths are limited to 107 bytes
    instance = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield instance
    finally:
        instance.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def database(server):
    name = f"plugdeck_kbtest_{secrets.token_hex(4)}"
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return server.get_uri(name)  # postgresql://postgres:@/NAME?host=/tmp/plugdeck-pgvector-XXXX


@pytest.fixture
def url(database):
    """The database, emptied of knowledge bases from earlier tests."""
    with psycopg.connect(database, autocommit=True) as conn:
        for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'plugdeck_kb_%'").fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return database


def vector_layout(url, schema):
    """The embedding column's type and the definitions of the indexes on chunks."""
    with psycopg.connect(url) as conn:
        column = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                              "WHERE attrelid = %s::regclass AND attname = 'embedding'",
                              [f"{schema}.chunks"]).fetchone()
        indexes = [d for (d,) in conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
                                               "AND tablename = 'chunks'", [schema]).fetchall()]
    return (column[0] if column else None), indexes


def test_a_new_base_gets_a_vector_column_and_an_hnsw_index(tmp_path, url, embedder):
    kb = shared("handbook", tmp_path / "home", url, embedder)
    report = kb.add([write_corpus(tmp_path / "handbook")])
    assert report.count("new") == 6 and report.embedded == report.chunks > 0
    meta = kb.store.get_meta()
    assert meta["vector_index"] == "pgvector" and meta["vector_dimension"] == 384
    column, indexes = vector_layout(url, "plugdeck_kb_handbook")
    assert column == "vector(384)"
    assert any("USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='128')" in d
               for d in indexes), indexes
    with psycopg.connect(url) as conn:
        missing = conn.execute("SELECT count(*) FROM plugdeck_kb_handbook.chunks WHERE embedding IS NULL").fetchone()
    assert missing == (0,)
    pointer = json.loads((tmp_path / "home" / "kb" / "handbook" / "store.json").read_text())
    assert pointer["url"] == url and "?host=/" in url
    kb.close()


def test_vector_keyword_and_hybrid_searches_find_the_right_passages(tmp_path, url, embedder):
    corpus = write_corpus(tmp_path / "handbook")
    remote = shared("handbook", tmp_path / "home", url, embedder)
    local = KnowledgeBase.open("local", tmp_path / "home", embedder=embedder, settings=SETTINGS)
    remote.add([corpus])
    local.add([corpus])

    query = embedder.embed(["Which class is train travel booked in?"])[0]
    hits = remote.store.vector_search(query, 5)
    # On a base this small the HNSW graph reaches every chunk, so pgvector's order is the exact one.
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in local.store.vector_search(query, 5)]
    stored = remote.store.vectors([h.chunk_id for h in hits])
    assert [h.score for h in hits] == pytest.approx([float(stored[h.chunk_id] @ query) for h in hits], abs=1e-5)
    assert "second class" in remote.store.chunks([hits[0].chunk_id])[0].text

    keyword = remote.store.keyword_search("doctor's note", 3)
    assert "doctor's note" in remote.store.chunks([keyword[0].chunk_id])[0].text
    assert remote.search("How many vacation days do new employees get?", 1)[0].text.startswith("New employees get 25")
    assert remote.search("Which class is train travel booked in?", 1)[0].source == "handbook/expenses.html"
    remote.close()
    local.close()


def test_filters_narrow_every_kind_of_search(tmp_path, url, embedder):
    kb = shared("handbook", tmp_path / "home", url, embedder)
    kb.add([write_corpus(tmp_path / "handbook")])
    assert sources(kb.search("badges", 5, type="pdf")) == ["handbook/security.pdf"] * 2
    assert set(sources(kb.search("badges", 5, source="handbook/s*.pdf"))) == {"handbook/security.pdf"}
    assert set(sources(kb.search("rules", 5, source="handbook/office.txt"))) == {"handbook/office.txt"}
    query = embedder.embed(["Where do visitors sign in?"])[0]
    hits = kb.store.vector_search(query, 5, Filters(types=("md", "txt")))
    assert {c.type for c in kb.store.chunks([h.chunk_id for h in hits])} == {"md", "txt"}
    assert kb.store.chunks([hits[0].chunk_id])[0].source == "handbook/office.txt"
    kb.close()


def test_a_narrow_filter_still_finds_k_vectors(tmp_path, url):
    """HNSW finds the ef_search nearest chunks of the whole base and the filter comes after it: with
    many more chunks than that nearer to the query than every PDF chunk, the PDF chunks must still be
    found."""
    location = PostgresLocation.for_base(url, "crowded")
    store = location.open(create=True)
    rng = np.random.default_rng(3)
    query = np.zeros(384, dtype=np.float32)
    query[0] = 1
    near = query + rng.normal(0, 0.2, (2 * HNSW_EF_SEARCH, 384)).astype(np.float32)
    far = -query + rng.normal(0, 0.2, (3, 384)).astype(np.float32)
    put(store, "notes.md", "md", near / np.linalg.norm(near, axis=1, keepdims=True))
    put(store, "scan.pdf", "pdf", far / np.linalg.norm(far, axis=1, keepdims=True))
    store.optimize()

    hits = store.vector_search(query, 5, Filters(types=("pdf",)))
    assert [h.chunk_id for h in hits] == sorted(["scan.pdf-0", "scan.pdf-1", "scan.pdf-2"],
                                                key=lambda i: -float(store.vectors([i])[i] @ query))
    assert all(h.score < 0 for h in hits)
    unfiltered = store.vector_search(query, 5)
    assert len(unfiltered) == 5 and all(h.chunk_id.startswith("notes.md-") for h in unfiltered)
    with store._session() as conn:  # the unfiltered search's ordering is served by the HNSW index
        plan = conn.execute("EXPLAIN SELECT chunk_id FROM chunks ORDER BY embedding <=> %s::vector LIMIT 5",
                            [str(query.tolist())]).fetchall()
    assert "chunks_embedding" in "\n".join(line for (line,) in plan)
    store.close()
    location.drop()


def put(store, name, kind, vectors):
    chunks = [ChunkRecord(f"{name}-{i}", f"Chunk {i} of {name}.", (name,), 0, 10, text_hash=f"{name}-{i}", ordinal=i)
              for i in range(len(vectors))]
    store.put_document(DocumentRecord(f"/docs/{name}", f"docs/{name}", kind, name, 1, name), chunks, vectors)


def test_adding_again_changing_and_deleting_files(tmp_path, url, embedder):
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

    (corpus / "office.txt").unlink()
    assert kb.add([corpus]).count("removed") == 1
    assert "handbook/office.txt" not in sources(kb.search("visitor badge at the reception", 5))
    documents, chunks = kb.store.counts()
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO plugdeck_kb_handbook")
        assert conn.execute("SELECT sum(chunks) FROM documents").fetchone()[0] == chunks
        assert conn.execute("SELECT count(embedding) FROM chunks").fetchone()[0] == chunks
    assert documents == 5
    kb.close()


def test_a_second_machine_attaches_follows_changes_and_sees_the_base_removed(tmp_path, url, embedder):
    corpus = write_corpus(tmp_path / "handbook")
    first = shared("handbook", tmp_path / "machine-1", url, embedder)
    first.add([corpus])
    second = KnowledgeBase.attach("handbook", url, tmp_path / "machine-2", embedder=embedder, settings=SETTINGS)
    assert second.info()["documents"] == 6 and second.store.pgvector
    found = second.search("When must I tell my manager that I am sick?", 1)[0]
    assert found.source == "handbook/leave.md" and "doctor's note" in found.text

    (corpus / "office.txt").write_text("Parking permits are handed out at the reception desk.\n")
    first.add([corpus])
    assert second.search("Where do I get a parking permit?", 1)[0].source == "handbook/office.txt"

    first.delete()
    assert PostgresLocation.for_base(url, "handbook").names() == []
    with pytest.raises(KnowledgeError, match="someone removed it"):
        second.search("Where do I get a parking permit?", 1)
    second.close()


def test_rebuild_keeps_pgvector(tmp_path, url, embedder):
    corpus = write_corpus(tmp_path / "handbook")
    first = shared("handbook", tmp_path / "machine-1", url, embedder)
    first.add([corpus])
    second = KnowledgeBase.attach("handbook", url, tmp_path / "machine-2", embedder=embedder, settings=SETTINGS)
    assert second.search("visitor badge", 1)[0].source == "handbook/office.txt"
    (corpus / "office.txt").write_text("The cafeteria serves lunch from 11:30 to 14:00.\n")
    assert first.rebuild().count("new") == 6
    assert PostgresLocation.for_base(url, "handbook").names() == ["handbook"]
    assert second.store.get_meta()["vector_index"] == "pgvector"
    column, indexes = vector_layout(url, "plugdeck_kb_handbook")
    assert column == "vector(384)" and any("hnsw" in d for d in indexes)
    assert second.search("When is lunch served?", 1)[0].text.startswith("The cafeteria serves lunch")
    first.close()
    second.close()


def test_socket_urls_in_their_usual_forms(url):
    socket_folder = url.split("?host=", 1)[1]
    database = url.split("/")[3].split("?")[0]
    for form in (f"postgresql://postgres@/{database}?host={socket_folder}",
                 f"postgresql://postgres@{socket_folder.replace('/', '%2F')}/{database}"):
        location = PostgresLocation.for_base(form, "probe")
        assert location.url == form and not location.exists()
        assert location.names() == []
    with pytest.raises(KnowledgeError, match="contains a password"):
        PostgresLocation.for_base(f"postgresql://postgres:pw@/{database}?host={socket_folder}", "probe")
    with pytest.raises(KnowledgeError, match="contains a password"):
        PostgresLocation.for_base(f"postgresql://postgres@/{database}?host={socket_folder}&password=pw", "probe")
