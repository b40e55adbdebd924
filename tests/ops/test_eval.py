"""`plugdeck eval`: cases run concurrently on the offline rules model and the calculator, scored,
written as results.json and an HTML report, and compared between two evals."""

import asyncio
import json
import subprocess
import sys

import pytest

from plugdeck import Agent, ScriptedModel, tool
from plugdeck.ops.eval import Case, EvalError, evaluate, load_cases, score
from plugdeck.plugins.calculator import plugin as calculator

PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]

CASES = [
    {"id": "percent", "question": "What is 17.5% of 2,340, plus 12?", "expected": 421.5,
     "checks": [{"type": "numeric", "tolerance": 0.01}, {"type": "tool_used", "tool": "calculator.calculate"},
                {"type": "grounded"}]},
    {"id": "power", "question": "what is 2^10 - 24", "expected": "1000"},
    {"id": "exact", "question": "What is 3% of 1,999?", "checks": [{"type": "exact", "value": "59.97"}]},
    {"id": "off-by-one", "question": "What is 3% of 1,999?", "expected": 60,
     "checks": [{"type": "numeric", "tolerance": 0.01}]},
    {"id": "hamlet <b>", "question": "Who wrote Hamlet?",
     "checks": [{"type": "contains", "value": "Shakespeare"}, {"type": "tool_used", "tool": "calculator.*"}]},
]


