"""The README's calculator question, answered by an agent whose server leaves tool calls in the text
(each open model's format), or supports no tools at all, or thinks out loud: same answer, same events
as with native tool calls."""

from __future__ import annotations

import json

import pytest
from mock_openai import TEXT_FORMATS, MockOpenAI

from plugdeck import Agent
from plugdeck.config import ConfigError, load_config
from plugdeck.models.openai import OpenAIModel
from plugdeck.models.profiles import model_for
from plugdeck.plugins.calculator import plugin as calculator

QUESTION = "What is 17.5% of 2,340, plus 12?"
CALL = {"name": "calculate", "arguments": {"expression": "17.5% of 2,340 + 12"}}


def ask(turns, *, stream=True, mock_options=None, **model_options):
    with MockOpenAI(turns, **(mock_options or {})) as mock:
        model = OpenAIModel("mock-model", mock.base_url, stream=stream, **model_options)
        run = Agent(model, [calculator]).run_sync(QUESTION)
        return run, mock.requests


def shape(run):
    """The run's events as a person reviewing it sees them, without timings and ids."""
    out = []
    for event in run.events:
        if event.type == "tool_calls_parsed":
            out.append((event.type, event.calls))  # native or recovered: checked apart
        elif event.type == "tool_finished":
            out.append((event.type, event.tool, json.dumps(event.arguments), json.dumps(event.result), event.error))
        elif event.type == "text_delta":
            continue  # pieces differ with the chunking; their sum is checked apart
        else:
            out.append((event.type,))
    return out


def shown_text(run):
    return "".join(e.text for e in run.events if e.type == "text_delta" and e.channel == "text")


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("text_format", TEXT_FORMATS)
def test_the_calculator_question_through_each_text_format(text_format, stream):
    native, _ = ask([{"tool_calls": [CALL]}, "The answer is 421.5."], stream=stream)
    run, requests = ask([{"tool_calls": [CALL], "text_format": text_format, "chunk": 3}, "The answer is 421.5."],
                        stream=stream)
    assert run.status == "ok" and run.answer == native.answer == "The answer is 421.5."
    if text_format == "harmony":  # gpt-oss' analysis channel is the model's reasoning: its own event, never the answer
        thought = [e for e in run.events if e.type == "reasoning"]
        assert [e.text for e in thought] == ["A tool answers this."]
        assert [s for s in shape(run) if s != ("reasoning",)] == shape(native)
    else:
        assert shape(run) == shape(native)
    assert shown_text(run) == "The answer is 421.5."  # the call was never shown as answer text
    parsed = next(e for e in run.events if e.type == "tool_calls_parsed")
    assert parsed.outcome == "recovered" and parsed.format != "native"
    # The call goes back to the model as a proper tool call, its result as a tool message.
    assistant = requests[1]["messages"][-2]
    assert assistant["tool_calls"][0]["function"]["name"] == "calculate" and not assistant["content"]
    assert requests[1]["messages"][-1]["role"] == "tool" and "421.5" in requests[1]["messages"][-1]["content"]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_malformed_call_in_the_text_is_refused_and_the_model_told(stream):
    broken = '<tool_call>{"name": "calculate", "arguments": {"expression": "17.5% of</tool_call>'
    run, requests = ask([broken, {"tool_calls": [CALL], "text_format": "hermes"}, "421.5"], stream=stream)
    assert run.answer == "421.5"
    parsed = [e for e in run.events if e.type == "tool_calls_parsed"]
    assert [p.outcome for p in parsed] == ["failed", "recovered"] and "calculate" in parsed[0].errors[0]
    first = next(e for e in run.events if e.type == "tool_finished")
    assert first.error["kind"] == "invalid_json"
    told = requests[1]["messages"][-1]
    assert told["role"] == "tool" and "not valid JSON" in told["content"]
    assert shown_text(run) == "421.5"


def test_a_call_to_a_tool_not_offered_is_refused():
    run, requests = ask([{"tool_calls": [{"name": "rm_rf", "arguments": {}}], "text_format": "mistral"}, "Sorry."])
    finished = next(e for e in run.events if e.type == "tool_finished")
    assert finished.error["kind"] == "unknown_tool" and run.answer == "Sorry."


