"""Policy rules, checked in code before every call: access, arguments, confirmation, budgets, errors."""

import json
import subprocess
import sys

import pytest
from cli_env import cli_environment

from plugdeck import Agent, Plugin, ScriptedModel, tool
from plugdeck.events import PolicyDecided, RunFinished
from plugdeck.policy import PolicyError, policy_from
from plugdeck.policy.load import load_policy
from plugdeck.policy.numbers import NumberCheck

CALLS = []


@tool
def search(query: str, limit: int = 5) -> list:
    """Search the catalogue."""
    CALLS.append(("search", query))
    return [f"result for {query}"]


@tool(effect="write")
def transfer(to: str, amount: float, currency: str = "EUR") -> str:
    """Move money."""
    CALLS.append(("transfer", to, amount))
    return "sent"


@tool
def fetch(url: str) -> str:
    """Fetch a page."""
    CALLS.append(("fetch", url))
    return "page"


shop = Plugin(name="shop", tools=[search, transfer, fetch])


@pytest.fixture(autouse=True)
def clear():
    CALLS.clear()


def run_with(policy_toml: str, calls: list, approve=None, **agent_options):
    policy = policy_from(__import__("tomllib").loads(policy_toml).get("policy", {}), policy_toml, "test.toml")
    model = ScriptedModel([{"tool_calls": calls}, "done"])
    agent = Agent(model, [shop], policy=policy, confirm=approve or (lambda a: False), **agent_options)
    run = agent.run_sync("go")
    return run, [e for e in run.events if isinstance(e, PolicyDecided)], model


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def test_deny_wins_and_the_model_is_told_why():
    run, decisions, model = run_with('[policy]\nallow = ["shop.*"]\ndeny = ["shop.fetch"]\n',
                                     [call("fetch", url="http://x"), call("search", query="a")])
    assert CALLS == [("search", "a")]
    denied = next(d for d in decisions if d.tool == "shop.fetch")
    assert denied.decision == "deny" and "deny 'shop.fetch'" in denied.rule and "line 3" in denied.rule
    content = [m["content"] for m in model.calls[1] if m["role"] == "tool"][0]
    assert '"kind": "denied"' in content


def test_third_party_plugins_are_denied_until_allowed():
    outside = Plugin(name="weather", tools=[search.in_plugin("weather")])
    outside.set_origin("third-party")
    model = ScriptedModel([{"tool_calls": [call("search", query="x")]}, "done"])
    run = Agent(model, [outside]).run_sync("go")
    decision = next(e for e in run.events if isinstance(e, PolicyDecided))
    assert decision.decision == "deny" and 'allow = ["weather.*"]' in decision.reason and not CALLS
    allowed = policy_from({"allow": ["weather.*"]})
    Agent(ScriptedModel([{"tool_calls": [call("search", query="x")]}, "done"]), [outside], policy=allowed).run_sync("go")
    assert CALLS == [("search", "x")]


@pytest.mark.parametrize("rule, arguments, allowed", [
    ('max = 100', {"to": "bob", "amount": 250}, False),
    ('max = 100', {"to": "bob", "amount": 50}, True),
    ('min = 1', {"to": "bob", "amount": 0.5}, False),
    ('values = ["EUR", "USD"]', {"to": "bob", "amount": 1, "currency": "BTC"}, False),
    ('pattern = "^[a-z]+$"', {"to": "Robert Tables", "amount": 1}, False),
])
def test_argument_rules(rule, arguments, allowed):
    path = "to" if "pattern" in rule else ("currency" if "values" in rule else "amount")
    toml = (f'[policy]\nconfirm_writes = false\n[[policy.arguments]]\ntool = "shop.transfer"\npath = "{path}"\n'
            f'{rule}\nreason = "keep transfers small"\n')
    run, decisions, _ = run_with(toml, [call("transfer", **arguments)])
    assert bool([c for c in CALLS if c[0] == "transfer"]) == allowed
    if not allowed:
        assert decisions[0].decision == "deny" and "line 3" in decisions[0].rule


def test_host_rules_and_nested_paths():
    toml = ('[policy]\n[[policy.arguments]]\ntool = "shop.fetch"\npath = "url"\nhosts = ["docs.example.com"]\n')
    run_with(toml, [call("fetch", url="http://169.254.169.254/latest"), call("fetch", url="https://docs.example.com/a")])
    assert CALLS == [("fetch", "https://docs.example.com/a")]


def test_an_argument_rule_can_ask_a_person_instead_of_denying():
    toml = ('[policy]\nconfirm_writes = false\n[[policy.arguments]]\ntool = "shop.transfer"\npath = "amount"\n'
            'max = 50\naction = "confirm"\nreason = "transfers over 50 EUR need a person\'s OK"\n')
    asked = []
    run_with(toml, [call("transfer", to="bob", amount=80), call("transfer", to="amy", amount=20)],
             approve=lambda a: asked.append(a) or True)
    assert [a.arguments["amount"] for a in asked] == [80] and len(CALLS) == 2
    assert asked[0].reason == "transfers over 50 EUR need a person's OK"


def test_confirm_lists_and_writes_without_confirmation():
    run, decisions, _ = run_with('[policy]\nconfirm_writes = false\n', [call("transfer", to="bob", amount=1)])
    assert CALLS and decisions[0].decision == "allow"
    CALLS.clear()
    run, decisions, _ = run_with('[policy]\nconfirm = ["shop.search"]\n', [call("search", query="q")])
    assert not CALLS and decisions[0].decision == "confirm"


