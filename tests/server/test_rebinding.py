"""DNS rebinding and cross-site requests, in real headless Chromium (Debian's, through Playwright).

`--host-resolver-rules` maps the attacker's names to 127.0.0.1: the state right after a rebinding.
The attacker's page is first served on a port by the attacker's own little HTTP server; then that
server goes away and plugdeck listens on the same port, so the page's fetch() calls are same-origin
requests to plugdeck under the attacker's name (no Origin to refuse, `Sec-Fetch-Site: same-origin`):
only the Host header tells them apart. Every call must be refused, and nothing may happen: no run
read, started or approved, no order placed, no model called.
"""

from __future__ import annotations

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import ORDER, order_turns, plugdeck, start_server, wait_for
from test_page import ARGS, CHROMIUM

pytest.importorskip("playwright")

ATTACKER_NAMES = ["127.0.0.1.rebind.attacker.example", "rebind.attacker.example", "localhost.attacker.example"]
RESOLVER = "--host-resolver-rules=" + ", ".join(f"MAP {name} 127.0.0.1" for name in [*ATTACKER_NAMES,
                                                                                     "attacker.example"])

# The attacker's script: every API call it can make to "its own" origin, with each answer as it saw it.
ATTACK_PAGE = """<!doctype html><title>cute cats</title><script>
async function call(method, path, body) {
  try {
    const headers = {"X-Requested-With": "plugdeck"};
    if (body) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {method, headers, body: body ? JSON.stringify(body) : undefined});
    return {status: r.status, body: (await r.text()).slice(0, 2000)};
  } catch (e) { return {status: 0, body: String(e)}; }
}
window.attack = async (runId, actionId) => ({
  list: await call("GET", "/api/runs"),
  read: await call("GET", `/api/runs/${runId}`),
  session: await call("GET", "/api/session"),
  approve: await call("POST", `/api/runs/${runId}/actions/${actionId}`, {approve: true}),
  follow: await call("GET", `/api/runs/${runId}/events`),
  start: await call("POST", "/api/runs", {message: "Order two margheritas for 19:00, name Mallory"}),
  cancel: await call("POST", `/api/runs/${runId}/cancel`),
  models: await call("GET", "/v1/models"),
  chat: await call("POST", "/v1/chat/completions", {model: "plugdeck", messages: [{role: "user", content: "hi"}]}),
  plugins: await call("GET", "/api/plugins"),
  page: await call("GET", "/"),
});
</script>"""


class AttackerSite:
    """The attacker's web server on 127.0.0.1:`port`, serving one page; `stop()` lets the port go."""

    def __init__(self, page: str, port: int = 0):
        body = page.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")  # the browser keeps no connection to this server
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(server, request, client_address):
                self.connections.append(request)
                super().process_request(request, client_address)

        self.connections: list[socket.socket] = []
        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for connection in self.connections:  # connections the browser opened ahead of need go too
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def browser(tmp_path):
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    home = tmp_path / "browser-home"
    home.mkdir()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=[*ARGS, RESOLVER],
            env={**os.environ, "HOME": str(home)})
        yield context
        context.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("name", ATTACKER_NAMES)
def test_a_rebound_page_gets_nothing_from_the_server(env, pizzeria, browser, client, name):
    attacker = AttackerSite(ATTACK_PAGE, _free_port())
    page = browser.new_page()
    page.goto(f"http://{name}:{attacker.port}/")
    assert page.title() == "cute cats"
    attacker.stop()  # ... and the name now leads to plugdeck: same name, same port, same origin for the page

    with MockOpenAI(order_turns(), default="ok") as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["pizzeria"]), port=attacker.port) as server:
        # The person's own run (no key made: the out-of-the-box local mode), waiting for their OK.
        waiting = client.post(f"{server.url}/api/runs", json={"message": "Order two margheritas for 19:00, name Ada"})
        run = waiting.json()
        assert run["status"] == "waiting", run
        action = run["pending"][0]["id"]
        calls_before = len(mock.requests)

        seen = page.evaluate("([run, action]) => attack(run, action)", [run["id"], action])

        refused = {what: answer["status"] for what, answer in seen.items()}
        assert refused == {what: 403 for what in seen}, seen
        assert all('"forbidden_host"' in answer["body"] for answer in seen.values()), seen
        assert not any(run["id"] in answer["body"] or "margherita" in answer["body"] for answer in seen.values())
        # Nothing happened: the run still waits, nothing was ordered, no other run, no model call.
        runs = client.get(f"{server.url}/api/runs").json()
        assert [(r["id"], r["status"]) for r in runs] == [(run["id"], "waiting")]
        assert httpx.get(f"{pizzeria}/orders/1001").status_code == 404
        assert len(mock.requests) == calls_before
        # The person, at the real loopback address, still can.
        approved = client.post(f"{server.url}/api/runs/{run['id']}/actions/{action}", json={"approve": True})
        assert approved.json()["status"] == "ok"
        assert httpx.get(f"{pizzeria}/orders/1001").json()["customer_name"] == ORDER["customer_name"]


