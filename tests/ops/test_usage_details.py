"""LLMOps details of a model call's usage, against a real loopback server: hosted models priced from
genai-prices when the profile sets no price (profile prices win; an unknown model is "price unknown",
not 0), cached and reasoning tokens counted and priced, and an estimate when the server sends no
usage, so that token budgets still stop a run."""

from __future__ import annotations

import json

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from mock_openai import MockOpenAI
from ops_cli import plugdeck

from plugdeck import Agent, RunStore, tool
from plugdeck.config import Config, ConfigError, ModelProfile, load_config
from plugdeck.events import ModelCalled
from plugdeck.models.profiles import model_for
from plugdeck.models.token_estimate import estimate_tokens
from plugdeck.policy.load import policy_from

QUESTION = "What is the capital of France?"


@tool
def lookup(name: str) -> str:
    """Look something up."""
    return f"{name}: 42"


def agent_for(tmp_path, mock: MockOpenAI, model: str, sinks=(), policy=None, **prices) -> Agent:
    profile = ModelProfile(name="hosted", base_url=mock.base_url, model=model, max_retries=0, **prices)
    config = Config(home=tmp_path, model="hosted", profiles={"hosted": profile})
    return Agent(model_for(config), tools=[lookup], sinks=list(sinks), policy=policy)


def calls_of(run) -> list[ModelCalled]:
    return [e for e in run.events if isinstance(e, ModelCalled)]


def test_a_hosted_model_with_no_profile_prices_is_priced_from_genai_prices(tmp_path):
    usage = {"prompt_tokens": 1200, "completion_tokens": 300}
    with MockOpenAI([{"text": "Paris.", "usage": usage}]) as mock:
        run = agent_for(tmp_path, mock, "gpt-4o").run_sync(QUESTION)
    (call,) = calls_of(run)
    expected = float(calc_price(PriceUsage(input_tokens=1200, output_tokens=300), "gpt-4o").total_price)
    assert call.priced and call.cost > 0 and call.cost == pytest.approx(expected)
    assert run.usage.cost == pytest.approx(expected) and run.usage.unpriced_calls == 0


def test_profile_prices_win_over_the_list_price(tmp_path):
    with MockOpenAI([{"text": "Paris.", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}]) as mock:
        run = agent_for(tmp_path, mock, "gpt-4o", input_price=1.0, output_price=2.0).run_sync(QUESTION)
    assert calls_of(run)[0].cost == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6)


def test_a_zero_price_is_a_price(tmp_path):
    with MockOpenAI([{"text": "Paris.", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}]) as mock:
        run = agent_for(tmp_path, mock, "gpt-4o", input_price=0.0, output_price=0.0).run_sync(QUESTION)
    (call,) = calls_of(run)
    assert call.priced and call.cost == 0


def test_an_unknown_model_is_price_unknown_not_free(tmp_path):
    store_path = str(tmp_path / "runs.db")
    with RunStore(store_path) as store, MockOpenAI(["Paris."]) as mock:
        run = agent_for(tmp_path, mock, "my-local-llama-7b", sinks=[store.record]).run_sync(QUESTION)
        store.flush()
        (row,) = store.costs("model")
    (call,) = calls_of(run)
    assert not call.priced and call.cost == 0 and run.usage.unpriced_calls == 1
    assert row["unpriced_calls"] == 1 and row["model_calls"] == 1
    shown = plugdeck(tmp_path, store_path, "runs", "show", run.id)
    assert shown.returncode == 0 and "price unknown" in shown.stdout
    costs = plugdeck(tmp_path, store_path, "runs", "costs", "--by", "model")
    assert costs.returncode == 0 and "price unknown" in costs.stdout and "0.000000" not in costs.stdout


