"""Agent(select_tools=k): each question shows the model only the relevant tools, through a real
OpenAI-compatible HTTP server, and the run records which tools were offered."""

from __future__ import annotations

import asyncio

import pytest

from mock_openai import MockOpenAI
from plugdeck import Agent, OpenAIModel
from plugdeck.events import PlannerNote, RunStarted, ToolFinished
from plugdeck.plugins.calculator import plugin as calculator
from plugdeck.policy import policy_from
from plugdeck.tools import tool_from_schema



def catalogue():
    """Twenty-odd everyday tools, each returning what it was asked."""
    made = {
        "get_weather_forecast": "Weather forecast for a city: temperature, rain and wind for the coming days.",
        "convert_currency": "Convert an amount of money from one currency to another at today's rate.",
        "calculate_bmi": "Body mass index from weight and height.",
        "book_flight": "Book a flight between two airports on a date.",
        "translate_text": "Translate text into another language.",
        "get_stock_price": "The latest trading price of a company's stock by ticker.",
        "send_email": "Send an email to a recipient with a subject and a body.",
        "find_restaurants": "Find restaurants near a place by cuisine.",
        "get_movie_showtimes": "Cinema showtimes for a film in a city.",
        "track_package": "Where a parcel is, by its tracking number.",
        "define_word": "The dictionary definition of an English word.",
        "get_exchange_holidays": "Days the stock exchange is closed this year.",
        "play_music": "Play a song or a playlist on the speaker.",
        "set_alarm": "Set an alarm clock for a time.",
        "get_traffic": "Traffic and travel time by car between two places.",
        "order_pizza": "Order a pizza for delivery.",
        "search_recipes": "Recipes that use given ingredients.",
        "get_news": "Today's news headlines on a topic.",
        "check_spelling": "Spelling mistakes in a text.",
        "get_time_zone": "The time zone and local time of a city.",
    }
    schema = {"type": "object", "properties": {"query": {"type": "string"}}}
    return [tool_from_schema(name, about, schema, lambda name=name, **kw: {"tool": name, **kw}, plugin="everyday")
            for name, about in made.items()]


def offered_names(request: dict) -> list[str]:
    return [spec["function"]["name"] for spec in request.get("tools", [])]


def run(agent: Agent, question: str, **kw):
    return asyncio.run(agent.run(question, **kw))


def test_only_the_selected_and_always_on_tools_reach_the_model():
    turns = [{"tool_calls": [{"name": "get_weather_forecast", "arguments": {"query": "Lyon"}}]}, "Sunny in Lyon."]
    with MockOpenAI(turns) as mock:
        agent = Agent(OpenAIModel("mock-model", mock.base_url), [calculator], tools=catalogue(), planner="loop",
                      select_tools=3, always_tools=["calculator.*"])
        done = run(agent, "Will it rain in Lyon tomorrow?")
        assert done.status == "ok" and done.answer == "Sunny in Lyon."
        first, second = (offered_names(r) for r in mock.requests)
    calculator_names = {t.name for t in calculator.tools}
    assert first == second  # the same tools for every step of the run
    assert "get_weather_forecast" in first and calculator_names <= set(first)
    assert len(first) == 3 + len(calculator_names)  # 3 chosen + the always-on calculator, of 21+ tools
    started = next(e for e in done.events if isinstance(e, RunStarted))
    assert len(started.tools) == 20 + len(calculator.tools)  # every tool the agent has is still listed
    assert "everyday.get_weather_forecast" in started.offered_tools and len(started.offered_tools) == len(first)
    assert any(isinstance(e, ToolFinished) and e.tool == "everyday.get_weather_forecast" for e in done.events)


def test_the_plan_planner_describes_only_the_selected_tools():
    plan = "1. convert_currency(query=\"100 USD in EUR\")\n2. join()"
    with MockOpenAI([plan, "100 USD is 92 EUR."]) as mock:
        agent = Agent(OpenAIModel("mock-model", mock.base_url), tools=catalogue(), planner="plan", select_tools=2)
        done = run(agent, "How much is 100 US dollars in euros?")
        prompt = mock.requests[0]["messages"][0]["content"]
    assert done.status == "ok", done.error
    described = [t.name for t in catalogue() if f"- {t.name}(" in prompt]
    assert "convert_currency" in described and len(described) == 2


