"""Server-side constrained decoding and tool_choice (models/openai.py): what is sent to vLLM and
llama.cpp, when, and that the constrained reply (a JSON array of calls) is read back as calls."""

from __future__ import annotations

import json

import jsonschema
import pytest

from mock_openai import MockOpenAI
from plugdeck.config import ConfigError, load_config
from plugdeck.models.base import ModelResponse
from plugdeck.models.openai import OpenAIModel
from plugdeck.models.profiles import model_for
from plugdeck.tools import ToolSpec

ADD = ToolSpec("add", "Add two integers", {"type": "object", "properties": {"a": {"type": "integer"},
               "b": {"type": "integer"}}, "required": ["a", "b"]})
QUESTION = [{"role": "user", "content": "What is 1 + 2?"}]
REPLY = json.dumps([{"name": "add", "arguments": {"a": 1, "b": 2}}])


async def answer(model, tools=(ADD,)):
    async for item in model.stream(QUESTION, list(tools)):
        if isinstance(item, ModelResponse):
            return item


@pytest.mark.parametrize("kind, fields", [("vllm", {"structured_outputs", "guided_json"}), ("llama.cpp", {"json_schema"})])
async def test_a_required_call_is_generated_under_the_calls_schema(kind, fields):
    with MockOpenAI([REPLY]) as mock:
        model = OpenAIModel("m", mock.base_url, tool_format="prompted", tool_choice="required", constrain=kind)
        response = await answer(model)
    body = mock.requests[0]
    assert fields <= set(body) and "tools" not in body and "tool_choice" not in body  # prompted: no native tools
    schema = body["json_schema"] if kind == "llama.cpp" else body["structured_outputs"]["json"]
    jsonschema.validate(json.loads(REPLY), schema)
    with pytest.raises(jsonschema.ValidationError):  # a tool that is not offered is outside the schema
        jsonschema.validate([{"name": "rm", "arguments": {}}], schema)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("add", {"a": 1, "b": 2})]


async def test_tool_choice_is_sent_with_native_tools_and_no_second_constraint():
    with MockOpenAI([{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}]) as mock:
        model = OpenAIModel("m", mock.base_url, tool_choice="required", constrain="vllm")
        await answer(model)
    body = mock.requests[0]
    assert body["tool_choice"] == "required" and body["tools"]
    assert not {"structured_outputs", "guided_json", "json_schema"} & set(body)


async def test_without_required_or_without_tools_nothing_is_constrained():
    with MockOpenAI(["Three.", "Three."]) as mock:
        await answer(OpenAIModel("m", mock.base_url, tool_format="prompted", tool_choice="auto", constrain="vllm"))
        await answer(OpenAIModel("m", mock.base_url, tool_choice="required", constrain="llama.cpp"), tools=())
    for body in mock.requests:
        assert not {"structured_outputs", "guided_json", "json_schema", "tool_choice"} & set(body)


def test_profiles_carry_the_settings_and_refuse_unknown_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLUGDECK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLUGDECK_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "plugdeck.toml").write_text(
        '[models.vl]\nbase_url = "http://127.0.0.1:8000/v1"\nmodel = "q"\ntool_format = "prompted"\n'
        'tool_choice = "required"\nconstrain = "vllm"\n'
        '[models.bad]\nbase_url = "http://127.0.0.1:8000/v1"\nmodel = "q"\nconstrain = "outlines"\n')
    config = load_config()
    model = model_for(config, "vl")
    assert (model.tool_choice, model.constrain) == ("required", "vllm")
    with pytest.raises(ConfigError, match="constrain must be one of vllm, llama.cpp"):
        model_for(config, "bad")