def test_cached_and_reasoning_tokens_are_counted_stored_shown_and_priced(tmp_path, store_target):
    usage = {"prompt_tokens": 1000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 800},
             "completion_tokens_details": {"reasoning_tokens": 30}}
    with RunStore(store_target) as store, MockOpenAI([{"text": "Paris.", "usage": usage}]) as mock:
        agent = agent_for(tmp_path, mock, "a-reasoning-model", sinks=[store.record],
                          input_price=2.0, cached_input_price=0.5, output_price=8.0)
        run = agent.run_sync(QUESTION)
        store.flush()
        (row,) = store.costs("model")
    (call,) = calls_of(run)
    assert (call.prompt_tokens, call.cached_tokens, call.completion_tokens, call.reasoning_tokens) == (1000, 800, 50, 30)
    expected = (200 * 2.0 + 800 * 0.5 + 50 * 8.0) / 1e6  # reasoning tokens are output tokens
    assert call.cost == pytest.approx(expected) and run.usage.cost == pytest.approx(expected)
    assert (run.usage.cached_tokens, run.usage.reasoning_tokens) == (800, 30)
    assert (row["cached_tokens"], row["reasoning_tokens"]) == (800, 30) and row["cost"] == pytest.approx(expected)
    shown = plugdeck(tmp_path, store_target, "runs", "show", run.id)
    assert "cached 800" in shown.stdout and "reasoning 30" in shown.stdout


def test_cached_tokens_of_a_hosted_model_cost_its_cached_price(tmp_path):
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 800}}
    with MockOpenAI([{"text": "Paris.", "usage": usage}]) as mock:
        run = agent_for(tmp_path, mock, "gpt-4o").run_sync(QUESTION)
    expected = calc_price(PriceUsage(input_tokens=1000, cache_read_tokens=800, output_tokens=100), "gpt-4o")
    uncached = calc_price(PriceUsage(input_tokens=1000, output_tokens=100), "gpt-4o")
    assert calls_of(run)[0].cost == pytest.approx(float(expected.total_price))
    assert expected.total_price < uncached.total_price


@pytest.mark.parametrize("stream", [True, False])
def test_no_usage_from_the_server_is_estimated_and_marked(tmp_path, stream):
    answer = "The capital of France is Paris, on the Seine."
    with MockOpenAI([{"text": answer, "usage": False}]) as mock:
        agent = agent_for(tmp_path, mock, "my-local-llama-7b", input_price=0.0, output_price=0.0)
        agent.model.streaming = stream
        run = agent.run_sync(QUESTION)
    (call,) = calls_of(run)
    assert call.estimated and run.usage.estimated_calls == 1
    assert call.completion_tokens == estimate_tokens(answer)
    assert call.prompt_tokens > estimate_tokens(QUESTION)  # the system prompt and the question at least


def test_a_token_budget_stops_a_run_whose_server_sends_no_usage(tmp_path):
    long_text = "word " * 400  # ~500 estimated tokens per turn
    looping = {"text": long_text, "tool_calls": [{"name": "lookup", "arguments": {"name": "x"}}],
               "usage": False}
    store_path = str(tmp_path / "runs.db")
    with RunStore(store_path) as store, MockOpenAI(default=looping) as mock:
        agent = agent_for(tmp_path, mock, "my-local-llama-7b", sinks=[store.record],
                          policy=policy_from({"budgets": {"max_tokens": 1500}}))
        run = agent.run_sync(QUESTION)
        store.flush()
    assert run.status == "budget" and "max_tokens" in run.error
    assert 1 <= len(mock.requests) < 10 and run.usage.tokens >= 1500
    shown = plugdeck(tmp_path, store_path, "runs", "show", run.id)
    assert "estimated" in shown.stdout and "~" in shown.stdout
    costs = plugdeck(tmp_path, store_path, "runs", "costs", "--json")
    assert json.loads(costs.stdout)[0]["estimated_calls"] == len(mock.requests)


@pytest.mark.parametrize("value", [-1, "cheap", True])
def test_a_price_that_is_not_a_number_of_0_or_more_is_refused(tmp_path, value):
    (tmp_path / "plugdeck.toml").write_text(
        f'[models.m]\nbase_url = "http://127.0.0.1:1/v1"\nmodel = "m"\ncached_input_price = {json.dumps(value)}\n')
    with pytest.raises(ConfigError, match="cached_input_price must be a number of 0 or more"):
        load_config(cwd=tmp_path)
