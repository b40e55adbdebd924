"""Registry replicas sharing one PostgreSQL index (`plugdeck store serve --db postgresql://...`) and one
folder for the TUF files: what one replica takes, the other serves; a namespace and a version are taken
once across replicas, even when two ask at the same moment. The real PostgreSQL on 127.0.0.1:5432, a
fresh schema per test."""

from __future__ import annotations

import threading

import httpx
import pytest
from store_kit import RegistryThread, postgres_schema, weather_project

pytest.importorskip("tuf")
pytest.importorskip("psycopg")

from plugdeck.errors import UserError  # noqa: E402
from plugdeck.store import client, keys, lock  # noqa: E402
from plugdeck.store.manifest import parse_manifest  # noqa: E402
from plugdeck.store.pg_listings import PostgresListings, RegistryDatabaseError, open_listings  # noqa: E402
from plugdeck.store.publish import Package, PublishError, build, register, revoke, upload  # noqa: E402
from plugdeck.store.repo import TrustError  # noqa: E402
from plugdeck.store.service import AlreadyPublished  # noqa: E402


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return build(weather_project(tmp_path_factory.mktemp("weather")), "acme")


def version(package: Package, number: str) -> Package:
    return Package(package.manifest.model_copy(update={"version": number}), package.artifact)


@pytest.fixture
def replicas(tmp_path):
    """Two registry apps on one folder and one database, as two `store serve --db` processes would be."""
    with postgres_schema() as url:
        first = RegistryThread(tmp_path / "registry", db=url, run_packages=False, semantic=False)
        with first, RegistryThread(tmp_path / "registry", db=url, run_packages=False, semantic=False) as second:
            yield first, second


def at_once(*calls):
    """Run the calls in threads released together; each one's result or exception."""
    start, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i, call):
        start.wait()
        try:
            results[i] = call()
        except Exception as exc:  # the loser's error is what the test looks at
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_published_on_one_replica_found_installed_and_revoked_through_the_other(replicas, package, tmp_path):
    one, two = replicas
    signer = keys.generate(tmp_path / "acme.pem")
    token = register(one.url, "acme", signer)
    upload(one.url, package, signer, token)

    found = client.search(two.url, "weather forecast")
    assert [r["name"] for r in found] == ["acme/weather"]
    home = tmp_path / "home"
    client.add_store(home, "team", two.url, client.fetch_first_root(two.url))
    client.install(home, "acme/weather", store="team", consent=lambda fetched, findings: True)
    assert lock.read(home)["packages"]["acme/weather"]["version"] == "0.1.0"
    assert httpx.get(f"{one.url}/api/v1/packages/acme/weather").json()["versions"][0]["installs"] == 1

    # The next version goes through the other replica: it signs on top of what the first one accepted.
    upload(two.url, version(package, "0.2.0"), signer, token)
    assert httpx.get(f"{one.url}/api/v1/packages/acme/weather").json()["latest"] == "0.2.0"
    with pytest.raises(PublishError, match="already published"):
        upload(one.url, version(package, "0.2.0"), signer, token)

    revoke(one.url, "acme/weather", "0.2.0", "leaks the API key", signer, token)
    listed = httpx.get(f"{two.url}/api/v1/packages/acme/weather").json()
    assert listed["latest"] == "0.1.0" and listed["versions"][0]["revoked"].endswith("leaks the API key")
    assert [r["version"] for r in client.search(two.url, "forecast")] == ["0.1.0"]
    # The TUF files hold one history: both versions, as either replica's clients see them.
    again = tmp_path / "again"
    client.add_store(again, "team", one.url, client.fetch_first_root(one.url))
    client.install(again, "acme/weather", store="team", version="0.1.0", consent=lambda fetched, findings: True)
    assert lock.read(again)["packages"]["acme/weather"]["version"] == "0.1.0"


