"""Model settings and the system prompt (issue 16, part 1): from a profile, an [agents.NAME] table and
flags to the exact JSON a real OpenAI-compatible server on loopback receives; unknown settings refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mock_openai import MockOpenAI
from plugdeck.agent.agent import CALLER_INSTRUCTIONS, DEFAULT_SYSTEM_PROMPT
from plugdeck.assemble import AgentSetup, build_agent
from plugdeck.config import ConfigError, load_config
from plugdeck.server.agents import configured_agents

VLLM_PROFILE = """
[models.local]
base_url = "{url}"
model = "mock-model"
stream = false
temperature = 0.2
top_p = 0.9
max_tokens = 256
seed = 7
stop = ["</answer>"]
extra_body = {{chat_template_kwargs = {{enable_thinking = false}}}}
system = "Answer like a pirate."
"""


def config_with(tmp_path: Path, text: str):
    (tmp_path / "plugdeck.toml").write_text(text)
    return load_config({"home": str(tmp_path / "home")}, cwd=tmp_path)


def system_with(own: str) -> str:
    """The system message with a configured prompt: where `ask -s` puts one, below plugdeck's own framing."""
    return f"{DEFAULT_SYSTEM_PROMPT}\n\n{CALLER_INSTRUCTIONS}\n{own}"


async def ask(config, setup: AgentSetup, question: str = "hello"):
    agent = build_agent(config, setup)
    try:
        return await agent.run(question)
    finally:
        await agent.aclose()


async def test_a_profiles_settings_are_the_request_body(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with MockOpenAI(["Arr."]) as mock:
        config = config_with(tmp_path, VLLM_PROFILE.format(url=mock.base_url))
        run = await ask(config, AgentSetup(model="local", plugins=[]))
    assert run.answer == "Arr."
    body = mock.requests[0]
    messages, tools = body.pop("messages"), body.pop("tools")
    assert [t["function"]["name"] for t in tools] == ["calculate"]
    assert body == {"model": "mock-model", "stream": False, "temperature": 0.2, "top_p": 0.9, "max_tokens": 256,
                    "seed": 7, "stop": ["</answer>"], "chat_template_kwargs": {"enable_thinking": False}}
    assert messages[0] == {"role": "system", "content": system_with("Answer like a pirate.")}


async def test_flags_win_over_the_profile_and_tool_choice_goes_with_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with MockOpenAI(["fine"]) as mock:
        config = config_with(tmp_path, VLLM_PROFILE.format(url=mock.base_url))
        options = {"temperature": 0.0, "max_tokens": 12, "tool_choice": "none", "extra_body": {"top_k": 5}}
        await ask(config, AgentSetup(model="local", plugins=["calculator"], options=options, system="Be brief."))
    body = mock.requests[0]
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["tool_choice"]) == (0.0, 12, 0.9, "none")
    assert body["top_k"] == 5 and "chat_template_kwargs" not in body  # extra_body is replaced as a whole
    assert body["messages"][0]["content"] == system_with("Be brief.")  # the setup's, not the profile's


async def test_an_agent_table_carries_settings_and_its_system_prompt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with MockOpenAI(["Hi."]) as mock:
        (tmp_path / "plugdeck.toml").write_text(f"""
[agents.support]
model = "mock-model"
base_url = "{mock.base_url}"
plugins = []
system = "You answer staff questions."
temperature = 0.1
extra_body = {{chat_template_kwargs = {{enable_thinking = false}}}}
""")
        config = load_config({"home": str(tmp_path / "home")}, cwd=tmp_path)
        spec = configured_agents(AgentSetup(), cwd=tmp_path)["support"]
        await ask(config, spec.setup)
    body = mock.requests[0]
    assert body["temperature"] == 0.1 and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["messages"][0] == {"role": "system", "content": system_with("You answer staff questions.")}


@pytest.mark.parametrize("line, message", [
    ("temprature = 0.2", "unknown key(s) temprature; known: "),
    ("temperature = \"hot\"", "temperature must be an integer or a number"),
    ("max_tokens = 0", "max_tokens must be at least 1"),
    ("stop = [1, 2]", "stop must be a text or a list of texts"),
    ("extra_body = {model = \"other\"}", "extra_body cannot set model"),
    ("system = 3", "system must be a str"),
])
def test_bad_settings_in_a_profile_are_named(tmp_path, monkeypatch, line, message):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with pytest.raises(ConfigError, match="model profile 'local'") as caught:
        config_with(tmp_path, f'[models.local]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n{line}\n')
    assert message in str(caught.value)


def test_bad_settings_in_an_agent_table_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "plugdeck.toml").write_text('[agents.support]\nmodel = "m"\nseed = 1.5\n')
    with pytest.raises(ConfigError, match=r"\[agents.support\]: seed must be an integer"):
        configured_agents(AgentSetup(), cwd=tmp_path)
    (tmp_path / "plugdeck.toml").write_text('[agents.support]\nmodel = "m"\nwarmth = 1\n')
    with pytest.raises(ConfigError, match="unknown key 'warmth'.*temperature"):
        configured_agents(AgentSetup(), cwd=tmp_path)


def test_a_key_pasted_into_a_profile_is_refused_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    pasted = "sk-proj-Pasted9KeyZx81Lq"
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, f'[models.gpt]\nbase_url = "https://api.openai.com/v1"\nmodel = "g"\napi_key = "{pasted}"\n')
    assert "keyring:NAME" in str(caught.value) and "plugdeck keys set" in str(caught.value)
    assert pasted not in str(caught.value)
