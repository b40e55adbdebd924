"""The plugin store in the server, for the operator only: its REST routes with httpx (a key gets 403 on
every one; the operator adds a store after checking its root fingerprint, searches, reads a package's
page, sees the TUF-verified consent view, installs exactly what was shown, and the tool then runs in
its sandbox), and the Store view in real headless Chromium: add, search, open, review, install.
A real registry on loopback; `plugdeck serve` as a user runs it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from serverkit import ROOT, page_session, plugdeck

pytest.importorskip("tuf")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_kit import RegistryThread, weather_project  # noqa: E402

ARTIFACTS = ROOT / "tests" / "artifacts" / "server"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry on loopback with acme/weather 0.1.0 published."""
    from plugdeck.store import keys
    from plugdeck.store.publish import build, register, upload

    base = tmp_path_factory.mktemp("store-page")
    with RegistryThread(base / "registry") as reg:
        signer = keys.generate(base / "acme.pem")
        upload(reg.url, build(weather_project(base), "acme"), signer, register(reg.url, "acme", signer))
        yield reg


def lock_of(env) -> dict:
    path = Path(env["PLUGDECK_HOME"]) / "plugdeck.lock"
    return json.loads(path.read_text())["packages"] if path.exists() else {}


def test_the_store_routes_are_the_operators_and_install_is_what_was_consented_to(env, serve, registry):
    made = plugdeck(env, "keys", "create", "--plugins", "*")
    assert made.returncode == 0, made.stderr
    key = {"Authorization": f"Bearer {made.stdout.strip()}"}
    server = serve("--plugin", "calculator")
    with httpx.Client(base_url=server.url, timeout=120) as web:
        me = {**page_session(web.get(server.page)), "X-Requested-With": "plugdeck"}  # as the page sends it
        ref = {"package": "acme/weather", "store": "team", "version": "0.1.0"}
        for method, path, body in [("GET", "/api/store/stores", None),
                                   ("POST", "/api/store/stores/preview", {"url": registry.url}),
                                   ("POST", "/api/store/stores", {"url": registry.url, "name": "team",
                                                                  "fingerprint": "sha256:" + "0" * 64}),
                                   ("GET", "/api/store/search?q=weather", None),
                                   ("GET", "/api/store/packages/acme/weather", None),
                                   ("POST", "/api/store/consent", ref),
                                   ("POST", "/api/store/install", {**ref, "manifest_sha256": "0" * 64})]:
            refused = web.request(method, path, json=body, headers=key)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["error"]["code"] == "operator_only"
        assert web.get("/api/store/stores").status_code == 401  # and no credentials at all: not even that

        seen = web.post("/api/store/stores/preview", json={"url": registry.url}, headers=me)
        assert seen.status_code == 200, seen.text
        seen = seen.json()
        assert seen["fingerprint"].startswith("sha256:")
        wrong = web.post("/api/store/stores", json={"url": registry.url, "name": "team",
                                                    "fingerprint": "sha256:" + "0" * 64}, headers=me)
        assert wrong.status_code == 400 and "not the" in wrong.json()["error"]["message"]
        added = web.post("/api/store/stores", json={"url": registry.url, "name": "team",
                                                    "fingerprint": seen["fingerprint"]}, headers=me)
        assert added.status_code == 201, added.text
        assert web.get("/api/store/stores", headers=me).json() == [
            {"name": "team", "url": registry.url, "fingerprint": seen["fingerprint"]}]

        found = web.get("/api/store/search", params={"q": "weather forecast"}, headers=me).json()
        assert [r["name"] for r in found["results"]] == ["acme/weather"] and found["store"] == "team"
        page = web.get("/api/store/packages/acme/weather", headers=me).json()
        assert page["publisher"] == "acme" and page["installed"] is None and page["latest"] == "0.1.0"
        assert page["versions"][0]["tools"][0]["name"] == "forecast"
        assert page["versions"][0]["permissions"]["network"] == ["api.weather.example"]
        assert web.get("/api/store/packages/acme/nothing", headers=me).status_code == 404

        shown = web.post("/api/store/consent", json=ref, headers=me).json()
        assert [(t["name"], t["effect"]) for t in shown["tools"]] == [("weather.forecast", "read")]
        assert shown["permissions"]["network"] == ["api.weather.example"]
        assert shown["permissions"]["secrets"] == ["WEATHER_KEY"] and shown["publisher"] == "acme"
        assert shown["blocking"] is False and len(shown["manifest_sha256"]) == 64

        stale = web.post("/api/store/install", json={**ref, "manifest_sha256": "f" * 64}, headers=me)
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "consent_stale"
        assert lock_of(env) == {}  # nothing written without consent to exactly this manifest
        bad = web.post("/api/store/install", json={**ref, "package": "../etc", "manifest_sha256": "f" * 64}, headers=me)
        assert bad.status_code == 400

        done = web.post("/api/store/install", json={**ref, "manifest_sha256": shown["manifest_sha256"]}, headers=me)
        assert done.status_code == 201, done.text
        assert done.json()["plugin"] == "weather" and done.json()["tools"] == ["forecast"]
        assert web.get("/api/store/packages/acme/weather", headers=me).json()["installed"]["version"] == "0.1.0"
    entry = lock_of(env)["acme/weather"]
    assert entry["version"] == "0.1.0" and entry["store"] == "team"
    ran = plugdeck(env, "tools", "call", "weather.forecast", '{"city": "Oslo"}', timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "Sunny in Oslo, 21 C"


@pytest.fixture
def browser(tmp_path):
    import os

    pytest.importorskip("playwright")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from test_page import ARGS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (tmp_path / "browser-home").mkdir()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            env={**os.environ, "HOME": str(tmp_path / "browser-home")}, viewport={"width": 1400, "height": 900})
        yield context
        context.close()