# The attacker's page on its own origin, with the person signed in to plugdeck in the same browser:
# a form post (the classic CSRF, no CORS involved), fetch with credentials, and an image.
CSRF_PAGE = """<!doctype html><title>cute dogs</title>
<form id="f" method="post" action="{target}/api/runs" enctype="text/plain">
<input name='{{"message": "1+1", "x": "' value='"}}'></form>
<script>
window.attack = async () => {{
  const out = {{}};
  for (const [what, init] of [
      ["fetch_cors", {{method: "POST", credentials: "include", headers: {{"Content-Type": "application/json",
                       "X-Requested-With": "plugdeck"}}, body: JSON.stringify({{message: "1+1"}})}}],
      ["fetch_simple", {{method: "POST", credentials: "include", mode: "no-cors",
                         headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{message: "1+1"}})}}],
      ["fetch_get", {{credentials: "include"}}]]) {{
    try {{
      const r = await fetch("{target}/api/runs", init);
      out[what] = {{status: r.status, type: r.type}};
    }} catch (e) {{ out[what] = {{status: 0, error: String(e)}}; }}
  }}
  await new Promise(done => {{ const img = new Image(); img.onload = img.onerror = done;
                               img.src = "{target}/api/runs?as=img"; }});
  return out;
}};
</script>"""


@pytest.mark.parametrize("keys", [True, False], ids=["with-keys", "local-mode"])
def test_the_page_session_never_acts_for_another_origin(env, browser, client, keys):
    if keys:
        assert plugdeck(env, "keys", "create", "--plugins", "calculator").returncode == 0
    with MockOpenAI([], default="2") as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["calculator"])) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/?token={server.state.auth.session_token}")  # the person signs the page in
        page.wait_for_selector("#agent option[value=plugdeck]", state="attached")
        assert page.text_content("#who") == "person (page)"

        attacker = AttackerSite(CSRF_PAGE.format(target=server.url))
        try:
            evil = browser.new_page()
            evil.goto(f"http://attacker.example:{attacker.port}/")
            seen = evil.evaluate("attack()")
            with evil.expect_navigation():
                evil.evaluate("document.getElementById('f').submit()")
            form_answer = evil.content()
        finally:
            attacker.stop()

        assert [answer["status"] for answer in seen.values()] == [0, 0, 0], seen  # the browser gets nothing back
        assert "forbidden_origin" in form_answer and '"answer"' not in form_answer
        assert mock.requests == []  # no run started: the model was never asked
        assert server.state.live.live() == []
        signed_in = {"X-Plugdeck-Session": server.state.auth.session_token}
        with httpx.Client(base_url=server.url, headers=signed_in) as person:
            assert person.get("/api/runs").json() == []
            # The same session, from its own page, does act: the refusals above were about the origin.
            own = page.evaluate("""async () => (await fetch("/api/runs", {method: "POST", headers:
                {"Content-Type": "application/json", "X-Requested-With": "plugdeck",
                 "X-Plugdeck-Session": localStorage.getItem("plugdeck-session") || ""},
                body: JSON.stringify({message: "1+1"})})).status""")
            assert own == 200 and wait_for(lambda: len(person.get("/api/runs").json()) == 1)
