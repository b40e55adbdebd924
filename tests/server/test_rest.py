"""The REST API: start runs (JSON or SSE), list and read them, follow their events, approve and
reject pending actions, cancel, and see plugins and agents."""

from __future__ import annotations

import asyncio

import httpx

from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import ORDER, order_turns, sse_events, start_server, stored_run

CALC = {"tool_calls": [{"name": "calculate", "arguments": {"expression": "2^10 - 24"}}]}


def setup(mock, plugins=("calculator",)):
    return AgentSetup(model="mock-model", base_url=mock.base_url, plugins=list(plugins))


def test_a_run_as_json_and_as_events(env, client):
    with MockOpenAI([CALC, "It is 1000.", CALC, "Again 1000."]) as mock, start_server(setup(mock)) as server:
        done = client.post(f"{server.url}/api/runs", json={"message": "what is 2^10 - 24"}).json()
        assert done["status"] == "ok" and done["answer"] == "It is 1000." and done["pending"] == []
        assert done["usage"]["total_tokens"] > 0
        streamed = client.post(f"{server.url}/api/runs", json={"message": "once more?", "history": [
            {"role": "user", "content": "what is 2^10 - 24"}, {"role": "assistant", "content": "It is 1000."}]},
            headers={"Accept": "text/event-stream"})
        events = sse_events(streamed.text)
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "run_started" and kinds[-2:] == ["run_finished", "settled"]
        assert "tool_finished" in kinds and "text_delta" in kinds
        finished = dict(events)["tool_finished"]
        assert finished["tool"] == "calculator.calculate" and finished["result"]["result"] == "1000"
        called = dict(events)["model_called"]
        assert "messages" not in called and called["message_count"] >= 4  # history went in; not repeated here
        assert events[-1][1]["answer"] == "Again 1000." and events[-1][1]["id"] == streamed.headers["x-plugdeck-run-id"]


def test_runs_are_listed_read_and_replayed_from_the_store(env, client):
    with MockOpenAI([CALC, "It is 1000."]) as mock, start_server(setup(mock)) as server:
        run_id = client.post(f"{server.url}/api/runs", json={"message": "what is 2^10 - 24"}).json()["id"]
        assert stored_run(env, run_id, "ok")
        listed = client.get(f"{server.url}/api/runs").json()
        assert listed[0]["id"] == run_id and listed[0]["status"] == "ok" and listed[0]["tool_calls"] == 1
        detail = client.get(f"{server.url}/api/runs/{run_id[:14]}").json()
        assert detail["id"] == run_id and [e["type"] for e in detail["events"]][-1] == "run_finished"
        assert client.get(f"{server.url}/api/runs?status=error").json() == []
        server.state.live.keep_finished = 0
        server.state.live.sweep()  # out of memory: now it comes from the run store
        assert server.state.live.get(run_id) is None
        detail = client.get(f"{server.url}/api/runs/{run_id}").json()
        assert detail["status"] == "ok" and "messages" not in detail["events"][1]
        with_messages = client.get(f"{server.url}/api/runs/{run_id}?messages=true").json()
        assert with_messages["events"][1]["messages"][-1]["content"] == "what is 2^10 - 24"
        replay = sse_events(client.get(f"{server.url}/api/runs/{run_id}/events?after=2").text)
        assert [k for k, _ in replay][-2:] == ["run_finished", "settled"] and replay[0][0] != "run_started"
        missing = client.get(f"{server.url}/api/runs/ffffffff")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_such_run"


def test_approve_over_sse_while_an_observer_follows(env, client, pizzeria):
    with MockOpenAI(order_turns()) as mock, start_server(setup(mock, ["pizzeria"])) as server:
        first = sse_events(client.post(f"{server.url}/api/runs?stream=true", json={"message": "order"}).text)
        settled = first[-1][1]
        assert settled["status"] == "waiting"
        action = settled["pending"][0]
        assert action["tool"] == "pizzeria.place_order" and action["arguments"] == ORDER
        assert "margherita" in action["summary"]
        run_id = settled["id"]
        assert client.get(f"{server.url}/api/runs").json()[0]["status"] == "waiting"

        async def observe_and_approve():
            async with httpx.AsyncClient(timeout=30) as http:
                async def observe():
                    response = await http.get(f"{server.url}/api/runs/{run_id}/events")
                    return sse_events(response.text)
                observer = asyncio.create_task(observe())
                await asyncio.sleep(0.3)
                approved = await http.post(f"{server.url}/api/runs/{run_id}/actions/{action['id']}",
                                           json={"approve": True}, headers={"Accept": "text/event-stream"})
                return sse_events(approved.text), await observer

        continuation, observed = asyncio.run(observe_and_approve())
        kinds = [k for k, _ in continuation]
        assert kinds[0] == "confirmation_answered" and "tool_finished" in kinds and kinds[-1] == "settled"
        assert dict(continuation)["confirmation_answered"]["by"] == "person (local)"
        assert continuation[-1][1]["answer"] == "Your order is placed."
        assert dict(continuation)["tool_finished"]["result"]["body"]["total"] == 17.0
        # The observer saw the whole run, from the start, across the wait.
        assert [k for k, _ in observed][0] == "run_started" and [k for k, _ in observed][-2] == "run_finished"
        again = client.post(f"{server.url}/api/runs/{run_id}/actions/{action['id']}", json={"approve": True})
        assert again.status_code == 409
        assert len(httpx.get(f"{pizzeria}/orders/1001").json()["items"]) == 1