@pytest.mark.parametrize("budget, calls, status", [
    ("max_tool_calls = 2", [call("search", query=str(i)) for i in range(4)], "ok"),
    ("max_steps = 1", [call("search", query="a")], "budget"),
])
def test_budgets(budget, calls, status):
    run, decisions, _ = run_with(f"[policy.budgets]\n{budget}\n", calls)
    assert run.status == status
    assert any(d.decision == "budget" for d in decisions)
    if "tool_calls" in budget:
        assert len(CALLS) == 2  # the rest were refused, and the model was told


def test_token_and_cost_budgets_stop_the_run_cleanly():
    turns = [{"tool_calls": [call("search", query="a")], "usage": {"prompt_tokens": 900, "completion_tokens": 200}},
             {"tool_calls": [call("search", query="b")], "usage": {"prompt_tokens": 900, "completion_tokens": 200}},
             "never"]
    model = ScriptedModel(turns)
    model.prices = (1.0, 2.0)  # per million tokens
    run = Agent(model, [shop], policy=policy_from({"budgets": {"max_tokens": 1000}})).run_sync("go")
    assert run.status == "budget" and "max_tokens" in run.error and CALLS == [("search", "a")]
    model = ScriptedModel(turns)
    model.prices = (1000.0, 1000.0)
    run = Agent(model, [shop], policy=policy_from({"budgets": {"max_cost": 1.0}})).run_sync("go")
    assert run.status == "budget" and "max_cost" in run.error
    assert isinstance(run.events[-1], RunFinished) and run.events[-1].status == "budget"


@pytest.mark.parametrize("toml, message", [
    ('[policy]\nalow = ["x"]\n', "line 2: unknown setting 'alow'"),
    ('[policy]\nconfirm_writes = "yes"\n', "line 2: confirm_writes must be a bool"),
    ('[policy]\n\n[policy.budgets]\nmax_steps = "ten"\n', "line 4: max_steps must be a int"),
    ('[policy]\n[[policy.arguments]]\ntool = "shop.transfer"\npath = "to"\npattern = "([a-z"\n', "line 5: bad pattern"),
    ('[policy]\n[[policy.arguments]]\ntool = "shop.transfer"\npath = "to"\n', "line 2: an arguments rule needs a constraint"),
    ('[policy]\n[policy.answers]\nnumbers = "sometimes"\n', "line 3: numbers must be one of off, flag, refuse"),
])
def test_mistakes_are_refused_with_the_line(tmp_path, toml, message):
    path = tmp_path / "policy.toml"
    path.write_text(toml)
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


def test_globs_that_match_no_tool_are_refused():
    policy = policy_from({"allow": ["shop.*", "shpo.*"]}, '[policy]\nallow = ["shop.*", "shpo.*"]\n', "p.toml")
    with pytest.raises(PolicyError, match="p.toml, line 2: allow pattern 'shpo.\\*' matches no tool"):
        policy.validate_tools([t.qualified_name for t in shop.tools])


async def test_number_check_flags_or_refuses_untraced_numbers():
    @tool
    def revenue(year: int) -> dict:
        """Revenue of a year."""
        return {"year": year, "revenue_eur": 1234567.5}

    turns = [{"tool_calls": [call("revenue", year=2025)]}, "Revenue in 2025 was 1,234,567.50 EUR, up 12% [1]."]
    flagged = await Agent(ScriptedModel(turns), tools=[revenue], checks=[NumberCheck("flag")]).run("2025 revenue?")
    assert flagged.answer == "Revenue in 2025 was 1,234,567.50 EUR, up 12% [unverified] [1]."
    refused = await Agent(ScriptedModel(turns), tools=[revenue], checks=[NumberCheck("refuse")]).run("2025 revenue?")
    assert refused.answer.startswith("I can't give this answer") and "12" in refused.answer
    clean = await Agent(ScriptedModel([turns[0], "It was 1,234,567.5 EUR in 2025."]), tools=[revenue],
                        checks=[NumberCheck("refuse")]).run("2025 revenue?")
    assert clean.answer == "It was 1,234,567.5 EUR in 2025."


def test_policy_check_replays_stored_runs(tmp_path):
    env = cli_environment(tmp_path)
    cli = [sys.executable, "-m", "plugdeck.cli.main"]
    subprocess.run([*cli, "ask", "what is 2+2"], env=env, cwd=tmp_path, capture_output=True, check=True)
    (tmp_path / "strict.toml").write_text('[policy]\ndeny = ["calculator.*"]\n')
    result = subprocess.run([*cli, "policy", "check", "--policy", "strict.toml", "--json"], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    report = json.loads(result.stdout)
    assert report["calls"] == 1 and len(report["changes"]) == 1
    change = report["changes"][0]
    assert (change["tool"], change["before"], change["after"]) == ("calculator.calculate", "allow", "deny")
    (tmp_path / "typo.toml").write_text('[policy]\ndeny = ["calculater.*"]\n')
    bad = subprocess.run([*cli, "policy", "check", "--policy", "typo.toml"], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "typo.toml, line 2: deny pattern 'calculater.*' matches no tool" in bad.stderr
