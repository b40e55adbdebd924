"""Many streaming chats at once against `plugdeck serve` and the echo model: no errors, and no lost or
mixed-up events. Each chat carries its own canary through the model, the calculator and back, so an
answer or event that strayed into another stream would show. (bench/server_load.py runs 500 and
measures the latency plugdeck adds.)"""

from __future__ import annotations

import asyncio
import json
import random

import httpx

from serverkit import stored_run

CHATS = 100


async def chat(http: httpx.AsyncClient, url: str, canary: int) -> dict:
    body = {"model": "plugdeck", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"Please check canary {canary}"}]}
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        payloads = [line[5:].strip() async for line in response.aiter_lines() if line.startswith("data:")]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    ids = {c["id"] for c in chunks}
    events = [c["plugdeck"] for c in chunks if "type" in c.get("plugdeck", {})]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return {"canary": canary, "ids": ids, "events": events, "text": text, "usage": chunks[-1]["usage"]}


async def chat_all(url: str, canaries: list[int]) -> list[dict]:
    limits = httpx.Limits(max_connections=CHATS + 10, max_keepalive_connections=CHATS + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        return await asyncio.gather(*(chat(http, url, c) for c in canaries))


def test_a_hundred_concurrent_streaming_chats_keep_to_themselves(env, serve, echo_model):
    server = serve("--base-url", echo_model, "--model", "echo", "--plugin", "calculator", "--planner", "loop")
    canaries = random.sample(range(10_000_000, 99_999_999), CHATS)
    results = asyncio.run(chat_all(server.url, canaries))
    run_ids = set()
    for result in results:
        canary = result["canary"]
        assert result["text"] == f"canary {canary}"
        (chunk_id,) = result["ids"]
        run_id = chunk_id.removeprefix("chatcmpl-")
        run_ids.add(run_id)
        assert {e["run_id"] for e in result["events"]} == {run_id}
        kinds = [e["type"] for e in result["events"]]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and kinds.count("tool_finished") == 1
        tool = next(e for e in result["events"] if e["type"] == "tool_finished")
        assert tool["arguments"] == {"expression": f"{canary} + 0"} and tool["result"]["result"] == str(canary)
        assert result["usage"]["total_tokens"] > 0
    assert len(run_ids) == CHATS
    stats = httpx.get(echo_model.removesuffix("/v1") + "/stats").json()
    assert all(stats["calls"][str(c)] == 2 for c in canaries)  # every chat: one call for the tool, one to answer
    sample = stored_run(env, sorted(run_ids)[0], "ok")
    assert sample and sample["tool_calls"] == 1
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["ok"]
