"""R27: knowledge bases are kept apart per API key inside the search itself. Key B, limited to its
own base, asks for key A's canary words: the passages the model reads hold nothing of A's base.
Real bases (real embeddings), a real server, keys made with the CLI, a mock model on loopback."""

from __future__ import annotations

import json

import httpx
from mock_openai import MockOpenAI

from plugdeck.assemble import AgentSetup
from plugdeck.plugins.knowledge.base import KnowledgeBase
from serverkit import plugdeck, start_server

CANARY_A = "zebrafinch-7731"
CANARY_B = "okapi-2291"


def make_base(env, tmp_path, name: str, text: str) -> None:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "notes.md").write_text(f"# Notes\n\n{text}\n")
    kb = KnowledgeBase.open(name, home=env["PLUGDECK_HOME"])
    try:
        assert kb.add([folder]).chunks >= 1
    finally:
        kb.close()


def key_for(env, *plugins: str) -> str:
    made = plugdeck(env, "keys", "create", "--plugins", ",".join(plugins))
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def ask(server, key: str) -> None:
    body = {"model": "plugdeck", "messages": [{"role": "user", "content": f"What is {CANARY_A}?"}]}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text


def test_a_key_never_reads_another_keys_knowledge_base(env, tmp_path):
    make_base(env, tmp_path, "alpha", f"The project codename is {CANARY_A}; it ships in May.")
    make_base(env, tmp_path, "beta", f"The cafeteria code is {CANARY_B}; lunch is at noon.")
    key_a, key_b = key_for(env, "alpha"), key_for(env, "beta")
    search = {"tool_calls": [{"name": "search_knowledge", "arguments": {"query": f"{CANARY_A} codename"}}]}
    with MockOpenAI([search, "answer", search, "answer"]) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, kb=["alpha", "beta"])) as server:
        ask(server, key_b)
        ask(server, key_a)
    read_by_b = json.dumps(mock.requests[1]["messages"])
    read_by_a = json.dumps(mock.requests[3]["messages"])
    # B's search ran, over B's base only: A's passage is not among the results, whatever the query.
    assert CANARY_B in read_by_b and "The project codename" not in read_by_b
    assert "The project codename" in read_by_a and CANARY_B not in read_by_a