def test_json_in_an_answer_stays_the_answer():
    answer = '{"name": "Ada Lovelace", "born": 1815}'
    run, _ = ask([answer])
    assert run.answer == answer and shown_text(run) == answer
    assert not [e for e in run.events if e.type in ("tool_calls_parsed", "tool_started")]


def test_native_format_leaves_a_text_call_as_the_answer():
    written = '<tool_call>{"name": "calculate", "arguments": {"expression": "1+1"}}</tool_call>'
    run, _ = ask([written], tool_format="native")
    assert run.answer == written


# ---- prompted tool calling --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_prompted_tool_calling_for_a_server_without_tools(stream):
    turns = [{"tool_calls": [CALL], "text_format": "hermes"}, "The answer is 421.5."]
    run, requests = ask(turns, stream=stream, tool_format="prompted", mock_options={"supports_tools": False})
    assert run.answer == "The answer is 421.5."
    assert all("tools" not in r for r in requests)
    system = requests[0]["messages"][0]
    assert system["role"] == "system" and '"name": "calculate"' in system["content"] and "<tool_call>" in system["content"]
    # The second request holds the call and its result as text: no tool_calls, no tool role.
    second = requests[1]["messages"]
    assert all("tool_calls" not in m and m["role"] != "tool" for m in second)
    assert "<tool_call>" in second[-2]["content"] and second[-1]["content"].startswith("<tool_response>")
    assert "421.5" in second[-1]["content"]


@pytest.mark.parametrize("refusal", [(400, '"auto" tool choice requires --enable-auto-tool-choice'),
                                     (500, "tools param requires --jinja flag")], ids=["vllm", "llama-server"])
def test_auto_turns_to_prompting_when_the_server_rejects_tools(refusal):
    turns = [{"tool_calls": [CALL], "text_format": "json"}, "421.5"]
    run, requests = ask(turns, mock_options={"supports_tools": False, "no_tools_error": refusal})
    assert run.answer == "421.5"
    assert "tools" in requests[0] and "tools" not in requests[1] and "tools" not in requests[2]
    assert len(requests) == 3  # refused once, then prompted: no retries of the refused request


def test_native_format_does_not_turn_to_prompting():
    run, requests = ask(["421.5"], mock_options={"supports_tools": False}, tool_format="native")
    assert run.status == "error" and len(requests) == 1


# ---- reasoning ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("send_reasoning", [False, True])
def test_reasoning_is_its_own_channel_and_goes_back_only_when_asked(stream, send_reasoning):
    turns = [{"tool_calls": [CALL], "reasoning": "I need the calculator."},
             "<think>The tool said 421.5.</think>\n\nThe answer is 421.5."]
    run, requests = ask(turns, stream=stream, send_reasoning=send_reasoning)
    assert run.answer == "The answer is 421.5." and shown_text(run) == "The answer is 421.5."
    reasoning = "".join(e.text for e in run.events if e.type == "text_delta" and e.channel == "reasoning")
    assert reasoning == "I need the calculator.The tool said 421.5."
    assistant = requests[1]["messages"][-2]
    assert ("reasoning_content" in assistant) is send_reasoning
    assert "calculator" not in (assistant.get("content") or "")


# ---- configuration ----------------------------------------------------------------------------------


def test_profile_keys_reach_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "plugdeck.toml").write_text(
        '[models.local]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "qwen"\ntool_format = "hermes"\nsend_reasoning = true\n'
        '[models.bad]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "x"\ntool_format = "klingon"\n')
    config = load_config()
    model = model_for(config, "local")
    assert (model.tool_format, model.send_reasoning) == ("hermes", True)
    with pytest.raises(ConfigError, match="tool_format 'klingon' is not known"):
        model_for(config, "bad")
    (tmp_path / "plugdeck.toml").write_text('[models.x]\nbase_url = "u"\nmodel = "m"\nsend_reasoning = "yes"\n')
    with pytest.raises(ConfigError, match="send_reasoning must be a bool"):
        load_config()


