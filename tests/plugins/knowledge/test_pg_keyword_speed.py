"""PostgreSQL keyword search that ranks only the chunks holding a question's rarer words
(pgterms.py): which words it keeps, that each chunk it returns has its exact ts_rank, that nothing
changes without statistics or below the budget, and the odd questions; on a real PostgreSQL
(127.0.0.1:5432). Timings live in bench/knowledge_search.py."""

import numpy as np
import pytest
from test_kb_postgres import database, url  # noqa: F401  (the fixtures: a fresh database)

from plugdeck.plugins.knowledge.pgstore import RANK_NORMALIZATION, RANK_WEIGHTS, PostgresLocation
from plugdeck.plugins.knowledge.store import ChunkRecord, DocumentRecord

# "harbour" in 150 chunks, "keeper" in 40, "lighthouse" in 3: every chunk has six words.
TEXTS = ([f"harbour filler{i} alpha{i} beta{i} gamma{i} delta{i}" for i in range(150)]
         + [f"keeper filler{i} alpha{i} beta{i} gamma{i} delta{i}" for i in range(200, 240)]
         + ["lighthouse harbour keeper stands since 1850", "lighthouse painted white since eighteen fifty",
            "lighthouse keeper lives alone near rocks"]
         + [f"meadow filler{i} alpha{i} beta{i} gamma{i} delta{i}" for i in range(300, 400)])


@pytest.fixture
def store(url):  # noqa: F811
    location = PostgresLocation.for_base(url, "speed")
    store = location.open(create=True)
    for number, text in enumerate(TEXTS):
        chunk = ChunkRecord(f"chunk-{number:03d}", text, (), 0, len(text), text_hash=str(number))
        store.put_document(DocumentRecord(f"/docs/doc-{number:03d}.md", f"doc-{number:03d}.md", "md", str(number),
                                          len(text)), [chunk], np.ones((1, 4), dtype=np.float32) / 2)
    yield store
    store.close()


def full_rank(store, query: str, k: int) -> list[tuple[str, float]]:
    """ts_rank over every chunk that holds any of the words (what the store did before)."""
    with store._session() as conn:
        return [(c, float(r)) for c, r in conn.execute(
            f"SELECT c.chunk_id, ts_rank('{RANK_WEIGHTS}', c.search, q, {RANK_NORMALIZATION}) AS rank "
            "FROM to_tsquery('english', %s) q, chunks c WHERE c.search @@ q ORDER BY rank DESC, c.id LIMIT %s",
            [query, k]).fetchall()]


def same(hits, ranking) -> bool:
    return [h.chunk_id for h in hits] == [c for c, _ in ranking] and \
        [h.score for h in hits] == pytest.approx([r for _, r in ranking])


def test_without_statistics_every_word_is_ranked(store):
    store.keyword_budget = 5
    assert same(store.keyword_search("harbour keeper lighthouse", 10), full_rank(store, "harbour | keeper | lighthouse", 10))


def test_the_rarer_words_choose_and_every_word_scores(store):
    store.optimize()  # ANALYZE: the statistics that say which words are common
    store.keyword_budget = 60
    with store._session() as conn:
        chosen = store._terms.selective(conn, store._token(conn), ["harbour", "keeper", "lighthouse"], 60)
    assert chosen == ["keeper", "lighthouse"]  # harbour (150 chunks) is over the budget
    hits = store.keyword_search("harbour keeper lighthouse", 10)
    exact = dict(full_rank(store, "harbour | keeper | lighthouse", 1000))
    assert hits[0].chunk_id == "chunk-190"  # all three words
    assert all(h.score == pytest.approx(exact[h.chunk_id]) for h in hits)
    assert not any(int(h.chunk_id[-3:]) < 150 for h in hits)  # chunks with only "harbour" are not ranked
    store.keyword_budget = 10_000  # below the budget: exactly the full ranking
    assert same(store.keyword_search("harbour keeper lighthouse", 10), full_rank(store, "harbour | keeper | lighthouse", 10))


def test_odd_questions(store):
    store.optimize()
    store.keyword_budget = 1
    assert store.keyword_search("the of and", 5) == []  # only stop words
    assert store.keyword_search("zeppelin", 5) == []  # in no chunk
    hits = store.keyword_search("harbour", 5)  # one common word: it is still searched
    assert len(hits) == 5 and all("harbour" in store.chunks([h.chunk_id])[0].text for h in hits)
