"""The pizzeria example end to end: the real service on a free loopback port, its OpenAPI spec as a
plugdeck plugin, an agent run that orders (with a person's OK), and the CLI as a user types it."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from plugdeck.agent.agent import Agent
from plugdeck.models.scripted import ScriptedModel
from plugdeck.plugins.openapi import BlockedURL, guard_for, load_source, openapi_plugin
from plugdeck.plugins.openapi.operations import count_operations
from plugdeck.tools import ToolError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "pizzeria"


def _server_module():
    if "pizzeria_server" not in sys.modules:  # the example is a script, not a package: load it by path
        spec = importlib.util.spec_from_file_location("pizzeria_server", EXAMPLE / "server.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["pizzeria_server"]


@pytest.fixture
def pizzeria():
    httpd = _server_module().make_server(port=0, quiet=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def plugin_for(httpd):
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    return openapi_plugin(str(EXAMPLE / "openapi.yaml"), name="pizzeria", base_url=url, allow_private=["127.0.0.1"])


TWO_MARGHERITAS = {"items": [{"pizza": "margherita", "quantity": 2}], "pickup_time": "19:00", "customer_name": "Ada"}


async def test_menu_order_and_status(pizzeria):
    plugin = plugin_for(pizzeria)
    assert {t.name: t.effect for t in plugin.tools} == {"list_menu": "read", "place_order": "write", "get_order": "read"}
    menu = await plugin.tool("list_menu").call({})
    assert menu["status"] == 200 and {"name": "margherita", "price": 8.5} .items() <= menu["body"]["pizzas"][0].items()
    placed = await plugin.tool("place_order").call(TWO_MARGHERITAS)
    order = placed["body"]
    assert placed["status"] == 201 and order["total"] == 17.0 and order["status"] == "received"
    assert order["items"] == [{"pizza": "margherita", "quantity": 2, "unit_price": 8.5, "line_total": 17.0}]
    fetched = await plugin.tool("get_order").call({"order_id": order["id"]})
    assert fetched["body"]["id"] == order["id"] and fetched["body"]["pickup_time"] == "19:00"


async def test_the_idempotency_key_places_an_order_once(pizzeria):
    plugin = plugin_for(pizzeria)
    first = await plugin.tool("place_order").call({**TWO_MARGHERITAS, "Idempotency-Key": "order-42"})
    again = await plugin.tool("place_order").call({**TWO_MARGHERITAS, "Idempotency-Key": "order-42"})
    assert first["body"]["id"] == again["body"]["id"] and len(pizzeria.RequestHandlerClass.shop.orders) == 1
    with pytest.raises(ToolError, match="HTTP 409.*already used for a different order"):
        await plugin.tool("place_order").call({**TWO_MARGHERITAS, "pickup_time": "20:00", "Idempotency-Key": "order-42"})


async def test_mistakes_come_back_as_clear_errors(pizzeria):
    plugin = plugin_for(pizzeria)
    with pytest.raises(ToolError, match="HTTP 422.*no pizza 'hawaii' on the menu \\(we have: margherita"):
        await plugin.tool("place_order").call({"items": [{"pizza": "hawaii", "quantity": 1}], "pickup_time": "19:00"})
    with pytest.raises(ToolError, match="invalid arguments.*pickup_time"):  # the spec's pattern, checked before sending
        await plugin.tool("place_order").call({"items": [{"pizza": "margherita", "quantity": 1}], "pickup_time": "7pm"})
    with pytest.raises(ToolError, match="HTTP 404.*there is no order 999"):
        await plugin.tool("get_order").call({"order_id": 999})
    assert pizzeria.RequestHandlerClass.shop.orders == {}


def test_the_spec_can_be_added_from_its_url(pizzeria):
    url = f"http://127.0.0.1:{pizzeria.server_address[1]}/openapi.yaml"
    with pytest.raises(BlockedURL, match="loopback"):
        load_source(url, guard_for({}))
    spec, _ = load_source(url, guard_for({"allow_private": ["127.0.0.1"]}))
    assert spec.url == url and spec.title == "Pizzeria" and count_operations(spec) == 3


async def test_an_agent_orders_with_a_persons_ok(pizzeria):
    plugin = plugin_for(pizzeria)
    approved = []

    def confirm(action):
        approved.append(action)
        return True

    model = ScriptedModel([
        {"tool_calls": [{"name": "list_menu", "arguments": {}}]},
        {"tool_calls": [{"name": "place_order", "arguments": {
            "items": [{"pizza": "margherita", "quantity": 2}], "pickup_time": "19:00"}}]},
        lambda messages, tools: "Order " + str(json.loads(messages[-1]["content"])["body"]["id"]) + " is placed.",
    ])
    agent = Agent(model, [plugin], confirm=confirm)
    run = await agent.run("Order two margherita pizzas for pickup at 7pm")
    assert run.status == "ok", run.error
    orders = pizzeria.RequestHandlerClass.shop.orders
    assert len(orders) == 1 and run.answer == f"Order {next(iter(orders))} is placed."
    assert [a.tool for a in approved] == ["pizzeria.place_order"]
    assert approved[0].arguments == {"items": [{"pizza": "margherita", "quantity": 2}], "pickup_time": "19:00"}
    # The approved action's id went along as the Idempotency-Key: a retried approval cannot order twice.
    assert list(pizzeria.RequestHandlerClass.shop.idempotency) == [approved[0].id]


# ---- the CLI, as a user types it ------------------------------------------------------------------------


def plugdeck(env, *args):
    return subprocess.run([sys.executable, "-m", "plugdeck.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def pizzeria_process():
    process = subprocess.Popen([sys.executable, str(EXAMPLE / "server.py"), "--port", "0", "--quiet"],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert "pizzeria listening on http://127.0.0.1:" in line, line
    yield line.split()[3]
    process.terminate()
    process.wait(timeout=10)


def test_cli_add_then_call(cli_env, pizzeria_process):
    url = pizzeria_process
    spec = str(EXAMPLE / "openapi.yaml")
    refused = plugdeck(cli_env, "plugins", "add", "openapi", spec, "--name", "pizzeria", "--base-url", url)
    assert refused.returncode == 1 and "loopback" in refused.stderr and "--allow-private" in refused.stderr
    assert "Traceback" not in refused.stderr
    added = plugdeck(cli_env, "plugins", "add", "openapi", spec, "--name", "pizzeria", "--base-url", url,
                     "--allow-private")
    assert added.returncode == 0, added.stderr
    for row in (r"pizzeria.list_menu\s+GET\s+/menu\s+read", r"pizzeria.place_order\s+POST\s+/orders\s+write",
                r"pizzeria.get_order\s+GET\s+/orders/\{order_id\}\s+read"):
        assert re.search(row, added.stdout), added.stdout
    menu = plugdeck(cli_env, "tools", "call", "pizzeria.list_menu", "{}")
    assert menu.returncode == 0, menu.stderr
    assert json.loads(menu.stdout)["body"]["pizzas"][0]["name"] == "margherita"
    missing = plugdeck(cli_env, "tools", "call", "pizzeria.get_order", '{"order_id": 4242}')
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr and "no order 4242" in missing.stderr
    listed = json.loads(plugdeck(cli_env, "plugins", "--json").stdout)
    pizzeria = next(p for p in listed if p["name"] == "pizzeria")
    assert pizzeria["effect"] == "write" and pizzeria["needs"]["network"] == [url]
    again = plugdeck(cli_env, "plugins", "add", "openapi", spec, "--name", "pizzeria", "--base-url", url,
                     "--allow-private")
    assert again.returncode == 1 and "already added" in again.stderr


def test_cli_add_refuses_bad_input_clearly(cli_env, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("openapi: 3.0.0\npaths: [\n")
    result = plugdeck(cli_env, "plugins", "add", "openapi", str(broken))
    assert result.returncode == 1 and "broken.yaml is neither valid JSON nor valid YAML" in result.stderr
    secret_typed = plugdeck(cli_env, "plugins", "add", "openapi", str(EXAMPLE / "openapi.yaml"), "--allow-private",
                            "--auth", "nope=sk-live-123")
    assert secret_typed.returncode == 1 and "sk-live-123" not in secret_typed.stderr
    assert not (tmp_path / "data" / "plugins.json").exists()


def test_the_readme_ordering_walkthrough(cli_env, pizzeria_process, tmp_path):
    """plugins add openapi, then ask with an LLM: the order waits for the person; --yes approves it once."""
    from mock_openai import MockOpenAI

    url = pizzeria_process
    added = plugdeck(cli_env, "plugins", "add", "openapi", str(EXAMPLE / "openapi.yaml"), "--name", "pizzeria",
                     "--base-url", url, "--allow-private")
    assert added.returncode == 0, added.stderr
    order = {"items": [{"pizza": "margherita", "quantity": 2}], "pickup_time": "19:00"}
    turns = [{"tool_calls": [{"name": "place_order", "arguments": order}]}, {"text": "Done."}]
    question = "Order two margherita pizzas for pickup at 7pm"
    with MockOpenAI(turns * 2) as mock:
        ask = ["ask", "--base-url", mock.base_url, "--model", "m", question]
        refused = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", *ask], env=cli_env, capture_output=True,
                                 text=True, timeout=60, stdin=subprocess.DEVNULL)
        # The person sees exactly what would be sent, and in a script nothing is sent without --yes.
        assert f"place_order: POST {url}/orders" in refused.stderr and '"quantity": 2' in refused.stderr
        assert "not approved" in refused.stderr
        assert httpx.get(f"{url}/orders/1001").status_code == 404
        approved = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", *ask, "--yes"], env=cli_env,
                                  capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert approved.returncode == 0 and "approved (--yes)" in approved.stderr
    placed = httpx.get(f"{url}/orders/1001").json()
    assert [(i["pizza"], i["quantity"]) for i in placed["items"]] == [("margherita", 2)]
    assert httpx.get(f"{url}/orders/1002").status_code == 404  # exactly one order
