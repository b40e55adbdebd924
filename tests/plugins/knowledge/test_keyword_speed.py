"""Keyword search that ranks only the chunks holding a query's rarer words (SQLiteStore.keyword_search):
the passages it finds, their scores against a plain FTS5 BM25 query, and the odd queries (only stop
words, words no chunk holds, a filter), on real SQLite files. Timings live in bench/knowledge_search.py."""

import numpy as np
import pytest

from plugdeck.plugins.knowledge.store import ChunkRecord, DocumentRecord, Filters, SQLiteStore, fts_query

# 40 one-chunk documents: "harbour" is common (16 chunks), "keeper" less so (6), "lighthouse" rare (2).
# Every chunk has six words, so that BM25's length normalisation treats them alike.
HARBOUR_ONLY = [f"the harbour filler{i} alpha{i} beta{i} gamma{i}" for i in range(14)]
KEEPER_ONLY = [f"keeper filler{i} alpha{i} beta{i} gamma{i} delta{i}" for i in range(100, 106)]
LIGHTHOUSE_AND_HARBOUR = "lighthouse harbour stands tall since 1850"
LIGHTHOUSE_ONLY = "lighthouse painted white since eighteen fifty"
OTHERS = [f"meadow filler{i} alpha{i} beta{i} gamma{i} delta{i}" for i in range(200, 218)]
TEXTS = HARBOUR_ONLY + KEEPER_ONLY + [LIGHTHOUSE_AND_HARBOUR, LIGHTHOUSE_ONLY,
                                      "the doctor's note is needed from day four", "harbour office hours"] + OTHERS


def fill(store: SQLiteStore, texts: list[str], first: int = 0) -> None:
    for number, text in enumerate(texts, start=first):
        chunk = ChunkRecord(f"chunk-{number:03d}", text, (f"Section {number}",), 0, len(text), text_hash=str(number))
        document = DocumentRecord(f"/docs/{'port' if 'harbour' in text else 'misc'}/doc-{number:03d}.md",
                                  f"{'port' if 'harbour' in text else 'misc'}/doc-{number:03d}.md", "md",
                                  f"hash-{number}", len(text))
        store.put_document(document, [chunk], np.ones((1, 4), dtype=np.float32) / 2)


@pytest.fixture
def stores(tmp_path):
    """The same chunks in a store that ranks every match and in one whose budget is tiny."""
    unpruned, pruned = SQLiteStore(tmp_path / "unpruned"), SQLiteStore(tmp_path / "pruned", keyword_budget=3)
    for store in (unpruned, pruned):
        fill(store, TEXTS)
    yield unpruned, pruned
    unpruned.close()
    pruned.close()


def texts_of(store: SQLiteStore, hits) -> list[str]:
    return [chunk.text for chunk in store.chunks([hit.chunk_id for hit in hits])]


def plain_bm25(store: SQLiteStore, query: str, k: int) -> list[tuple[str, float]]:
    """What FTS5 ranks when it scores every chunk that holds any query word."""
    rows = store._db.execute(
        "SELECT c.chunk_id, bm25(chunks_fts, 1.0, 1.5) AS rank FROM chunks_fts JOIN chunks c ON c.rowid = "
        "chunks_fts.rowid WHERE chunks_fts MATCH ? ORDER BY rank, c.rowid LIMIT ?", [fts_query(query), k]).fetchall()
    return [(chunk_id, -rank) for chunk_id, rank in rows]


QUERIES = ["Where is the lighthouse near the harbour?", "harbour keeper", "lighthouse keeper harbour",
           "doctor's note", "what is the", "meadow", "keeper"]


@pytest.mark.parametrize("query", QUERIES)
def test_below_the_budget_results_are_the_plain_bm25_ranking(stores, query):
    unpruned, _ = stores
    hits = unpruned.keyword_search(query, 10)
    assert [(h.chunk_id, h.score) for h in hits] == plain_bm25(unpruned, query, 10)


def test_a_rare_word_finds_its_passage_among_common_words(stores):
    _, pruned = stores
    hits = pruned.keyword_search("Which keeper of the harbour looked after the lighthouse?", 5)
    assert texts_of(pruned, hits)[:2] == [LIGHTHOUSE_AND_HARBOUR, LIGHTHOUSE_ONLY]


