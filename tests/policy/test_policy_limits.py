"""Limits: what a run may use, from the policy, the agent and one run; the stricter of each wins."""

import pytest

from plugdeck.errors import UserError
from plugdeck.policy import policy_from
from plugdeck.policy.engine import limit_reached
from plugdeck.usage import Limits, LimitsError, Usage


def test_tighter_keeps_the_stricter_of_each_limit():
    policy = Limits(max_steps=10, max_cost=0.5)
    run = Limits(max_steps=3, max_tool_calls=4, max_cost=2.0)
    merged = policy.tighter(run)
    assert merged == Limits(max_steps=3, max_tool_calls=4, max_cost=0.5)
    assert run.tighter(policy) == merged  # order does not matter
    assert policy.tighter(None) is policy and Limits().tighter(Limits()) == Limits()


def test_dict_round_trip_holds_only_what_is_set():
    limits = Limits(max_tokens=1000, max_seconds=2.5)
    assert limits.to_dict() == {"max_tokens": 1000, "max_seconds": 2.5}
    assert Limits.from_dict(limits.to_dict()) == limits
    assert Limits().to_dict() == {}


@pytest.mark.parametrize("data, message", [
    ({"max_step": 3}, "unknown limit 'max_step'"),
    ({"max_steps": 0}, "max_steps must be more than 0"),
    ({"max_cost": -1.0}, "max_cost must be more than 0"),
    ({"max_steps": 2.5}, "max_steps must be a whole number"),
    ({"max_tool_calls": True}, "max_tool_calls must be a whole number"),
    ({"max_seconds": "60"}, "max_seconds must be a number"),
])
def test_a_bad_limit_is_refused_clearly(data, message):
    with pytest.raises(LimitsError, match=message) as info:
        Limits.from_dict(data)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_the_policy_reads_its_budgets_table_as_limits():
    policy = policy_from({"budgets": {"max_steps": 4, "max_cost": 0.25}})
    assert policy.limits == Limits(max_steps=4, max_cost=0.25)
    assert policy_from({}).limits == Limits()


@pytest.mark.parametrize("usage, before, expected", [
    (Usage(model_calls=2), "model", None),
    (Usage(model_calls=3), "model", ("max_steps", "the max_steps budget (3) was reached: 3 model calls used")),
    (Usage(prompt_tokens=80, completion_tokens=20), "model",
     ("max_tokens", "the max_tokens budget (100) was reached: 100 tokens used")),
    (Usage(cost=0.5), "model", ("max_cost", "the max_cost budget (0.5) was reached: 0.5000 cost used")),
    (Usage(calls_admitted=5, model_calls=9), "tool",
     ("max_tool_calls", "the max_tool_calls budget (5) was reached: 5 tool calls used")),
    (Usage(calls_admitted=4, model_calls=9), "tool", None),  # steps are checked before model calls only
    (Usage(calls_admitted=9), "model", None),  # and tool calls before tool calls only
])
def test_limit_reached(usage, before, expected):
    limits = Limits(max_steps=3, max_tool_calls=5, max_tokens=100, max_cost=0.5)
    assert limit_reached(limits, usage, before=before) == expected


def test_no_limits_nothing_reached():
    assert limit_reached(Limits(), Usage(model_calls=10**6, cost=1e9), before="model") is None
    with pytest.raises(ValueError, match="before must be 'model' or 'tool'"):
        limit_reached(Limits(), Usage(), before="answer")
