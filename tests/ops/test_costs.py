"""Costs: tokens x the model profile's prices, per model call, per run, per day, per API key, per model."""

import json
from datetime import date, timedelta

import pytest

from ops_cli import plugdeck
from plugdeck import Agent, RunStore, ScriptedModel, tool
from plugdeck.config import load_config
from plugdeck.events import ModelCalled, RunFinished


@tool
def lookup(name: str) -> str:
    """Look something up."""
    return f"{name}: 42"


def priced(name, prices, turns):
    model = ScriptedModel(turns, name=name)
    model.prices = prices  # per million prompt / completion tokens, as config.model_for sets them
    return model


def two_step(prompt=1000, completion=200):
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return [{"tool_calls": [{"name": "lookup", "arguments": {"name": "x"}}], "usage": usage},
            {"text": "x is 42", "usage": usage}]


def test_each_model_call_and_the_run_carry_their_cost():
    run = Agent(priced("big", (3.0, 15.0), two_step()), tools=[lookup]).run_sync("x?")
    calls = [e for e in run.events if isinstance(e, ModelCalled)]
    assert [c.cost for c in calls] == [pytest.approx(0.006), pytest.approx(0.006)]  # 1000*3e-6 + 200*15e-6
    finished = run.events[-1]
    assert isinstance(finished, RunFinished) and finished.cost == pytest.approx(0.012) == run.cost


def test_costs_per_run_day_key_and_model(store_target):
    with RunStore(store_target) as store:
        big = Agent(priced("big", (3.0, 15.0), two_step() * 2), tools=[lookup], sinks=[store.record])
        small = Agent(priced("small", (0.1, 0.4), two_step(5000, 1000)), tools=[lookup], sinks=[store.record])
        free = Agent(ScriptedModel(["no price"], name="local"), sinks=[store.record])
        first = big.run_sync("one", api_key_id="alice")
        big.run_sync("two", api_key_id="bob")
        small.run_sync("three", api_key_id="alice")
        free.run_sync("four")
        store.flush()
        assert store.get_run(first.id)["cost"] == pytest.approx(0.012)
        assert store.list_runs()[0]["cost"] == 0 and store.list_runs()[0]["api_key_id"] is None
        by_key = {row["key"]: row for row in store.costs("key")}
        assert set(by_key) == {"alice", "bob", None}
        assert by_key["alice"]["cost"] == pytest.approx(0.012 + 2 * (5000 * 0.1 + 1000 * 0.4) / 1e6)
        assert (by_key["alice"]["runs"], by_key["alice"]["model_calls"], by_key["alice"]["prompt_tokens"]) == (2, 4, 12000)
        assert by_key["bob"]["cost"] == pytest.approx(0.012)
        by_model = {row["model"]: row for row in store.costs("model")}
        assert by_model["big"]["model_calls"] == 4 and by_model["local"]["cost"] == 0
        (today,) = store.costs("day")
        assert today["runs"] == 4 and today["cost"] == pytest.approx(sum(r["cost"] for r in by_key.values()))
        assert store.costs("day", since=date.today() + timedelta(days=2)) == []
        with pytest.raises(ValueError, match="day, key or model"):
            store.costs("hour")


def test_the_run_store_is_configured_by_file_and_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PLUGDECK_RUN_STORE", raising=False)
    monkeypatch.setenv("PLUGDECK_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("PLUGDECK_HOME", str(tmp_path / "home"))
    assert load_config(cwd=tmp_path).run_store == str(tmp_path / "home" / "runs.db")
    (tmp_path / "plugdeck.toml").write_text('run_store = "postgresql://postgres@127.0.0.1/test"\n')
    assert load_config(cwd=tmp_path).run_store == "postgresql://postgres@127.0.0.1/test"
    monkeypatch.setenv("PLUGDECK_RUN_STORE", str(tmp_path / "elsewhere.db"))
    assert load_config(cwd=tmp_path).run_store == str(tmp_path / "elsewhere.db")


def test_plugdeck_runs_shows_costs(store_target, tmp_path):
    with RunStore(store_target) as store:
        run = Agent(priced("big", (3.0, 15.0), two_step()), tools=[lookup], sinks=[store.record]).run_sync(
            "x?", api_key_id="alice")
        store.flush()
    listed = plugdeck(tmp_path, store_target, "runs")
    assert listed.returncode == 0, listed.stderr
    assert "cost" in listed.stdout and "0.012000" in listed.stdout and run.id in listed.stdout
    by_key = plugdeck(tmp_path, store_target, "runs", "costs", "--by", "key")
    assert by_key.returncode == 0 and "alice" in by_key.stdout and "0.012000" in by_key.stdout
    as_json = json.loads(plugdeck(tmp_path, store_target, "runs", "costs", "--by", "model", "--json").stdout)
    assert as_json == [{"model": "big", "runs": 1, "model_calls": 2, "prompt_tokens": 2000, "completion_tokens": 400,
                        "cached_tokens": 0, "reasoning_tokens": 0, "cost": pytest.approx(0.012),
                        "estimated_calls": 0, "unpriced_calls": 0}]
    bad = plugdeck(tmp_path, store_target, "runs", "costs", "--by", "week")
    assert bad.returncode == 1 and "--by takes day, key or model" in bad.stderr


def test_an_unreachable_configured_store_is_one_clear_line(tmp_path):
    result = plugdeck(tmp_path, "postgresql://postgres:hunter2@127.0.0.1:1/plugdeck", "runs")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the run store at postgresql://postgres:***@127.0.0.1:1/")
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
