"""The web page in real headless Chromium (Debian's, through Playwright) against `plugdeck serve`: chat
with a tool call and its steps, approve a pending order with the exact arguments shown, open the
run's timeline, browse plugins, upload a document; model and tool text never become HTML. Screenshots
go to tests/artifacts/server/."""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mock_openai import MockOpenAI
from serverkit import ORDER, ROOT, plugdeck

pytest.importorskip("playwright")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts" / "server"

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


class HeaderSpy:
    """Another web server on 127.0.0.1: it answers every GET and keeps the request headers it got."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(str(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(b"<p>another local site</p>")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Listener:
    """A loopback port that only counts who connects: any image or script the page would fetch from it."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._count, daemon=True).start()

    def _count(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


@pytest.fixture
def browser(tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    home = tmp_path / "browser-home"
    home.mkdir()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            env={**os.environ, "HOME": str(home)}, viewport={"width": 1400, "height": 900})
        yield context
        context.close()


def watch(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.click("#send")


def test_chat_approve_and_timeline(env, serve, pizzeria, browser, tmp_path):
    exfil = Listener()
    hostile = (f'<img src="{exfil.url}/img.png" onerror="window.__xss=1"> ![chart]({exfil.url}/md.png) '
               '<script>window.__xss=2</script> done')
    turns = [
        {"tool_calls": [{"name": "calculate", "arguments": {"expression": "17.5% of 2340 + 12"}}]},
        "That is 421.5.",
        {"tool_calls": [{"name": "place_order", "arguments": ORDER}]},
        "Your order 1001 is placed: 17.00 EUR.",
        {"tool_calls": [{"name": "calculate", "arguments": {"expression": f"<img src={exfil.url}/t.png>"}}]},
        hostile,
    ]
    with MockOpenAI(turns) as mock:
        server = serve("--base-url", mock.base_url, "--model", "mock-model", "--plugin", "calculator",
                       "--plugin", "pizzeria", "--planner", "loop")
        page = browser.new_page()
        problems = watch(page)
        page.goto(server.url + "/")
        page.wait_for_selector("#agent option[value=plugdeck]", state="attached")
        assert page.text_content("#who") == "person (local)"

        # 1. A question answered with a tool call: the answer streams in, each step beside it.
        ask(page, "What is 17.5% of 2,340, plus 12?")
        page.wait_for_selector(".msg.assistant .meta.status-ok")
        assert page.text_content(".msg.assistant").startswith("That is 421.5.")
        tool = page.locator("details.step.tool").first
        assert "calculator.calculate" in tool.locator("summary").text_content()
        assert json.loads(tool.locator("pre").first.text_content()) == {"expression": "17.5% of 2340 + 12"}
        assert "421.5" in tool.locator("pre").nth(1).text_content()
        assert page.locator("details.step.model").count() == 2
        assert "ms" in page.locator("details.step.model summary .time").first.text_content()
        page.screenshot(path=str(ARTIFACTS / "chat-tool-call.png"), full_page=True)

        # 2. An order waits for a person, who sees exactly what will be sent, and approves it.
        ask(page, "Order two margheritas for 19:00, name Ada")
        card = page.wait_for_selector(".pending")
        assert "pizzeria.place_order" in card.text_content()
        assert json.loads(page.text_content(".pending pre.arguments")) == ORDER
        assert httpx.get(f"{pizzeria}/orders/1001").status_code == 404  # nothing ordered before the OK
        page.screenshot(path=str(ARTIFACTS / "pending-action.png"), full_page=True)
        page.click(".pending button.approve")
        page.wait_for_selector(".pending.decided")
        page.wait_for_selector(".msg.assistant >> nth=1 >> .meta.status-ok")
        assert "Your order 1001 is placed" in page.locator(".msg.assistant").nth(1).text_content()
        assert httpx.get(f"{pizzeria}/orders/1001").json()["total"] == 17.0
        page.screenshot(path=str(ARTIFACTS / "approved.png"), full_page=True)

        # 3. The run's timeline: model calls, the tool call and the wait for a person, on one time axis.
        page.locator(".msg.assistant").nth(1).locator("a", has_text="timeline").click()
        page.wait_for_selector("#run-detail .timeline .lane")
        assert page.url.startswith(f"{server.url}/runs/")
        bars = {kind: page.locator(f"#run-detail .bar-{kind}").count() for kind in ("model", "tool", "wait")}
        assert bars == {"model": 2, "tool": 1, "wait": 1}
        assert "pizzeria.place_order" in page.text_content("#run-detail .timeline")
        assert page.locator("#runs-table tbody tr").count() == 2
        page.screenshot(path=str(ARTIFACTS / "timeline.png"), full_page=True)
        page.reload()  # a run's address opens it directly (and the chat starts afresh)
        page.wait_for_selector("#run-detail .timeline .lane")

        # 4. Plugins and their tools.
        page.click("nav a[data-view=plugins]")
        page.wait_for_selector(".plugin")
        plugins = page.text_content("#plugins")
        assert "calculator.calculate" in plugins and "pizzeria.place_order" in plugins
        page.screenshot(path=str(ARTIFACTS / "plugins.png"), full_page=True)

        # 5. Model and tool text with HTML in it stays text: no element, no request, no script.
        page.click("nav a[data-view=chat]")
        ask(page, "Show me a chart")
        page.wait_for_selector("#messages .msg.assistant >> nth=-1 >> .meta.status-ok")
        assert page.locator("#messages .msg.assistant").last.text_content().startswith(hostile)
        assert page.locator("#steps").text_content().count("<img") >= 1  # the tool's error, shown as text
        assert page.locator("img").count() == 0 and page.locator("#messages script").count() == 0
        assert page.evaluate("window.__xss") is None
        assert exfil.connections == 0
        page.screenshot(path=str(ARTIFACTS / "hostile-text.png"), full_page=True)
        assert problems == [], problems


def test_upload_a_document_to_a_knowledge_base(env, serve, browser, tmp_path):
    server = serve("--plugin", "calculator")
    document = tmp_path / "leave.md"
    document.write_text("# Leave\n\nNew employees get 25 days of paid vacation per year.\n")
    page = browser.new_page()
    problems = watch(page)
    page.goto(server.url + "/knowledge")
    page.wait_for_selector("#kb-list p")
    page.fill("#kb-name", "handbook")
    page.set_input_files("#kb-files", str(document))
    page.click("#upload-form button")
    page.wait_for_selector("#upload-report >> text=1 new", timeout=120_000)
    page.wait_for_selector("#kb-list .kb >> text=handbook")
    page.screenshot(path=str(ARTIFACTS / "knowledge-upload.png"), full_page=True)
    found = httpx.get(f"{server.url}/api/kb/handbook/search", params={"q": "vacation days"}, timeout=60).json()
    assert "25 days" in found[0]["text"]
    assert problems == [], problems


def test_with_keys_the_page_signs_in_through_the_printed_link(env, serve, browser):
    assert plugdeck(env, "keys", "create", "--plugins", "calculator").returncode == 0
    server = serve("--plugin", "calculator")
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("#login:not([hidden])")
    assert page.locator("#view-chat").is_hidden()
    page.screenshot(path=str(ARTIFACTS / "sign-in.png"))
    page.goto(server.page)  # the link plugdeck serve printed: the page keeps the token, the address loses it
    page.wait_for_selector("#agent option[value=plugdeck]", state="attached")
    assert "token" not in page.url and "session" not in page.url and page.text_content("#who") == "person (page)"
    ask(page, "what is 6*7")
    page.wait_for_selector(".msg.assistant .meta.status-ok")
    assert page.text_content(".msg.assistant").startswith("42")

    # The token is the page origin's own: no cookie, so another web server on 127.0.0.1 (any port) that
    # the person opens never receives it; a new tab of the page itself is still signed in.
    token = server.page.partition("?token=")[2]
    assert page.context.cookies() == []
    with HeaderSpy() as other:
        elsewhere = browser.new_page()
        elsewhere.goto(f"http://127.0.0.1:{other.port}/")
        assert other.seen and not any(token in header for header in other.seen)
    again = browser.new_page()
    again.goto(server.url + "/")
    again.wait_for_selector("#agent option[value=plugdeck]", state="attached")
    assert again.text_content("#who") == "person (page)"


def test_api_docs_render_from_this_server_only(env, serve, browser):
    server = serve("--plugin", "calculator")
    page = browser.new_page()
    problems = watch(page)
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server.url) else None)
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path[data-path='/v1/chat/completions']")
    paths = page.eval_on_selector_all(".swagger-ui .opblock-summary-path", "els => els.map(e => e.dataset.path)")
    assert "/api/runs/{run_id}/actions/{action_id}" in paths and "/api/kb/{name}/documents" in paths
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=True)
    assert outside == [] and problems == [], (outside, problems)


