"""The offline rules model: routes what it recognises to tools, never invents an answer."""

import pytest

from plugdeck import Agent
from plugdeck.models.rules import RulesModel
from plugdeck.plugins.calculator import plugin as calculator
from plugdeck.plugins.calculator.rules_skill import arithmetic_expression


@pytest.mark.parametrize("question, expression", [
    ("What is 17.5% of 2,340, plus 12?", "17.5% of 2,340 + 12"),
    ("what's 3 times 4 plus 2", "3 * 4 + 2"),
    ("Calculate 2 to the power of 10", "2 ^ 10"),
    ("How much is 15% more than 80?", "15% more than 80"),
    ("what is the square root of 144", "sqrt(144)"),
    ("12 x 12", "12*12"),
    ("What is 20 percent of 150?", "20% of 150"),
    ("(1/3 + 1/6) * 12", "(1/3 + 1/6) * 12"),
])
def test_arithmetic_is_recognised(question, expression):
    assert arithmetic_expression(question) == expression


@pytest.mark.parametrize("question", [
    "Who won the world cup in 2022?", "What is the capital of France?", "Order two pizzas for 7pm",
    "What is 5?", "hello", "",
])
def test_other_questions_are_not_arithmetic(question):
    assert arithmetic_expression(question) is None


@pytest.mark.parametrize("question, answer", [
    ("What is 17.5% of 2,340, plus 12?", "421.5"),
    ("What is 1/3 + 1/6?", "0.5"),
    ("what is 2 divided by 3", "2/3 (≈ 0.666666666667)"),
    ("What is 15% less than 200?", "170"),
    ("what is 2^100", "1267650600228229401496703205376"),
])
def test_answers_come_from_the_calculator(question, answer):
    run = Agent(RulesModel(), [calculator]).run_sync(question)
    assert run.status == "ok" and run.answer == answer
    assert run.usage.tool_calls == 1 and run.tool_results[0].tool == "calculator.calculate"


def test_calculator_errors_are_reported_not_guessed():
    run = Agent(RulesModel(), [calculator]).run_sync("what is 10 divided by 0")
    assert run.answer.startswith("I could not get an answer") and "zero" in run.answer


def test_without_the_calculator_it_says_so():
    run = Agent(RulesModel(), []).run_sync("What is 2 + 2?")
    assert run.usage.tool_calls == 0 and "no plugin with that capability" in run.answer


def test_unknown_requests_get_the_connect_hint():
    run = Agent(RulesModel(), [calculator]).run_sync("Write me a poem")
    assert run.usage.tool_calls == 0 and "can't answer that offline" in run.answer and "--base-url" in run.answer


@pytest.mark.parametrize("question, expression, result", [
    ("10!", "10!", "3628800"),
    ("What is 10!?", "10!", "3628800"),
    ("what is 10 factorial", "10!", "3628800"),
    ("the factorial of 5 plus 1", "5! + 1", "121"),
])
def test_factorial_as_the_readme_lists_it(question, expression, result):
    run = Agent(RulesModel(), [calculator]).run_sync(question)
    assert run.tool_results[0].arguments == {"expression": expression}
    assert run.answer == result


def test_a_turn_without_an_answer_ends_as_a_refusal():
    for question in ("Write me a poem", "what is 10 divided by 0"):
        run = Agent(RulesModel(), [calculator]).run_sync(question)
        last = [e for e in run.events if e.type == "model_called"][-1]
        assert last.finish_reason == "refusal", question
    answered = Agent(RulesModel(), [calculator]).run_sync("what is 2+2")
    assert [e for e in answered.events if e.type == "model_called"][-1].finish_reason == "stop"