def test_a_follow_up_keeps_the_subject_of_the_turn_before():
    with MockOpenAI(["ok", "ok"]) as mock:
        agent = Agent(OpenAIModel("mock-model", mock.base_url), tools=catalogue(), planner="loop", select_tools=2)
        history = [{"role": "user", "content": "What is the stock price of ACME?"},
                   {"role": "assistant", "content": "ACME trades at 12.30."}]
        run(agent, "and of Globex?", history=history)
        assert "get_stock_price" in offered_names(mock.requests[0])


def test_a_tool_that_was_not_offered_still_runs_under_the_policy():
    policy = policy_from({"allow": ["everyday.*"], "deny": ["everyday.order_pizza"]})
    turns = [{"tool_calls": [{"name": "define_word", "arguments": {"query": "zeugma"}},
                             {"name": "order_pizza", "arguments": {"query": "margherita"}}]}, "Done."]
    with MockOpenAI(turns) as mock:
        agent = Agent(OpenAIModel("mock-model", mock.base_url), tools=catalogue(), planner="loop", select_tools=1,
                      policy=policy)
        done = run(agent, "Will it rain in Lyon tomorrow?")
        assert offered_names(mock.requests[0]) == ["get_weather_forecast"]
    finished = {e.tool: e for e in done.events if isinstance(e, ToolFinished)}
    assert finished["everyday.define_word"].error is None
    assert finished["everyday.order_pizza"].error  # denied by the policy, not by the selection


def test_without_select_tools_every_tool_is_offered_and_nothing_is_recorded():
    with MockOpenAI(["ok"]) as mock:
        agent = Agent(OpenAIModel("mock-model", mock.base_url), tools=catalogue(), planner="loop")
        done = run(agent, "Will it rain in Lyon tomorrow?")
        assert len(offered_names(mock.requests[0])) == 20
    assert next(e for e in done.events if isinstance(e, RunStarted)).offered_tools is None


def test_a_failing_selector_offers_every_tool_and_says_why():
    class Broken:
        async def aselect(self, *args, **kwargs):
            raise RuntimeError("embedding model missing")

    with MockOpenAI(["ok"]) as mock:
        agent = Agent(OpenAIModel("mock-model", mock.base_url), tools=catalogue(), planner="loop", select_tools=2,
                      tool_selector=Broken())
        done = run(agent, "Will it rain in Lyon tomorrow?")
        assert len(offered_names(mock.requests[0])) == 20
    assert done.status == "ok"
    assert any(isinstance(e, PlannerNote) and "embedding model missing" in e.message for e in done.events)


def test_select_tools_must_not_be_negative():
    with pytest.raises(ValueError, match="select_tools"):
        Agent("rules", select_tools=-1)


def test_configuration_turns_selection_on_for_agents_built_from_it(tmp_path, monkeypatch):
    from plugdeck.assemble import AgentSetup, build_agent
    from plugdeck.config import ConfigError, load_config

    monkeypatch.setenv("PLUGDECK_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "plugdeck.toml").write_text(f'home = "{tmp_path / "home"}"\nselect_tools = 8\n'
                                            'always_tools = ["calculator.*"]\n')
    config = load_config(cwd=tmp_path)
    agent = build_agent(config, AgentSetup(model="mock-model", base_url="http://127.0.0.1:9/v1"))
    assert (agent.select_tools, agent.always_tools) == (8, ["calculator.*"])
    assert agent.tool_selector.tools == agent.tools

    (tmp_path / "plugdeck.toml").write_text('always_tools = "calculator.*"\n')
    with pytest.raises(ConfigError, match="always_tools must be a list of strings"):
        load_config(cwd=tmp_path)