def test_the_operator_installs_from_the_store_view_with_consent(env, serve, registry, browser):
    server = serve("--plugin", "calculator")
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server.url + "/store")
    page.wait_for_selector("#store-stores p")  # no store yet
    assert page.locator("#nav-store").is_visible()
    page.fill("#store-url", registry.url)
    page.fill("#store-name", "team")
    page.click("#store-add-form button")
    fingerprint = httpx.post(f"{server.url}/api/store/stores/preview", json={"url": registry.url}).json()["fingerprint"]
    page.wait_for_selector(f"#store-add pre.fingerprint >> text={fingerprint}")
    page.click("#store-trust")
    page.wait_for_selector("#store-stores .store >> text=team")

    page.fill("#store-q", "weather")
    page.click("#store-search-form button")
    page.click("#store-results [data-package='acme/weather'] h3 a")
    page.wait_for_selector("#store-package h3 >> text=acme/weather")
    assert page.url.endswith("/store/acme/weather")
    assert "publisher: acme" in page.text_content("#store-package .facts")
    assert "not installed" in page.text_content("#store-installed")
    assert "network: api.weather.example" in page.text_content("#store-package .permissions")

    page.click("#store-review")
    page.wait_for_selector("#store-consent .consent")
    consent = page.text_content("#store-consent")
    for shown in ("Install acme/weather 0.1.0?", "signed by namespace acme", "weather.forecast",
                  "network: api.weather.example", "secrets: WEATHER_KEY", "filesystem: none"):
        assert shown in consent, shown
    assert lock_of(env) == {}  # reviewing installs nothing
    page.screenshot(path=str(ARTIFACTS / "store-consent.png"), full_page=True)
    page.click("#store-install")
    page.wait_for_selector("#store-install-status.ok", timeout=120_000)
    assert "installed acme/weather 0.1.0 as plugin weather" in page.text_content("#store-install-status")
    assert lock_of(env)["acme/weather"]["version"] == "0.1.0"
    page.reload()
    page.wait_for_selector("#store-installed >> text=installed: 0.1.0")
    assert problems == [], problems
