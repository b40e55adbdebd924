"""`plugdeck runs export`: real runs (an agent with tools, recorded in the run store, SQLite and
PostgreSQL) written as OpenAI chat fine-tuning JSONL, ShareGPT JSONL and a Hugging Face dataset, each
record checked against its format, secrets and PII redacted, runs chosen by status, date and eval score."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from ops_cli import plugdeck

from plugdeck import Agent, RunStore, ScriptedModel, tool
from plugdeck.ops import export
from plugdeck.ops.eval import Case, run_case, write_results
from plugdeck.ops.export_formats import openai_problems, sharegpt_problems
from plugdeck.redaction import register_secret

SECRET = "Zq8-vault-Key-41xPp"


@tool
def double(x: int) -> int:
    """Double a number."""
    return 2 * x


@tool
def lookup(name: str) -> str:
    """Look a person up."""
    return f"{name}: mail {name.lower()}@example.org, phone +1 415-555-0132, vault {SECRET}"


def _record_runs(target: str) -> dict[str, str]:
    """Three real runs: one call, two calls in one turn, and one that failed. Returns their ids."""
    register_secret(SECRET, "test vault")
    with RunStore(target) as store:
        one = Agent(ScriptedModel([{"tool_calls": [{"name": "double", "arguments": {"x": 21}}]}, "It is 42."]),
                    tools=[double, lookup], sinks=[store.record], system_prompt="Be brief.").run_sync("double 21")
        both = Agent(ScriptedModel([
            {"tool_calls": [{"name": "lookup", "arguments": {"name": "Ada"}},
                            {"name": "double", "arguments": {"x": 2}}]},
            "Ada is at ada@example.org; 2 doubled is 4."]),
            tools=[double, lookup], sinks=[store.record]).run_sync("Find Ada and double 2")
        failed = Agent(ScriptedModel([]), tools=[double], sinks=[store.record]).run_sync("no turns left")
        store.flush()
    return {"one": one.id, "both": both.id, "failed": failed.id}


def _export(target: str, fmt: str, **selection) -> list[dict]:
    with RunStore(target) as store:
        records, _ = export.build_records(store, fmt, export.Selection(**selection), export.redactor())
    return [r["record"] for r in records]


def test_real_runs_export_as_valid_openai_records(store_target):
    ids = _record_runs(store_target)
    records = _export(store_target, "openai")
    assert len(records) == 2  # the failed run is left out: only status ok by default
    for record in records:
        assert openai_problems(json.loads(json.dumps(record))) == []
    first, second = records
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    call = first["messages"][2]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "double"
    assert json.loads(call["function"]["arguments"]) == {"x": 21}
    assert first["messages"][3] == {"role": "tool", "tool_call_id": call["id"], "content": "42"}
    assert first["messages"][-1] == {"role": "assistant", "content": "It is 42."}
    assert {t["function"]["name"] for t in first["tools"]} == {"double", "lookup"}
    assert first["tools"][0]["function"]["parameters"]["type"] == "object"
    assert "parallel_tool_calls" not in first
    # Two calls in one turn: both answered by id, and the record says the model calls in parallel.
    assert second["parallel_tool_calls"] is True
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    calls = second["messages"][2]["tool_calls"]
    assert [m.get("tool_call_id") for m in second["messages"][3:5]] == [c["id"] for c in calls]
    text = json.dumps(records)
    assert SECRET not in text and "example.org" not in text and "415-555-0132" not in text
    assert second["messages"][3]["content"] == "Ada: mail [redacted], phone [redacted], vault [redacted]"
    assert ids["failed"] not in text
    with_failed = _export(store_target, "openai", status=None)
    assert len(with_failed) == 2  # the failed run had no answered model call: nothing to learn from


def test_real_runs_export_as_valid_sharegpt_records(tmp_path):
    target = str(tmp_path / "runs.db")
    _record_runs(target)
    first, second = _export(target, "sharegpt")
    for record in (first, second):
        assert sharegpt_problems(record) == []
    assert first["system"] == "Be brief."
    assert [t["from"] for t in first["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert json.loads(first["conversations"][1]["value"]) == {"name": "double", "arguments": {"x": 21}}
    assert {f["name"] for f in json.loads(first["tools"])} == {"double", "lookup"}
    calls = json.loads(second["conversations"][1]["value"])
    assert [c["name"] for c in calls] == ["lookup", "double"]
    results = json.loads(second["conversations"][2]["value"])
    assert len(results) == 2 and results[1] == "4" and "example.org" not in results[0]


def test_the_checks_find_what_each_format_refuses():
    good = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                               "function": {"name": "f", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                         {"role": "assistant", "content": "done"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    assert openai_problems(good) == []
    orphan = json.loads(json.dumps(good))
    orphan["messages"][2]["tool_call_id"] = "c9"
    assert any("answers no earlier tool call" in p for p in openai_problems(orphan))
    unknown = json.loads(json.dumps(good))
    unknown["tools"][0]["function"]["name"] = "g"
    assert any("not among the record's tools" in p for p in openai_problems(unknown))
    no_tools = {"messages": good["messages"]}
    assert any("before plugdeck kept its tool specs" in p for p in openai_problems(no_tools))
    assert any("role must be" in p for p in openai_problems({"messages": [{"role": "bot", "content": "x"}]}))
    swapped = {"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]}
    assert len(sharegpt_problems(swapped)) == 2
    assert sharegpt_problems({"conversations": [{"from": "human", "value": "q"}]}) == [
        "the conversation must end with a gpt or function_call turn"]


def test_a_run_that_makes_a_bad_record_stops_the_export_and_is_named(tmp_path):
    target = str(tmp_path / "runs.db")
    with RunStore(target) as store:
        bad = Agent(ScriptedModel([{"tool_calls": [{"name": "double", "arguments": "{x: oops"}]}, "sorry"]),
                    tools=[double], sinks=[store.record]).run_sync("double something")
        fine = Agent(ScriptedModel(["hello"]), tools=[double], sinks=[store.record]).run_sync("hi")
        store.flush()
        with pytest.raises(export.ExportError) as caught:
            export.build_records(store, "openai", export.Selection(), export.redactor())
        assert f"run {bad.id}" in str(caught.value) and "not a JSON object" in str(caught.value)
        records, report = export.build_records(store, "openai", export.Selection(), export.redactor(),
                                               skip_invalid=True)
    assert [r["run_id"] for r in records] == [fine.id] and bad.id in report.skipped


def test_runs_are_chosen_by_date_and_eval_score(tmp_path):
    target = str(tmp_path / "runs.db")
    with RunStore(target) as store:
        agent = Agent(ScriptedModel([{"tool_calls": [{"name": "double", "arguments": {"x": 4}}]}, "8",
                                     {"tool_calls": [{"name": "double", "arguments": {"x": 5}}]}, "11"]),
                      tools=[double], sinks=[store.record])
        cases = [Case(id="eight", question="double 4", expected=8, checks=[{"type": "numeric"}]),
                 Case(id="ten", question="double 5", expected=10, checks=[{"type": "numeric"}])]
        results = [asyncio.run(run_case(agent, case)) for case in cases]
        store.flush()
    write_results(tmp_path / "eval", results, {"model": "scripted"})
    scores = export.eval_scores([tmp_path / "eval"])
    assert scores == {results[0]["run_id"]: 1.0, results[1]["run_id"]: 0.5}  # the status passed, the number not
    kept = _export(target, "openai", min_score=0.9, scores=scores)
    assert [m["content"] for m in kept[0]["messages"] if m["role"] == "user"] == ["double 4"] and len(kept) == 1
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert len(_export(target, "openai", since=export.parse_day(today), until=export.parse_day(today, end=True))) == 2
    assert _export(target, "openai", until=export.parse_day("2020-01-01", end=True)) == []
    with pytest.raises(export.ExportError, match="not a date"):
        export.parse_day("yesterday")


def test_the_command_writes_jsonl_and_a_dataset_with_configured_redaction(tmp_path):
    pytest.importorskip("datasets")
    import datasets

    target = str(tmp_path / "runs.db")
    ids = _record_runs(target)
    (tmp_path / "plugdeck.toml").write_text('[export]\nredact = ["Ada"]\n')
    done = plugdeck(tmp_path, target, "runs", "export", "--format", "openai", "--out", "train.jsonl")
    assert done.returncode == 0, done.stderr
    assert "wrote 2 openai record(s)" in done.stderr
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(openai_problems(json.loads(line)) == [] for line in lines)
    assert "Ada" not in lines[1] and "[redacted]" in lines[1]
    done = plugdeck(tmp_path, target, "runs", "export", "--format", "hf", "--out", "train-ds")
    assert done.returncode == 0, done.stderr
    dataset = datasets.load_from_disk(str(tmp_path / "train-ds"))
    assert dataset["run_id"] == [ids["one"], ids["both"]]
    assert dataset[0]["messages"][2]["tool_calls"][0]["function"]["name"] == "double"
    assert {t["function"]["name"] for t in json.loads(dataset[0]["tools"])} == {"double", "lookup"}
    assert dataset["parallel_tool_calls"] == [False, True]
    with RunStore(target) as store:
        records, _ = export.build_records(store, "hf", export.Selection(), export.redactor())
    export.write(records, "hf", str(tmp_path / "train.parquet"), export.Selection())
    assert datasets.Dataset.from_parquet(str(tmp_path / "train.parquet"))["run_id"] == [ids["one"], ids["both"]]
    refused = plugdeck(tmp_path, target, "runs", "export", "--format", "openai", "--min-score", "0.5")
    assert refused.returncode == 1 and "--min-score needs --eval" in refused.stderr
    refused = plugdeck(tmp_path, target, "runs", "export", "--format", "csv")
    assert refused.returncode == 1 and "--format must be one of openai, sharegpt, hf" in refused.stderr


def test_runs_are_tagged_and_chosen_by_tag(store_target):
    ids = _record_runs(store_target)
    with RunStore(store_target) as store:
        assert store.tag(ids["both"], "good") == ids["both"]
        store.tag(ids["both"], "good")  # twice: still one tag
        store.tag(ids["one"], "reviewed")
        assert store.tags(ids["both"]) == ["good"]
        with pytest.raises(KeyError):
            store.tag("ffff", "good")
    kept = _export(store_target, "openai", tag="good")
    assert len(kept) == 1 and kept[0]["messages"][1]["content"] == "Find Ada and double 2"
    with RunStore(store_target) as store:
        store.tag(ids["both"], "good", remove=True)
        assert store.tags(ids["both"]) == []
    assert _export(store_target, "openai", tag="good") == []


def test_the_tag_command(tmp_path):
    target = str(tmp_path / "runs.db")
    ids = _record_runs(target)
    done = plugdeck(tmp_path, target, "runs", "tag", ids["one"], "good", "reviewed")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"run {ids['one']}: good, reviewed"
    done = plugdeck(tmp_path, target, "runs", "export", "--format", "sharegpt", "--tag", "reviewed")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert json.loads(line)["conversations"][0] == {"from": "human", "value": "double 21"}
    done = plugdeck(tmp_path, target, "runs", "tag", ids["one"], "good", "--remove")
    assert done.stdout.strip() == f"run {ids['one']}: reviewed"
    done = plugdeck(tmp_path, target, "runs", "tag", "nope", "good")
    assert done.returncode == 1 and "no run with id 'nope'" in done.stderr


def test_pii_patterns_take_contacts_and_leave_numbers():
    scrub = export.redactor()
    for contact in ("bo.li+ml@mail.example.co.uk", "+1 415-555-0132", "(415) 555-0132", "+49 30 1234567",
                    "+33 (0)1 23 45 67 89", "030 1234 5678"):
        assert scrub(f"write to {contact} today") == "write to [redacted] today", contact
    for plain in ("17.5% of 2,340 is 409.5", "on 2026-03-01", "version 1.2.3", "host 192.168.100.200", "3+4 = 7",
                  "x=-12", "call_1_0"):
        assert scrub(plain) == plain
    assert scrub({"arguments": '{"to": "ada@example.org", "n": 2}'}) == {"arguments": '{"to": "[redacted]", "n": 2}'}
    assert export.redactor(pii=[])("ada@example.org") == "ada@example.org"
    assert export.redactor([r"ORD-\d+"], pii=[])("order ORD-991 shipped") == "order [redacted] shipped"
    with pytest.raises(export.ExportError, match="not a regular expression"):
        export.redactor(["(unclosed"])
    found = export.settings([("a.toml", {"redact": ["x"]}), ("b.toml", {"redact": ["y"], "pii": ["email"]})])
    assert found == {"redact": ["x", "y"], "pii": ["email"]}
    with pytest.raises(export.ExportError, match="knows pii, redact"):
        export.settings([("a.toml", {"patterns": ["x"]})])