# ---- the record: runs show and the traces -------------------------------------------------------------


def test_runs_show_and_the_trace_count_how_calls_were_read(tmp_path):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from rich.console import Console

    from plugdeck import RunStore
    from plugdeck.cli.render import run_tree
    from plugdeck.ops.otel import TraceSink

    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broken = '<tool_call>{"name": "calculate", "arguments": {"expression": "17.5% of</tool_call>'
    turns = [{"tool_calls": [CALL], "reasoning": "Use the calculator."}, broken,
             {"tool_calls": [CALL], "text_format": "deepseek"}, "421.5"]
    with MockOpenAI(turns) as mock, RunStore(tmp_path / "runs.db") as store:
        model = OpenAIModel("mock-model", mock.base_url)
        run = Agent(model, [calculator], sinks=[store.record, TraceSink(provider)]).run_sync(QUESTION)
        store.flush()
        stored = store.get_run(run.id)
    assert run.answer == "421.5"
    console = Console(width=300, record=True, file=open(tmp_path / "out.txt", "w"))
    console.print(run_tree(stored))
    shown = console.export_text()
    assert "thought Use the calculator." in shown
    assert "tool calls read from text (hermes): 1 failed; calculate: the tool call is not valid JSON" in shown
    assert "tool calls read from text (deepseek): 1 recovered" in shown
    assert "tool calls: 1 native · 1 failed · 1 recovered" in shown

    root = next(s for s in exporter.get_finished_spans() if s.name == "invoke_agent")
    counts = {k: v for k, v in root.attributes.items() if k.startswith("plugdeck.tool_calls.")}
    assert counts == {"plugdeck.tool_calls.native": 1, "plugdeck.tool_calls.failed": 1, "plugdeck.tool_calls.recovered": 1}
    notes = [e.attributes["plugdeck.tool_format"] for e in root.events if e.name == "plugdeck.tool_calls_parsed"]
    assert notes == ["native", "hermes", "deepseek"]


def test_the_terminal_shows_thinking_dimmed_on_stderr_and_only_the_answer_on_stdout(tmp_path):
    from rich.console import Console

    from plugdeck.cli.render import LiveSteps

    out = Console(record=True, width=200, file=open(tmp_path / "out", "w"), force_terminal=True)
    err = Console(record=True, width=200, file=open(tmp_path / "err", "w"), force_terminal=True)
    turns = [{"tool_calls": [CALL], "reasoning": "Use the calculator."}, "<think>Done.</think>The answer is 421.5."]
    with MockOpenAI(turns) as mock:
        Agent(OpenAIModel("mock-model", mock.base_url), [calculator], sinks=[LiveSteps(out, err)]).run_sync(QUESTION)
    assert out.export_text().strip() == "The answer is 421.5."
    styled = err.export_text(styles=True, clear=False)
    shown = err.export_text()
    assert "Use the calculator." in shown and "Done." in shown and "421.5" in shown
    assert "\x1b[2mUse \x1b[0m" in styled and "\x1b[2mDone.\x1b[0m" in styled  # dimmed


def test_prompted_messages_keep_the_system_prompt_and_put_parallel_results_in_one_turn():
    from plugdeck.models.prompted import prompted_messages
    from plugdeck.tools import Toolset

    specs = Toolset(list(calculator.tools)).specs
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "calculate", "arguments": '{"expression": "1+1"}'}},
            {"id": "b", "type": "function", "function": {"name": "calculate", "arguments": '{"expression": "2+2"}'}}]},
        {"role": "tool", "tool_call_id": "a", "content": '{"result": "2"}'},
        {"role": "tool", "tool_call_id": "b", "content": '{"result": "4"}'},
    ]
    out = prompted_messages(messages, specs)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"].startswith("Be brief.\n\n# Tools") and '"name": "calculate"' in out[0]["content"]
    assert out[2]["content"].count("<tool_call>") == 2 and '"expression": "2+2"' in out[2]["content"]
    assert out[3]["content"].count("<tool_response>") == 2 and '"4"' in out[3]["content"]
    assert messages[0]["content"] == "Be brief."  # the caller's messages are not changed