def plugdeck(env, cwd, *args):
    return subprocess.run([*PLUGDECK, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def write_cases(path, cases):
    path.write_text("".join(json.dumps(c) + "\n\n" for c in cases))  # blank lines are allowed
    return path


def test_eval_scores_cases_and_writes_results_and_a_report(env, tmp_path):
    write_cases(tmp_path / "cases.jsonl", CASES)
    result = plugdeck(env, tmp_path, "eval", "cases.jsonl", "--concurrency", "3", "--out", "first")
    assert result.returncode == 1, result.stderr  # two cases fail: CI sees it
    assert "3/5 passed" in result.stdout and "✗ off-by-one" in result.stdout and "59.97" in result.stdout
    assert "Traceback" not in result.stderr

    document = json.loads((tmp_path / "first" / "results.json").read_text())
    assert document["plugdeck_eval"] == 1 and document["model"] == "rules" and document["concurrency"] == 3
    results = {r["id"]: r for r in document["results"]}
    assert [r["id"] for r in document["results"]] == [c["id"] for c in CASES]  # the file's order
    assert {i for i, r in results.items() if r["passed"]} == {"percent", "power", "exact"}
    percent = results["percent"]
    assert percent["answer"] == "421.5" and percent["status"] == "ok" and percent["run_id"]
    assert [c["type"] for c in percent["checks"]] == ["status", "numeric", "tool_used", "grounded"]
    assert percent["tool_calls"] == [{"tool": "calculator.calculate", "arguments": {"expression": "17.5% of 2,340 + 12"},
                                      "error": None}]
    assert results["power"]["checks"][1]["type"] == "numeric"  # the default check for a number
    failed = {c["type"]: c for c in results["off-by-one"]["checks"]}
    assert not failed["numeric"]["passed"] and "59.97" in failed["numeric"]["detail"]
    summary = document["summary"]
    assert (summary["cases"], summary["passed"], summary["failed"]) == (5, 3, 2)
    assert summary["by_check"]["numeric"] == {"passed": 2, "total": 3, "rate": 2 / 3}
    assert summary["by_check"]["tool_used"]["passed"] == 1 and summary["by_check"]["status"]["passed"] == 5

    report = (tmp_path / "first" / "report.html").read_text()
    for figure in ("Pass rate by check", "Time per case (histogram)", "Tokens per case"):
        assert f"<title>{figure}</title>" in report
    assert report.count("<svg") == 3 and "<script" not in report and "http-equiv=\"Content-Security-Policy\"" in report
    assert "hamlet &lt;b&gt;" in report and "hamlet <b>" not in report  # text from cases and models is escaped

    # The runs went to the run store, so each case can be replayed or shown.
    shown = plugdeck(env, tmp_path, "runs", "show", percent["run_id"], "--json")
    assert json.loads(shown.stdout)["answer"] == "421.5"

    again = plugdeck(env, tmp_path, "eval", "--no-fail", "--json", "cases.jsonl", "--out", "second", "--no-store")
    assert again.returncode == 0, again.stderr
    printed = json.loads(again.stdout)
    assert printed["failed"] == ["off-by-one", "hamlet <b>"] and printed["summary"]["passed"] == 3


def test_compare_shows_regressions_and_fixes(env, tmp_path):
    write_cases(tmp_path / "cases.jsonl", CASES[:3])
    (tmp_path / "deny.toml").write_text('[policy]\ndeny = ["calculator.*"]\n')
    assert plugdeck(env, tmp_path, "eval", "cases.jsonl", "--out", "before").returncode == 0
    denied = plugdeck(env, tmp_path, "eval", "cases.jsonl", "--out", "after", "--policy", "deny.toml")
    assert denied.returncode == 1

    result = plugdeck(env, tmp_path, "eval", "compare", "before", "after/results.json")
    assert result.returncode == 1, result.stderr
    assert "3 regressions" in result.stdout and "pass rate 100% → 0%" in result.stdout
    assert "percent" in result.stdout and "tool_used" in result.stdout

    data = json.loads(plugdeck(env, tmp_path, "eval", "compare", "before", "after", "--json").stdout)
    assert [r["id"] for r in data["regressions"]] == ["percent", "power", "exact"]
    assert data["regressions"][0]["answer_before"] == "421.5" and data["fixes"] == []
    assert data["before"]["pass_rate"] == 1.0 and data["after"]["pass_rate"] == 0.0

    back = plugdeck(env, tmp_path, "eval", "compare", "after", "before")
    assert back.returncode == 0 and "3 fixes" in back.stdout and "no regressions" in back.stdout

    missing = plugdeck(env, tmp_path, "eval", "compare", "before", "nowhere")
    assert missing.returncode == 1 and "no eval results at nowhere (give an eval" in missing.stderr


def test_bad_case_files_are_refused_with_the_line(tmp_path):
    def refused(text, message):
        path = tmp_path / "cases.jsonl"
        path.write_text(text)
        with pytest.raises(EvalError, match=message):
            load_cases(path)

    refused('{"question": "1+1"}\n{"question": "2+2",}\n', r"cases.jsonl line 2: not valid JSON")
    refused('{"question": "1+1", "checks": [{"type": "exactly"}]}\n',
            r"line 1, check 1: unknown check type 'exactly' \(known: exact, contains, numeric, tool_used, grounded\)")
    refused('{"id": "a", "question": "1+1"}\n{"id": "a", "question": "2+2"}\n', r"line 2: the id 'a' is used twice")
    refused('{"question": "1+1", "checks": [{"type": "numeric", "value": "two"}]}\n', r"numeric needs a number")
    refused('{"question": "1+1", "checks": [{"type": "tool_used"}]}\n', r"tool_used needs \"tool\"")
    refused('{"question": "1+1", "checks": [{"type": "contains", "value": "2", "tolerance": 1}]}\n',
            r"contains does not take tolerance")
    refused('{"question": ""}\n', r"\"question\" must be a non-empty string")
    refused('{"question": "1+1", "answer": "2"}\n', r"unknown key\(s\) answer")
    refused("\n\n", r"has no cases")
    with pytest.raises(EvalError, match="no cases file at"):
        load_cases(tmp_path / "missing.jsonl")


def outcome(case, answer, events=(), status="ok"):
    results = score(case, answer, status, list(events))
    return [(r.type, r.passed) for r in results][1:], results


def test_checks_score_answers():
    numeric = Case("n", "q", 2340.0, [{"type": "numeric"}])
    assert outcome(numeric, "It is 2,340 in all.")[0] == [("numeric", True)]
    assert outcome(numeric, "It is 2,341.")[0] == [("numeric", False)]
    relative = Case("r", "q", 100, [{"type": "numeric", "relative": 0.05}])
    assert outcome(relative, "about 104")[0] == [("numeric", True)]
    assert outcome(relative, "about 106")[0] == [("numeric", False)]
    assert "the answer has no number" in outcome(relative, "no idea")[1][1].detail

    contains = Case("c", "q", None, [{"type": "contains", "value": ["Paris", "France"]}])
    assert outcome(contains, "paris is in france")[0] == [("contains", True)]
    assert "lacks 'France'" in outcome(contains, "Paris, Texas")[1][1].detail
    exact = Case("e", "q", "Yes", [{"type": "exact"}, {"type": "exact", "ignore_case": True}])
    assert outcome(exact, "  yes ")[0] == [("exact", False), ("exact", True)]

    ran = [{"type": "tool_finished", "tool": "calculator.calculate", "arguments": {"expression": "1+1"},
            "result": {"result": "2"}, "error": None},
           {"type": "tool_finished", "tool": "shop.order", "arguments": {}, "error": {"kind": "denied", "message": "no"}}]
    used = Case("t", "q", None, [{"type": "tool_used", "tool": "calculator.*", "arguments": {"expression": "1+1"}},
                                 {"type": "tool_used", "tool": "calculator.calculate", "arguments": {"expression": "2"}},
                                 {"type": "tool_used", "tool": "shop.order"}])
    assert outcome(used, "2", ran)[0] == [("tool_used", True), ("tool_used", False), ("tool_used", False)]

    grounded = Case("g", "What is 1+1?", None, [{"type": "grounded"}])
    assert outcome(grounded, "It is 2.", ran)[0] == [("grounded", True)]
    assert "numbers in the answer that no tool returned: 3" in outcome(grounded, "It is 3.", ran)[1][1].detail
    assert outcome(grounded, "It is 2.", [])[0] == [("grounded", False)]
    checked = [{"type": "answer_checked", "check": "grounding", "passed": False}]
    assert outcome(grounded, "It is 2.", ran + checked)[0] == [("grounded", False)]

    budget = Case("b", "q", None, [], status="budget")
    assert score(budget, None, "budget", [])[0].passed and not score(budget, "x", "ok", [])[0].passed


async def test_cases_run_concurrently_up_to_the_limit():
    running, most = 0, 0

    @tool
    async def slow_echo(text: str) -> str:
        """Echo after a pause."""
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return text

    def turn(messages, tools):
        if messages[-1]["role"] == "tool":
            return messages[-1]["content"]
        return {"tool_calls": [{"name": "slow_echo", "arguments": {"text": messages[-1]["content"]}}]}

    cases = [Case(str(i), f"question {i}", f"question {i}") for i in range(6)]
    for case in cases:
        case.checks = [{"type": "exact"}]
    agent = Agent(ScriptedModel([turn] * 12), [calculator], tools=[slow_echo])
    done = []
    results = await evaluate(agent, cases, concurrency=2, on_result=lambda r: done.append(r["id"]))
    assert most == 2 and sorted(done) == [c.id for c in cases]
    assert [r["id"] for r in results] == [c.id for c in cases] and all(r["passed"] for r in results)


async def test_the_report_plots_tokens_and_costs(tmp_path):
    from plugdeck.ops.eval import load_results, write_results

    def turn(messages, tools):
        size = len(messages[-1]["content"])
        return {"text": "ok", "usage": {"prompt_tokens": 10 * size, "completion_tokens": size}}

    model = ScriptedModel([turn] * 3)
    model.prices = (2.0, 8.0)  # per million tokens
    cases = [Case(name, "x" * size, "ok") for name, size in (("short", 1), ("medium", 5), ("long", 20))]
    for case in cases:
        case.checks = [{"type": "exact"}]
    results = await evaluate(Agent(model, system_prompt=None), cases, concurrency=1)
    write_results(tmp_path / "out", results, {"cases_file": "inline", "model": "scripted"})
    document = load_results(tmp_path / "out")
    assert [r["tokens"] for r in document["results"]] == [11, 55, 220]
    assert document["summary"]["tokens"] == {"prompt": 260, "completion": 26, "total": 286}
    assert document["results"][2]["cost"] == pytest.approx((200 * 2 + 20 * 8) / 1e6)
    report = (tmp_path / "out" / "report.html").read_text()
    assert "<title>Cost per case</title>" in report and report.count("<svg") == 4
    assert "<title>long: 200 prompt</title>" in report and "<title>long: 20 completion</title>" in report