# Every text the page ever puts on screen, however briefly: a draft shown and then replaced counts.
RECORD_TEXT = """
window.__shown = [];
for (const proto of [Node.prototype]) {
  const property = Object.getOwnPropertyDescriptor(proto, "textContent");
  Object.defineProperty(proto, "textContent", { ...property, set(value) { window.__shown.push(String(value));
                                                                         property.set.call(this, value); } });
}
"""


def test_chat_shows_only_the_checked_answer(env, serve, browser, tmp_path):
    """numbers = "refuse": the draft with a made-up number never appears, not even while it streams (item 14)."""
    (tmp_path / "plugdeck.toml").write_text('[policy.answers]\nnumbers = "refuse"\n')
    draft = "The total for your order is 455.22 euros, tax included."
    with MockOpenAI([draft]) as mock:
        server = serve("--base-url", mock.base_url, "--model", "mock-model", "--plugin", "calculator")
        page = browser.new_page()
        problems = watch(page)
        page.add_init_script(RECORD_TEXT)
        page.goto(server.url + "/")
        page.wait_for_selector("#agent option[value=plugdeck]", state="attached")
        ask(page, "What is my total?")
        page.wait_for_selector(".msg.assistant .meta.status-ok")
        assert page.text_content(".msg.assistant").startswith("I can't give this answer")
        shown = page.evaluate("window.__shown")
        assert any("I can't give this answer" in text for text in shown)
        assert not [text for text in shown if "455.22 euros" in text]
        assert "455.22 euros" not in page.text_content("#view-chat")
        page.screenshot(path=str(ARTIFACTS / "checked-answer.png"), full_page=True)
        assert problems == [], problems
