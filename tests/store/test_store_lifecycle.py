"""After install: update (quiet when nothing that matters changed, a new consent when tools or permissions
did), revocation by the publisher and by the store's admin (through TUF), audit, and the revocation check
a run makes at start. Each with the index in SQLite and in PostgreSQL."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack

import pytest
from store_kit import WEATHER, RegistryThread, plugdeck, postgres_schema, weather_project

pytest.importorskip("tuf")

from plugdeck.store import client, keys, lock  # noqa: E402
from plugdeck.store.audit import audit  # noqa: E402
from plugdeck.store.publish import Package, PublishError, build, register, revoke, revoke_as_admin, upload  # noqa: E402
from plugdeck.store.update import update  # noqa: E402

ADMIN = "admin-token-for-tests"
WEATHER_2 = WEATHER.replace('"""Tomorrow\'s forecast for a city.', '"""The forecast for a city, for the next three days.')


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """0.1.0; 0.1.1, the same tools and permissions; 0.2.0, a new description and a new network host."""
    first = build(weather_project(tmp_path_factory.mktemp("v1")), "acme")
    folder = weather_project(tmp_path_factory.mktemp("v2"), WEATHER_2)
    pyproject = (folder / "pyproject.toml").read_text().replace('["api.weather.example"]',
                                                                '["api.weather.example", "tiles.weather.example"]')
    (folder / "pyproject.toml").write_text(pyproject)
    second = build(folder, "acme")
    same = Package(first.manifest.model_copy(update={"version": "0.1.1"}), first.artifact)
    return {"0.1.0": first, "0.1.1": same, "0.2.0": Package(second.manifest.model_copy(update={"version": "0.2.0"}),
                                                            second.artifact)}


@pytest.fixture(params=["sqlite", "postgres"])
def world(request, tmp_path, packages):
    """A registry with acme/weather 0.1.0 installed from it; its index in SQLite or in PostgreSQL."""
    with ExitStack() as stack:
        db = stack.enter_context(postgres_schema()) if request.param == "postgres" else None
        reg = stack.enter_context(RegistryThread(tmp_path / "registry", admin_token=ADMIN, db=db))
        reg.acme = keys.generate(tmp_path / "acme.pem")
        reg.token = register(reg.url, "acme", reg.acme, ADMIN)
        upload(reg.url, packages["0.1.0"], reg.acme, reg.token)
        reg.home = tmp_path / "home"
        client.add_store(reg.home, "team", reg.url, client.fetch_first_root(reg.url))
        client.install(reg.home, "acme/weather", store="team", consent=lambda fetched, findings: True)
        reg.env = {**os.environ, "PLUGDECK_HOME": str(reg.home), "HOME": str(tmp_path / "user"),
                   "XDG_CONFIG_HOME": str(tmp_path / "user" / ".config")}
        yield reg


def installed(world) -> str:
    return lock.read(world.home)["packages"]["acme/weather"]["version"]


def call(world, **env):
    return plugdeck({**world.env, **env}, "tools", "call", "weather.forecast", '{"city": "Oslo"}')


def test_an_update_that_changes_nothing_that_matters_is_quiet(world, packages):
    upload(world.url, packages["0.1.1"], world.acme, world.token)
    asked = []
    outcome, = update(world.home, None, lambda *a: asked.append(a) or True)
    assert outcome["outcome"] == "updated quietly" and outcome["changes"] == [] and asked == []
    assert installed(world) == "0.1.1"
    assert not lock.package_dir(world.home, "acme/weather", "0.1.0").exists()
    again, = update(world.home, None, lambda *a: True)
    assert again["outcome"] == "up to date"