def test_common_words_still_add_to_the_scores_of_the_candidates(stores):
    unpruned, pruned = stores
    query = "lighthouse harbour keeper"
    hits = pruned.keyword_search(query, 10)
    # Only the chunks with the rare word are candidates once the common words pass the budget...
    assert sorted(texts_of(pruned, hits)) == sorted([LIGHTHOUSE_AND_HARBOUR, LIGHTHOUSE_ONLY])
    # ...but the one that also holds "harbour" ranks first, with the score a plain BM25 query gives it.
    plain = dict(plain_bm25(unpruned, query, 40))
    assert texts_of(pruned, hits[:1]) == [LIGHTHOUSE_AND_HARBOUR]
    assert hits[0].score > hits[1].score
    assert [h.score for h in hits] == pytest.approx([plain[h.chunk_id] for h in hits])


def test_common_words_alone_are_still_searched(stores):
    _, pruned = stores
    # Over the budget on its own, the rarest word still chooses the candidates.
    assert all("harbour" in text for text in texts_of(pruned, pruned.keyword_search("harbour", 40)))
    assert len(pruned.keyword_search("harbour", 40)) == 16
    # Only stop words: they are searched rather than nothing ("is" is the rarest, "the" adds to it).
    assert texts_of(pruned, pruned.keyword_search("what is the", 3)) == ["the doctor's note is needed from day four"]


def test_a_word_in_more_than_half_the_chunks_is_found_alone(tmp_path):
    with SQLiteStore(tmp_path / "kb", keyword_budget=1) as store:
        fill(store, [f"policy number {i}" for i in range(10)] + ["vacation days"])
        assert len(store.keyword_search("policy", 20)) == 10
        # With a rarer word beside it, the common one adds no weight and chooses nothing.
        assert texts_of(store, store.keyword_search("vacation policy", 20)) == ["vacation days"]


def test_words_no_chunk_holds_are_ignored(stores):
    unpruned, pruned = stores
    for store in (unpruned, pruned):
        assert store.keyword_search("zyxwvut qqqxxq", 5) == []
        with_unknown = store.keyword_search("lighthouse zyxwvut", 5)
        assert [h.chunk_id for h in with_unknown] == [h.chunk_id for h in store.keyword_search("lighthouse", 5)]
        assert store.keyword_search("???", 5) == []


def test_a_phrase_of_two_tokens_is_one_word(stores):
    _, pruned = stores
    assert "doctor's note" in texts_of(pruned, pruned.keyword_search("doctor's note", 1))[0]


def test_filters_apply_to_pruned_searches(stores):
    _, pruned = stores
    hits = pruned.keyword_search("lighthouse harbour keeper", 10, Filters(source="misc/"))
    assert texts_of(pruned, hits) == [LIGHTHOUSE_ONLY]
    hits = pruned.keyword_search("lighthouse harbour keeper", 10, Filters(source="port/*"))
    assert texts_of(pruned, hits) == [LIGHTHOUSE_AND_HARBOUR]


def test_word_counts_follow_writes(tmp_path):
    with SQLiteStore(tmp_path / "kb", keyword_budget=3) as store:
        fill(store, TEXTS)
        assert store.keyword_search("zebra crossing", 5) == []
        fill(store, ["zebra crossing at the harbour"], first=len(TEXTS))
        assert texts_of(store, store.keyword_search("zebra crossing", 5)) == ["zebra crossing at the harbour"]
        # "tall" (1 chunk) and "lighthouse" (2) fit the budget together: both choose candidates.
        assert texts_of(store, store.keyword_search("tall lighthouse", 5)) == [LIGHTHOUSE_AND_HARBOUR, LIGHTHOUSE_ONLY]
        # Six more chunks make "lighthouse" common; counts taken before this write must not be used.
        fill(store, [f"lighthouse model {i}" for i in range(6)], first=len(TEXTS) + 1)
        assert texts_of(store, store.keyword_search("tall lighthouse", 5)) == [LIGHTHOUSE_AND_HARBOUR]
