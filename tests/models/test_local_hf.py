"""The in-process `hf` backend on a tiny random-weight Qwen2 model built here (no real weights exist):
the chat template with tools, streaming, tool calls read back, the whole path through the Agent and
the CLI, and constrained decoding (every call schema-valid under the grammar, even from noise)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typing import Annotated, Literal

import jsonschema
import pytest
from pydantic import Field

pytest.importorskip("transformers")
pytest.importorskip("llguidance")

from plugdeck import Agent, tool  # noqa: E402
from plugdeck.events import TextDelta, ToolFinished  # noqa: E402
from plugdeck.models.base import ModelResponse, TextChunk  # noqa: E402
from plugdeck.models.local_hf import HFModel, LocalModelError, hf_backend  # noqa: E402
from plugdeck.models.local_constraint import tool_call_grammar  # noqa: E402
from plugdeck.tools import ToolSpec  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_hf import build_tiny_model  # noqa: E402

PICK = ToolSpec("pick", "Pick a colour, a count and a flag", {
    "type": "object",
    "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 999},
        "loud": {"type": "boolean"},
        "label": {"type": "string", "maxLength": 8},
    },
    "required": ["colour", "count"],
    "additionalProperties": False,
})
NOTE = ToolSpec("note", "Write a note", {
    "type": "object", "properties": {"text": {"type": "string", "maxLength": 12}}, "required": ["text"],
    "additionalProperties": False,
})
QUESTION = [{"role": "user", "content": "Pick something."}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen-tiny")


async def turn(model, messages, tools):
    chunks, response = [], None
    async for item in model.stream(messages, tools):
        if isinstance(item, TextChunk):
            chunks.append(item.text)
        else:
            response = item
    assert isinstance(response, ModelResponse)
    return chunks, response


def valid_call(call) -> bool:
    specs = {PICK.name: PICK, NOTE.name: NOTE}
    if call.error or call.name not in specs:
        return False
    try:
        jsonschema.validate(call.arguments, specs[call.name].parameters)
    except jsonschema.ValidationError:
        return False
    return True


def test_the_prompt_is_the_tokenizers_chat_template_with_the_tools(model_dir):
    from plugdeck.models.local_hf import _prompt_ids

    model = HFModel(model_dir)
    _, tokenizer, _ = model.load()
    history = [*QUESTION, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "pick", "arguments": '{"colour": "red", "count": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"ok": true}'}]
    prompt = tokenizer.decode(_prompt_ids(tokenizer, history, [PICK])[0])
    assert '"name": "pick"' in prompt and '"enum": ["red", "green", "blue"]' in prompt  # the tool, from the template
    assert '{"name": "pick", "arguments": {"colour": "red", "count": 1}}' in prompt  # arguments as an object
    assert "<tool_response>\n{\"ok\": true}" in prompt and prompt.endswith("<|im_start|>assistant\n")


async def test_constrained_calls_are_all_schema_valid_across_200_generations(model_dir):
    model = HFModel(model_dir, tool_choice="required", temperature=1.0, seed=7, max_new_tokens=120)
    valid = 0
    names = set()
    for _ in range(200):
        chunks, response = await turn(model, QUESTION, [PICK, NOTE])
        assert chunks == []  # a call is never streamed as answer text
        assert response.finish_reason == "tool_calls" and response.tool_calls and response.tool_format == "hermes"
        valid += all(valid_call(call) for call in response.tool_calls)
        names.update(call.name for call in response.tool_calls)
    assert valid == 200
    assert names == {"pick", "note"}  # sampling reached both tools: the grammar does not favour one


async def test_without_the_constraint_the_random_model_writes_no_valid_call(model_dir):
    model = HFModel(model_dir, constrain=False, tool_choice="required", temperature=1.0, seed=7, max_new_tokens=40)
    results = [await turn(model, QUESTION, [PICK, NOTE]) for _ in range(20)]
    assert sum(all(valid_call(c) for c in r.tool_calls) and bool(r.tool_calls) for _, r in results) == 0
    # Its noise is the answer, streamed as it came.
    assert all("".join(chunks) == r.text and r.text for chunks, r in results)


async def test_in_auto_mode_the_grammar_allows_an_answer_in_text(model_dir):
    model = HFModel(model_dir, temperature=1.0, seed=3, max_new_tokens=30)
    _, response = await turn(model, QUESTION, [PICK])
    assert response.text and not response.text.startswith("<") and not response.tool_calls
    assert "<t" not in response.text  # an answer can never hold the start of a call


async def test_greedy_generation_is_repeatable_and_counts_tokens(model_dir):
    model = HFModel(model_dir, tool_choice="required", max_new_tokens=120)
    (_, first), (_, second) = await turn(model, QUESTION, [PICK]), await turn(model, QUESTION, [PICK])
    assert [c.to_dict() | {"id": 0} for c in first.tool_calls] == [c.to_dict() | {"id": 0} for c in second.tool_calls]
    assert first.prompt_tokens > 50 and 0 < first.completion_tokens <= 120


async def test_the_agent_runs_a_local_models_calls(model_dir):
    seen = []

    @tool
    def pick(colour: Literal["red", "green", "blue"], count: Annotated[int, Field(ge=0, le=999)],
             loud: bool = False) -> dict:
        """Pick a colour, a count and a flag."""
        seen.append((colour, count))
        return {"ok": True}

    model = HFModel(model_dir, tool_choice="required", max_new_tokens=160)
    agent = Agent(model, tools=[pick], max_steps=2)
    run = await agent.run("Pick something.")
    finished = [e for e in run.events if isinstance(e, ToolFinished)]
    assert finished and all(e.error is None for e in finished), finished
    assert len(seen) == len(finished) and all(isinstance(c, int) for _, c in seen)
    assert run.status == "max_steps"  # `required` calls a tool every turn, so the step limit ends it


async def test_the_agent_streams_a_local_models_answer(model_dir):
    agent = Agent(HFModel(model_dir, max_new_tokens=20), max_steps=1)
    run = await agent.run("Hello?")
    deltas = "".join(e.text for e in run.events if isinstance(e, TextDelta))
    assert run.status == "ok" and run.answer and deltas == run.answer


def test_the_cli_answers_with_model_hf_path(model_dir, cli_env):
    result = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", "ask", "--model", f"hf:{model_dir}", "Hello?"],
                            env=cli_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_grammar_names_only_the_offered_tools():
    grammar = tool_call_grammar([PICK], required=True)
    assert '"const": "pick"' in grammar and "answer" not in grammar
    assert "ANSWER" in tool_call_grammar([PICK, NOTE])


def test_a_folder_without_a_model_is_refused_clearly(tmp_path):
    with pytest.raises(LocalModelError, match="not a Hugging Face model folder"):
        hf_backend(str(tmp_path))
    with pytest.raises(LocalModelError, match="needs a model folder"):
        hf_backend("")


def test_the_entry_point_makes_the_model(model_dir):
    from plugdeck.models.backends import backend_model

    model = backend_model(f"hf:{model_dir}")
    assert isinstance(model, HFModel) and model.path == model_dir


def test_settings_come_after_a_question_mark(model_dir):
    model = hf_backend(f"{model_dir}?constrain=off&tool_choice=required&max_new_tokens=9&temperature=0.5&seed=2")
    assert (model.constrain, model.tool_choice, model.max_new_tokens, model.temperature, model.seed) == (
        False, "required", 9, 0.5, 2)
    with pytest.raises(LocalModelError, match="knows no setting 'top_k'"):
        hf_backend(f"{model_dir}?top_k=3")
    with pytest.raises(LocalModelError, match="constrain='maybe' is not valid"):
        hf_backend(f"{model_dir}?constrain=maybe")
    with pytest.raises(LocalModelError, match="tool_choice must be one of"):
        hf_backend(f"{model_dir}?tool_choice=always")
