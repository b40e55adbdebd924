"""A key's runs are its own (issue 11 item 9, R17): another key can neither read, follow, confirm nor
cancel them, by full id or by prefix, whether the run is in flight or only in the run store, and every
refusal is word for word the answer for a run that does not exist. Prefixes resolve among the
caller's own runs, so "more than one run starts with ..." never tells a key that others' runs exist."""

from __future__ import annotations

import os

import httpx

from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import ORDER, order_turns, plugdeck, start_server, stored_run, wait_for


def create_key(env, *args) -> str:
    made = plugdeck(env, "keys", "create", *args)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def as_missing(response: httpx.Response, run_id: str, missing: str) -> tuple[int, str]:
    """The response with the asked id spelled like `missing`: comparable with a missing run's answer."""
    return response.status_code, response.text.replace(run_id, missing)


def test_another_keys_run_answers_like_no_run_on_every_route(env, pizzeria):
    key_a = create_key(env, "--plugins", "pizzeria", "--name", "a")
    key_b = create_key(env, "--plugins", "pizzeria", "--name", "b")
    a, b = ({"Authorization": f"Bearer {key}"} for key in (key_a, key_b))
    order, placed = order_turns()
    turns = [order, "A's second answer", "B's answer", {"fault": "hang"}, placed]
    with MockOpenAI(turns) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["pizzeria"])) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        waiting = client.post("/api/runs", json={"message": "order for Ada"}, headers=a).json()
        assert waiting["status"] == "waiting"
        action = waiting["pending"][0]["id"]
        second = client.post("/api/runs", json={"message": "hello"}, headers=a).json()
        own_b = client.post("/api/runs", json={"message": "hello"}, headers=b).json()
        prefix = os.path.commonprefix([waiting["id"], second["id"], own_b["id"]])
        stored_run(env, second["id"], "ok")
        stored_run(env, own_b["id"], "ok")

        def refused_like_missing(run_id: str) -> None:
            missing = "f" * len(run_id)
            for method, path, body in (("GET", "/api/runs/{}", None), ("GET", "/api/runs/{}/events", None),
                                       ("POST", "/api/runs/{}/actions/" + action, {"approve": True}),
                                       ("POST", "/api/runs/{}/cancel", None)):
                theirs = client.request(method, path.format(run_id), json=body, headers=b)
                nothing = client.request(method, path.format(missing), json=body, headers=b)
                assert theirs.status_code == 404, (path, theirs.text)
                assert as_missing(theirs, run_id, missing) == as_missing(nothing, missing, missing), path

        # In flight (the live registry) and waiting for a person: full id and prefixes.
        refused_like_missing(waiting["id"])
        refused_like_missing(waiting["id"][:len(prefix) + 9])
        # B's prefix search finds B's own run, whatever A has under the same prefix.
        assert client.get(f"/api/runs/{prefix}", headers=b).json()["id"] == own_b["id"]
        ambiguous = client.get(f"/api/runs/{prefix}", headers=a)
        assert ambiguous.status_code == 404 and "more than one run" in ambiguous.text  # A's own two runs

        # Only in the run store: finished, and parked (the server let go of the waiting run).
        server.state.live.keep_finished = server.state.live.pending_ttl = 0
        server.state.live.sweep()
        assert server.state.live.live() == []
        refused_like_missing(second["id"])
        refused_like_missing(waiting["id"])
        refused_like_missing(waiting["id"][:-3])
        assert httpx.get(f"{pizzeria}/orders/1001").status_code == 404  # B's approvals did nothing
        assert stored_run(env, waiting["id"])["status"] == "waiting"

        # Running: B's cancel is refused like a missing run's; the run goes on until A cancels it.
        with client.stream("POST", "/api/runs?stream=true", json={"message": "slow"}, headers=a) as stream:
            running = stream.headers["x-plugdeck-run-id"]
            refused_like_missing(running)
            assert server.state.live.get(running).status == "running"
            assert client.post(f"/api/runs/{running}/cancel", headers=a).json()["status"] == "cancelled"

        # A, the owner, still decides its parked run.
        approved = client.post(f"/api/runs/{waiting['id'][:-3]}/actions/{action}", json={"approve": True}, headers=a)
        assert approved.status_code == 200, approved.text
        wait_for(lambda: httpx.get(f"{pizzeria}/orders/1001").status_code == 200)
        assert httpx.get(f"{pizzeria}/orders/1001").json()["customer_name"] == ORDER["customer_name"]