def test_two_pending_actions_are_decided_one_at_a_time(env, client, pizzeria):
    second = {**ORDER, "customer_name": "Bob"}
    turns = [{"tool_calls": [{"name": "place_order", "arguments": ORDER}, {"name": "place_order", "arguments": second}]},
             "Both are ordered."]
    with MockOpenAI(turns) as mock, start_server(setup(mock, ["pizzeria"])) as server:
        waiting = client.post(f"{server.url}/api/runs", json={"message": "order for two people"}).json()
        assert waiting["status"] == "waiting" and len(waiting["pending"]) == 2
        first, other = waiting["pending"]
        after_one = client.post(f"{server.url}/api/runs/{waiting['id']}/actions/{first['id']}", json={"approve": True})
        assert after_one.json()["status"] == "waiting" and [a["id"] for a in after_one.json()["pending"]] == [other["id"]]
        done = client.post(f"{server.url}/api/runs/{waiting['id']}/actions/{other['id']}", json={"approve": True}).json()
        assert done["status"] == "ok" and done["answer"] == "Both are ordered."
        names = sorted(httpx.get(f"{pizzeria}/orders/{n}").json()["customer_name"] for n in (1001, 1002))
        assert names == ["Ada", "Bob"]


def test_reject_tells_the_model_and_nothing_is_ordered(env, client, pizzeria):
    with MockOpenAI(order_turns("All right, I did not order.")) as mock, start_server(setup(mock, ["pizzeria"])) as server:
        waiting = client.post(f"{server.url}/api/runs", json={"message": "order"}).json()
        action = waiting["pending"][0]
        wrong = client.post(f"{server.url}/api/runs/{waiting['id']}/actions/act_nope", json={"approve": True})
        assert wrong.status_code == 404 and action["id"] in wrong.json()["error"]["message"]
        done = client.post(f"{server.url}/api/runs/{waiting['id']}/actions/{action['id']}",
                           json={"approve": False, "reason": "too expensive"}).json()
        assert done["status"] == "ok" and done["answer"] == "All right, I did not order."
        told = mock.requests[1]["messages"][-1]["content"]
        assert "did not approve" in told
        assert httpx.get(f"{pizzeria}/orders/1001").status_code == 404
        events = client.get(f"{server.url}/api/runs/{waiting['id']}").json()["events"]
        answered = next(e for e in events if e["type"] == "confirmation_answered")
        assert answered["approved"] is False and answered["note"] == "too expensive"


def test_a_waiting_run_is_not_cancelled_but_its_actions_rejected(env, client, pizzeria):
    with MockOpenAI(order_turns("Not ordered.")) as mock, start_server(setup(mock, ["pizzeria"])) as server:
        waiting = client.post(f"{server.url}/api/runs", json={"message": "order"}).json()
        refused = client.post(f"{server.url}/api/runs/{waiting['id']}/cancel")
        assert refused.status_code == 409 and "rejected" in refused.json()["error"]["message"]
        action = waiting["pending"][0]["id"]
        done = client.post(f"{server.url}/api/runs/{waiting['id']}/actions/{action}", json={"approve": False}).json()
        assert done["status"] == "ok" and httpx.get(f"{pizzeria}/orders/1001").status_code == 404
        late = client.post(f"{server.url}/api/runs/{waiting['id']}/actions/{action}", json={"approve": True})
        assert late.status_code == 409


def test_a_waiting_run_survives_a_restart_and_is_approved_on_the_next_server(env, client, pizzeria):
    with MockOpenAI(order_turns()) as mock:
        with start_server(setup(mock, ["pizzeria"])) as first:
            waiting = client.post(f"{first.url}/api/runs", json={"message": "order"}).json()
        assert stored_run(env, waiting["id"], "waiting")
        with start_server(setup(mock, ["pizzeria"])) as second:
            pending = client.get(f"{second.url}/api/runs/{waiting['id']}").json()["pending"]
            assert [a["id"] for a in pending] == [waiting["pending"][0]["id"]]
            done = client.post(f"{second.url}/api/runs/{waiting['id']}/actions/{pending[0]['id']}",
                               json={"approve": True}).json()
            assert done["id"] == waiting["id"] and done["status"] == "ok" and done["answer"] == "Your order is placed."
        assert httpx.get(f"{pizzeria}/orders/1001").json()["total"] == 17.0
        assert stored_run(env, waiting["id"], "ok")["answer"] == "Your order is placed."


def test_plugins_and_agents(env, client, pizzeria, tmp_path):
    (tmp_path / "plugdeck.toml").write_text('[agents.maths]\nplugins = ["calculator"]\n')
    with start_server(AgentSetup(plugins=["calculator", "pizzeria"])) as server:
        agents = {a["name"]: a for a in client.get(f"{server.url}/api/agents").json()}
        assert agents["maths"]["tools"] == ["calculator.calculate"]
        assert set(agents["plugdeck"]["tools"]) == {"calculator.calculate", "pizzeria.list_menu",
                                                    "pizzeria.place_order", "pizzeria.get_order"}
        plugins = {p["name"]: p for p in client.get(f"{server.url}/api/plugins").json()}
        assert plugins["calculator"]["agents"] == ["plugdeck", "maths"]
        assert {t["name"]: t["effect"] for t in plugins["pizzeria"]["tools"]}["place_order"] == "write"
        assert plugins["pizzeria"]["tools"][0]["parameters"]["type"] == "object"
