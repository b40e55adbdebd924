"""A run the server left waiting is decided from the command line, in another process, through the run
store: `plugdeck runs pending` shows the action, `plugdeck runs decide` carries the run on there."""

from __future__ import annotations

import json

import httpx

from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import ORDER, order_turns, plugdeck, start_server, stored_run


def test_a_run_waiting_in_the_server_is_decided_by_the_cli(env, client, pizzeria):
    with MockOpenAI(order_turns()) as mock, start_server(AgentSetup(model="mock-model", base_url=mock.base_url,
                                                                    plugins=["pizzeria"])) as server:
        waiting = client.post(f"{server.url}/api/runs", json={"message": "order two margheritas"}).json()
        assert waiting["status"] == "waiting"
        (action,) = waiting["pending"]
        assert action["arguments"] == ORDER
        assert stored_run(env, waiting["id"], "waiting")

        pending = plugdeck(env, "runs", "pending", "--json")
        assert [a["id"] for a in json.loads(pending.stdout)] == [action["id"]]
        wrong = plugdeck(env, "runs", "decide", waiting["id"], "act_forged", "--approve")
        assert wrong.returncode == 1 and "does not wait for a decision" in wrong.stderr and "Traceback" not in wrong.stderr

        decided = plugdeck(env, "runs", "decide", waiting["id"], action["id"], "--approve", "--json")
        assert decided.returncode == 0, decided.stderr
        result = json.loads(decided.stdout)
        assert result["status"] == "ok" and result["answer"] == "Your order is placed."
        assert len(httpx.get(f"{pizzeria}/orders/1001").json()["items"]) == 1  # ordered once, by the CLI
        again = plugdeck(env, "runs", "decide", waiting["id"], action["id"], "--approve")
        assert again.returncode == 1 and "nothing of it waits" in again.stderr
        assert stored_run(env, waiting["id"], "ok")["answer"] == "Your order is placed."