def test_an_update_that_changes_tools_or_permissions_asks_again(world, packages):
    upload(world.url, packages["0.2.0"], world.acme, world.token)
    shown = []
    declined, = update(world.home, ["acme/weather"], lambda package, old, new, changes: shown.append(changes) or False)
    assert declined["outcome"] == "declined" and installed(world) == "0.1.0"
    lines = "\n".join(shown[0].lines)
    assert "permission added: network tiles.weather.example" in lines
    assert "tool forecast: description" in lines and "next three days" in lines
    assert call(world).stdout.strip() == "Sunny in Oslo, 21 C"  # the old version keeps serving
    accepted, = update(world.home, None, lambda *a: True)
    assert accepted["outcome"] == "updated after consent" and installed(world) == "0.2.0"
    done = call(world)
    assert done.returncode == 0, done.stderr


def test_update_through_the_cli_without_a_terminal_needs_yes(world, packages):
    upload(world.url, packages["0.2.0"], world.acme, world.token)
    refused = plugdeck(world.env, "store", "update")
    assert refused.returncode == 1 and "needs a person's OK" in refused.stderr
    assert "permission added: network tiles.weather.example" in refused.stderr
    assert installed(world) == "0.1.0"
    done = plugdeck(world.env, "store", "update", "--yes")
    assert done.returncode == 0, done.stderr
    assert "acme/weather 0.1.0 -> 0.2.0: updated after consent" in done.stdout


def test_the_publisher_revokes_a_version_and_audit_and_runs_see_it(world):
    revoke(world.url, "acme/weather", "0.1.0", "leaks the API key to its logs", world.acme, world.token)
    assert call(world).returncode == 0  # checked at install, less than PLUGDECK_STORE_MAX_AGE ago
    done = plugdeck(world.env, "store", "audit", "--json")
    assert done.returncode == 1
    result, = json.loads(done.stdout)
    assert result["status"] == "revoked" and "leaks the API key to its logs" in result["reason"]
    refused = call(world)
    assert refused.returncode == 1 and "revoked: leaks the API key to its logs" in refused.stderr
    # Nor can anyone install it any more.
    fresh = world.home.parent / "fresh"
    client.add_store(fresh, "team", world.url, client.fetch_first_root(world.url))
    with pytest.raises(client.StoreError, match="every version of acme/weather is revoked"):
        client.install(fresh, "acme/weather", store="team", consent=lambda *a: True)
    with pytest.raises(client.StoreError, match="was revoked: leaks the API key"):
        client.install(fresh, "acme/weather", store="team", version="0.1.0", consent=lambda *a: True)


def test_a_run_checks_for_revocations_when_its_last_check_is_too_old(world):
    revoke_as_admin(world.url, "acme/weather", "0.1.0", "malware report 42", ADMIN)
    refused = call(world, PLUGDECK_STORE_MAX_AGE="0")
    assert refused.returncode == 1 and "revoked: malware report 42" in refused.stderr
    entry = lock.read(world.home)["packages"]["acme/weather"]
    assert entry["disabled"] == "revoked: malware report 42"


def test_a_stale_check_with_the_store_unreachable_refuses_the_plugin(world, tmp_path):
    known = json.loads(client.stores_path(world.home).read_text())
    known["stores"]["team"]["url"] = "http://127.0.0.1:9"  # nothing listens there
    client.stores_path(world.home).write_text(json.dumps(known))
    refused = call(world, PLUGDECK_STORE_MAX_AGE="0")
    assert refused.returncode == 1 and "could not be checked" in refused.stderr
    assert call(world).returncode == 0  # within the default day it still runs


def test_only_the_admin_revokes_as_the_store_and_a_publisher_only_in_its_namespace(world, tmp_path):
    with pytest.raises(PublishError, match="needs its admin token"):
        revoke_as_admin(world.url, "acme/weather", "0.1.0", "no", "wrong")
    other = keys.generate(tmp_path / "other.pem")
    other_token = register(world.url, "other", other, ADMIN)
    with pytest.raises(PublishError):
        revoke(world.url, "acme/weather", "0.1.0", "sabotage", other, other_token)
    assert audit(world.home)[0]["status"] == "ok"