def test_a_namespace_claimed_through_both_replicas_at_once_goes_to_one(replicas, tmp_path):
    one, two = replicas
    mine, theirs = keys.generate(tmp_path / "mine.pem"), keys.generate(tmp_path / "theirs.pem")
    results = at_once(lambda: register(one.url, "acme", mine), lambda: register(two.url, "acme", theirs))
    assert sum(isinstance(r, str) for r in results) == 1
    loser = next(r for r in results if not isinstance(r, str))
    assert isinstance(loser, PublishError) and "already taken" in str(loser)


def test_a_version_published_through_both_replicas_at_once_goes_in_once(replicas, package, tmp_path):
    one, two = replicas
    signer = keys.generate(tmp_path / "acme.pem")
    token = register(one.url, "acme", signer)
    results = at_once(lambda: upload(one.url, package, signer, token), lambda: upload(two.url, package, signer, token))
    assert sum(isinstance(r, dict) for r in results) == 1
    assert all(isinstance(r, (dict, PublishError)) for r in results), results
    versions = httpx.get(f"{two.url}/api/v1/packages/acme/weather").json()["versions"]
    assert [v["version"] for v in versions] == ["0.1.0"]
    # The repository kept one history: the next version signs on top of the winner's metadata.
    upload(two.url, version(package, "0.1.1"), signer, token)
    home = tmp_path / "home"
    client.add_store(home, "team", one.url, client.fetch_first_root(one.url))
    client.install(home, "acme/weather", store="team", consent=lambda fetched, findings: True)
    assert lock.read(home)["packages"]["acme/weather"]["version"] == "0.1.1"
    client.install(home, "acme/weather", store="team", version="0.1.0", consent=lambda fetched, findings: True)
    assert lock.read(home)["packages"]["acme/weather"]["version"] == "0.1.0"


def test_the_index_holds_a_version_once_whatever_the_replicas_checked_first(package):
    """The database's own guarantee, under the app's checks: two indexes adding one version together."""
    with postgres_schema() as url:
        a, b = PostgresListings(url, semantic=False), PostgresListings(url, semantic=False)
        try:
            results = at_once(lambda: a.add_version(package.manifest, {}), lambda: b.add_version(package.manifest, {}))
            assert results.count(None) == 1
            assert isinstance(next(r for r in results if r is not None), AlreadyPublished)
            assert [v["version"] for v in b.versions("acme/weather")] == ["0.1.0"]
            a.add_namespace("acme", {"k": 1})
            with pytest.raises(TrustError, match="already taken"):
                b.add_namespace("acme", {"k": 2})
        finally:
            a.close()
            b.close()


def test_semantic_search_on_one_replica_sees_what_another_published(package):
    from test_store_search import HAVE_MODEL, PACKAGES

    if not HAVE_MODEL:
        pytest.skip("the embedding model's weights are not installed")
    with postgres_schema() as url:
        a, b = PostgresListings(url), PostgresListings(url)
        try:
            question = "is it going to be sunny or rainy tomorrow"
            assert b.find(question)["results"] == []  # b's matrix is loaded, empty
            a.add_version(parse_manifest(PACKAGES[0]), {})
            answer = b.find(question)
            assert answer["semantic"] is True and answer["results"][0]["name"] == "acme/weather"
            assert answer["results"][0]["relevance"]["keyword"] is False
        finally:
            a.close()
            b.close()


def test_a_registry_database_that_is_not_postgres_or_not_there_is_a_clear_error():
    with pytest.raises(UserError, match="not a postgresql://USER@HOST/DATABASE URL"):
        open_listings("mysql://root@127.0.0.1/test")
    with pytest.raises(RegistryDatabaseError) as caught:
        open_listings("postgresql://postgres:s3cret@127.0.0.1:1/test")
    assert str(caught.value).startswith("cannot reach the registry database at postgresql://postgres:***@127.0.0.1:1")
    assert "s3cret" not in str(caught.value)


def test_store_serve_refuses_a_db_it_cannot_use(cli_env, tmp_path):
    from store_kit import plugdeck

    done = plugdeck(cli_env, "store", "serve", "--dir", str(tmp_path / "registry"), "--db", "sqlite:///x.db")
    assert done.returncode != 0 and "is not a postgresql://USER@HOST/DATABASE URL" in done.stderr
