"""The store as a person uses it, every step a real `plugdeck` process: serve, keygen, publish, search,
install (consent, lock), call the tool; then a changed installed file is refused at run time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import httpx
import pytest
from store_kit import PLUGDECK, plugdeck, weather_project

pytest.importorskip("tuf")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("store-flow")
    env = {**os.environ, "PLUGDECK_HOME": str(base / "home"), "HOME": str(base / "user"),
           "XDG_CONFIG_HOME": str(base / "user" / ".config")}
    with socket.socket() as s:  # a free port, handed to the server (closed again at once)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*PLUGDECK, "store", "serve", "--port", str(port), "--dir", str(base / "registry")],
                              env=env, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/v1/search", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, server.stderr.read() if server.poll() else "slow"
        time.sleep(0.1)
    yield {"env": env, "url": url, "base": base, "project": weather_project(base)}
    server.terminate()
    server.wait(10)


def run(world, *args, **kw):
    return plugdeck(world["env"], *args, **kw)


def test_publish_with_a_fresh_key(world):
    made = run(world, "store", "keygen", "acme")
    assert made.returncode == 0, made.stderr
    assert oct((world["base"] / "home" / "store" / "keys" / "acme.pem").stat().st_mode & 0o777) == "0o600"
    done = run(world, "store", "publish", str(world["project"]), "--store", world["url"], "--key", "acme")
    assert done.returncode == 0, done.stderr
    assert "published acme/weather 0.1.0 (1 tools)" in done.stdout


def test_search_finds_it_by_words_of_its_tools(world):
    done = run(world, "store", "search", "weather forecast", "--store", world["url"], "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["name"] for r in results] == ["acme/weather"]
    assert results[0]["tools"][0]["name"] == "forecast"
    assert results[0]["permissions"]["network"] == ["api.weather.example"]
    none = run(world, "store", "search", "spreadsheet", "--store", world["url"], "--json")
    assert json.loads(none.stdout) == []


def test_install_without_a_terminal_needs_yes_and_installs_nothing(world):
    done = run(world, "install", "acme/weather", "--store", world["url"])
    assert done.returncode == 1
    assert "needs a person's OK" in done.stderr
    assert not (world["base"] / "home" / "plugdeck.lock").exists()


def test_add_store_shows_and_pins_the_root_fingerprint(world):
    served = httpx.get(f"{world['url']}/tuf/metadata/1.root.json").content
    import hashlib

    fingerprint = "sha256:" + hashlib.sha256(served).hexdigest()
    wrong = run(world, "store", "add", "team", world["url"], "--fingerprint", "sha256:" + "0" * 64)
    assert wrong.returncode == 1 and "not the" in wrong.stderr
    done = run(world, "store", "add", "team", world["url"], "--fingerprint", fingerprint)
    assert done.returncode == 0, done.stderr
    assert fingerprint in done.stdout


def test_install_shows_tools_and_permissions_then_pins_it(world):
    done = run(world, "install", "acme/weather", "--store", "team", "--yes")
    assert done.returncode == 0, done.stderr
    for shown in ("weather.forecast [read]: Tomorrow's forecast for a city.", "network: api.weather.example",
                  "secrets: WEATHER_KEY", "filesystem: none", "signed by namespace 'acme'"):
        assert shown in done.stderr
    lock = json.loads((world["base"] / "home" / "plugdeck.lock").read_text())
    entry = lock["packages"]["acme/weather"]
    assert entry["version"] == "0.1.0" and set(entry["tools"]) == {"forecast"}
    assert entry["tools"]["forecast"].startswith("sha256:") and len(entry["artifact"]["sha256"]) == 64
    assert "lib/plugdeck_weather/__init__.py" in entry["files"]


def test_the_installed_tool_runs(world):
    done = run(world, "tools", "call", "weather.forecast", '{"city": "Berlin"}')
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Sunny in Berlin, 21 C"


def test_a_changed_installed_file_is_refused(world):
    module = world["base"] / "home" / "store" / "packages" / "acme" / "weather" / "0.1.0" / "lib" / "plugdeck_weather" \
        / "__init__.py"
    original = module.read_text()
    module.write_text(original.replace("Sunny", "Stormy"))
    try:
        done = run(world, "tools", "call", "weather.forecast", '{"city": "Berlin"}')
        assert done.returncode == 1
        assert "no longer matches plugdeck.lock" in done.stderr
        assert "Stormy" not in done.stdout
    finally:
        module.write_text(original)


def test_rotate_root_from_the_command_line(tmp_path, world):
    from plugdeck.store.repo import Repository

    folder = tmp_path / "registry"
    Repository.create(folder)
    done = run(world, "store", "rotate-root", "--dir", str(folder), "--old-key", str(folder / "keys" / "root.pem"),
               "--new-key", str(tmp_path / "root-2.pem"))
    assert done.returncode == 0, done.stderr
    root = json.loads((folder / "metadata" / "2.root.json").read_text())
    assert len(root["signatures"]) == 2 and root["signed"]["version"] == 2
    again = run(world, "store", "rotate-root", "--dir", str(folder), "--old-key", str(folder / "keys" / "root.pem"),
                "--new-key", str(tmp_path / "root-3.pem"))
    assert again.returncode == 1 and "is not the current root key" in again.stderr
