"""`plugdeck models probe`: the BFCL conformance sample run against the mock OpenAI server, answering
natively, as Hermes text, and wrongly; scores, detected format, recommendations, and --write."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest

from mock_openai import MockOpenAI
from plugdeck.models.conformance import CATEGORIES, load_cases
from plugdeck.models.probe import ProbeError, probe_model

CLI = [sys.executable, "-m", "plugdeck.cli.main"]


def accepted(options):
    return next(o for o in options if o != "")


def concrete(value):
    if isinstance(value, dict):
        return {k: concrete(accepted(v) if isinstance(v, list) else v) for k, v in value.items()
                if not (isinstance(v, list) and all(o == "" for o in v))}
    return value


def right_calls(case):
    """The ground truth as calls with wire names and one accepted value per argument (optional ones left out)."""
    toolset = case.toolset()
    wire = {t.name: toolset.wire_name[id(t)] for t in toolset.tools}
    calls = []
    for expected in case.answer:
        (name, arguments), = expected.items()
        chosen = {k: concrete(accepted(v)) for k, v in arguments.items() if "" not in v}
        calls.append({"name": wire[name], "arguments": chosen})
    return calls


def turns(style="native", wrong=()):
    out = []
    for case in load_cases():
        if case.category == "irrelevance":
            out.append("I cannot help with that using these functions.")
            continue
        calls = right_calls(case)
        if case.id in wrong:
            calls = [{**calls[0], "arguments": {**calls[0]["arguments"], "unexpected": 1}}, *calls[1:]]
        if style == "native":
            out.append({"tool_calls": calls})
        else:
            out.append("\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls))
    return out


def test_the_sample_has_five_cases_of_each_category():
    cases = load_cases()
    assert [c.category for c in cases] == [c for c in CATEGORIES for _ in range(5)]
    assert all(len(c.answer) > 1 for c in cases if c.category == "parallel")


async def test_a_model_that_calls_natively_and_rightly_scores_full_marks():
    with MockOpenAI(turns("native")) as mock:
        report = await probe_model(mock.base_url, model="mock-model")
    assert report["accuracy"] == {c: 1.0 for c in CATEGORIES}, report["failed"]
    assert report["formats"] == {"native": 15} and report["parse_failures"] == 0
    assert report["recommended"]["settings"] == {"tool_format": "auto"}
    assert set(report["latency"]) == {"p50", "max", "mean"}
    assert len(mock.requests) == 20 and all(r["tools"] for r in mock.requests)


async def test_wrong_calls_and_calls_where_none_fits_are_counted():
    answers = turns("native", wrong={"simple_80", "parallel_40"})
    answers[15] = {"tool_calls": [right_calls(load_cases()[0])[0]]}  # irrelevance_0: a call where none fits
    with MockOpenAI(answers) as mock:
        report = await probe_model(mock.base_url, model="mock-model")
    assert report["accuracy"] == {"simple": 0.8, "multiple": 1.0, "parallel": 0.8, "irrelevance": 0.8}
    assert set(report["failed"]) == {"simple_80", "parallel_40", "irrelevance_0"}
    assert "matches no expected call" in report["failed"]["simple_80"]


async def test_calls_written_as_hermes_text_are_detected_and_recommended():
    with MockOpenAI(turns("hermes")) as mock:
        report = await probe_model(mock.base_url, model="mock-model")
    assert report["accuracy"] == {c: 1.0 for c in CATEGORIES}, report["failed"]
    assert report["formats"] == {"hermes": 15}
    assert report["recommended"]["settings"] == {"tool_format": "hermes"}


async def test_a_failing_endpoint_is_reported_per_case():
    with MockOpenAI(default={"fault": "404", "message": "no such model"}) as mock:
        report = await probe_model(mock.base_url, model="mock-model", per_category=1)
    assert report["cases"] == 4 and len(report["errors"]) == 4 and "no such model" in report["errors"][0]


async def test_what_cannot_be_probed_is_refused_clearly(tmp_path):
    with pytest.raises(ProbeError, match="needs --model"):
        await probe_model("http://127.0.0.1:9/v1")
    with pytest.raises(ProbeError, match="neither an http"):
        await probe_model(str(tmp_path / "nothing-here"))


def test_the_cli_prints_the_report_and_writes_the_profile(tmp_path, cli_env):
    with MockOpenAI(turns("hermes") * 2) as mock:
        shown = subprocess.run([*CLI, "models", "probe", mock.base_url, "--model", "mock-model"], env=cli_env,
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "parallel" in shown.stdout and "hermes (15)" in shown.stdout and 'tool_format = "hermes"' in shown.stdout
        written = subprocess.run([*CLI, "models", "probe", mock.base_url, "--model", "mock-model", "--write", "local",
                                  "--json"], env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stdout + written.stderr
    profile = tomllib.loads((tmp_path / "plugdeck.toml").read_text())["models"]["local"]
    assert profile == {"base_url": mock.base_url, "model": "mock-model", "tool_format": "hermes"}
    listed = subprocess.run([*CLI, "models", "--json"], env=cli_env, cwd=tmp_path, capture_output=True, text=True)
    assert any(row["name"] == "local" for row in json.loads(listed.stdout))  # the configuration reads it back


# ---- `plugdeck models check`: every message true now that text formats and prompting exist --------------

GET_TIME_CALL = {"name": "get_time", "arguments": {}}


async def test_check_tells_a_native_tool_call_from_one_left_in_the_text():
    from plugdeck.models.probe import check_endpoint

    with MockOpenAI([{"tool_calls": [GET_TIME_CALL]}, "OK"]) as mock:
        native = await check_endpoint(mock.base_url, model="mock-model")
    assert native["tools"] is True and native["tool_format"] == "native" and native["note"] is None
    with MockOpenAI([{"tool_calls": [GET_TIME_CALL], "text_format": "glm45"}, "OK"]) as mock:
        text = await check_endpoint(mock.base_url, model="mock-model")
    assert text["tools"] is True and text["tool_format"] == "glm45" and text["error"] is None
    assert "parser is off" in text["note"] and "plugdeck reads such calls" in text["note"]


@pytest.mark.parametrize("refusal", [(400, '"auto" tool choice requires --enable-auto-tool-choice'),
                                     (500, "tools param requires --jinja flag")], ids=["vllm", "llama-server"])
async def test_check_on_a_server_without_tools_says_plugdeck_prompts_instead(refusal):
    from plugdeck.models.probe import check_endpoint

    with MockOpenAI(default="OK", supports_tools=False, no_tools_error=refusal) as mock:
        result = await check_endpoint(mock.base_url, model="mock-model")
    assert result["tools"] is False and "does not accept tools" in result["error"]
    assert "describes the tools in the prompt" in result["error"] and "needs tool calling" not in result["error"]


def test_the_check_cli_prints_the_note(cli_env):
    with MockOpenAI([{"tool_calls": [GET_TIME_CALL], "text_format": "hermes"}, "OK"]) as mock:
        shown = subprocess.run([*CLI, "models", "check", mock.base_url, "--model", "mock-model"], env=cli_env,
                               capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "note:" in shown.stdout and "hermes text" in shown.stdout
