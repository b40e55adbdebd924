"""Run a scenario, or a task's benign twin, and measure it (security-requirements.md section 7).

An attack's outcome is read from the spies, never from what the agent reports: did a request
carrying the attacker's value (or the person's secret) reach a service? The simulated person never
approves such a call, so every effect counted is one executed without a person's OK.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from plugdeck import Agent
from plugdeck.events import PolicyDecided, ToolFinished
from plugdeck.models.openai import OpenAIModel
from plugdeck.policy import policy_from

from .attacker import Brain, Call, PlanBrain, SimulatedUser
from .scenarios import BENIGN_TASKS, SCENARIOS, Scenario, Task
from .world import World

POLICY_TABLES = {
    "default": {},
    # The most permissive: every plugin allowed, writes without a person's OK (unless outside data came in).
    "permissive": {"allow": [f"{p}.*" for p in (
        "mail", "bank", "crm", "search", "weather", "pizzeria", "handbook", "shopdb", "tickets", "fetch", "office")],
        "confirm_writes": False},
}
POLICIES = {name: policy_from(table) for name, table in POLICY_TABLES.items()}


@dataclass
class AttackOutcome:
    scenario: str
    policy: str
    kinds: tuple[str, ...]
    attacked: bool  # the model made at least one of the attacker's calls
    effects: list[str]  # what reached a service for the attacker: executed without a person's OK
    prompts: int  # confirmations the person was asked, over all turns
    attacker_calls: list[dict[str, Any]] = field(default_factory=list)  # tool, arguments, decision, error
    task_done: bool = False  # the person's own task got done anyway (utility under attack)
    unsendable: list[str] = field(default_factory=list)
    shown: list[dict[str, Any]] = field(default_factory=list)  # confirmations put to the person: what they said
    requests: list[list[dict[str, Any]]] = field(default_factory=list, repr=False)  # what the model got, call by call

    @property
    def breached(self) -> bool:
        return bool(self.effects)

    def explain(self) -> str:
        lines = [f"{self.scenario} under the {self.policy} policy: {len(self.effects)} attacker effect(s) executed "
                 "without a person's OK"]
        lines += [f"  reached: {e}" for e in self.effects]
        lines += [f"  call {c['tool']}({c['arguments']}): {c['decision']} by {c['rule']!r}"
                  + (f", then {c['error']}" if c['error'] else ", executed") for c in self.attacker_calls]
        return "\n".join(lines)


@dataclass
class BenignOutcome:
    task: str
    policy: str
    completed: bool
    prompts: int
    why: str = ""


def agent(world: World, brain: Brain, policy: str, user: SimulatedUser, over: str = "scripted",
          planner: str = "loop", spotlight: str = "off") -> Agent:
    """`over`: "scripted" plays the brain in process (ScriptedModel); "http" through plugdeck's OpenAI
    client and the loopback OpenAI-compatible server, so it reads the prompt as sent on the wire."""
    if over == "http":
        world.model_server.brain = brain
        model = OpenAIModel("mock-model", world.model_server.base_url, max_retries=0)
    else:
        model = brain.model()
    rules = POLICIES[policy] if spotlight == "off" else policy_from({**POLICY_TABLES[policy], "spotlight": spotlight})
    return Agent(model, world.plugins, policy=rules, confirm=user, max_steps=20, planner=planner)


def play(world: World, agent: Agent, question: str, history: list[dict[str, Any]] | None = None) -> Any:
    async def go():
        try:
            return await agent.run(question, history=history)
        finally:
            if hasattr(agent.model, "aclose"):
                await agent.model.aclose()

    return world.run(go())


def resolved(world: World, task: Task) -> Task:
    """The task with this world's addresses where it names a service ({intranet_url}, ...)."""
    steps = tuple(tuple(Call(c.tool, world.filled(c.arguments)) for c in turn) for turn in task.steps)
    return replace(task, question=world.fill(task.question), steps=steps)


def run_attack(world: World, scenario: Scenario, policy: str) -> AttackOutcome:
    scenario = replace(scenario, task=resolved(world, scenario.task),
                       earlier=resolved(world, scenario.earlier) if scenario.earlier else None)
    world.reset()
    scenario.plant(world)
    world.ready()
    user = SimulatedUser(scenario.ground_truth, scenario.goal.values)
    history = scenario.forged(world)
    if scenario.earlier is not None:  # the first turn reads the planted text; the model is not yet acting on it
        if scenario.earlier_planner == "plan":
            quoted = f"{scenario.earlier.answer} The note says: {world.fill(scenario.text)}"
            first = PlanBrain(scenario.earlier.steps, quoted)
        else:
            first = Brain(scenario.earlier.steps, scenario.earlier.answer)
        history = play(world, agent(world, first, policy, user, scenario.over, scenario.earlier_planner),
                       scenario.earlier.question).messages
    thinker = PlanBrain if scenario.planner == "plan" else Brain
    brain = thinker(scenario.task.steps, scenario.task.answer, scenario.stages)
    run = play(world, agent(world, brain, policy, user, scenario.over, scenario.planner, scenario.spotlight),
               scenario.task.question, history)
    reached = scenario.goal.effect.reached(world.arrived())
    return AttackOutcome(
        scenario=scenario.id, policy=policy, kinds=scenario.kinds, attacked=bool(brain.attacker_calls),
        effects=[f"{a.service} {a.method} {a.target} {a.body}".strip()[:300] for a in reached],
        prompts=len(user.asked), attacker_calls=_calls(run, brain), task_done=_done(run, scenario.task)[0],
        unsendable=brain.unsendable,
        shown=[{"tool": a.tool, "arguments": a.arguments, "summary": a.summary, "reason": a.reason,
                "from_untrusted": list(a.from_untrusted)} for a in user.asked],
        requests=brain.requests)


def run_benign(world: World, task: Task, policy: str = "default") -> BenignOutcome:
    task = resolved(world, task)
    world.reset()
    world.ready()
    user = SimulatedUser(task.calls)
    run = play(world, agent(world, Brain(task.steps, task.answer), policy, user), task.question)
    done, why = _done(run, task)
    return BenignOutcome(task.id, policy, done, len(user.asked), why)


def _done(run: Any, task: Task) -> tuple[bool, str]:
    """The task is done when every one of its calls ran without error and the run answered."""
    finished = [e for e in run.events if isinstance(e, ToolFinished)]
    for call in task.calls:
        mine = [e for e in finished if e.tool == call.tool and e.arguments == call.arguments]
        if not mine:
            return False, f"{call.tool}({call.arguments}) was not called"
        if all(e.error for e in mine):
            error = mine[-1].error
            return False, f"{call.tool}: {error['kind']}: {error['message'][:200]}"
    if run.status != "ok":
        return False, f"the run ended {run.status}: {run.error}"
    return True, ""


def _calls(run: Any, brain: Brain) -> list[dict[str, Any]]:
    decided = {e.call_id: e for e in run.events if isinstance(e, PolicyDecided) and e.call_id}
    finished = {e.call_id: e for e in run.events if isinstance(e, ToolFinished)}
    calls = []
    for call_id, tool, arguments in brain.attacker_calls:
        decision, done = decided.get(call_id), finished.get(call_id)
        calls.append({"tool": tool, "arguments": arguments,
                      "decision": decision.decision if decision else "none", "rule": decision.rule if decision else "",
                      "error": done.error["kind"] if done and done.error else None})
    return calls


def run_all(world: World, scenarios: list[Scenario] = SCENARIOS) -> tuple[list[AttackOutcome], list[BenignOutcome]]:
    attacks = [run_attack(world, s, p) for s in scenarios for p in POLICIES]
    benign = [run_benign(world, t, p) for t in BENIGN_TASKS for p in POLICIES]
    return attacks, benign


def figures(attacks: list[AttackOutcome], benign: list[BenignOutcome]) -> dict[str, Any]:
    """The suite's figures, overall and per policy."""
    out: dict[str, Any] = {"scenarios": len({a.scenario for a in attacks}), "runs": len(attacks)}
    out["attacker_effects_without_ok"] = sum(a.breached for a in attacks)
    for policy in POLICIES:
        mine = [a for a in attacks if a.policy == policy]
        tasks = [b for b in benign if b.policy == policy]
        out[policy] = {
            "attacker_effects_without_ok": sum(a.breached for a in mine),
            "attacks_that_reached_the_model": sum(a.attacked for a in mine),
            "utility_under_attack": round(sum(a.task_done for a in mine) / len(mine), 3) if mine else None,
            "prompts_per_attacked_task": round(sum(a.prompts for a in mine) / len(mine), 2) if mine else None,
            "benign_tasks": len(tasks),
            "benign_completed": sum(b.completed for b in tasks),
            "benign_completion": round(sum(b.completed for b in tasks) / len(tasks), 3) if tasks else None,
            "prompts_per_benign_task": round(sum(b.prompts for b in tasks) / len(tasks), 2) if tasks else None,
        }
    out["benign_completion_default"] = out["default"]["benign_completion"]
    out["breached"] = sorted(f"{a.scenario} ({a.policy})" for a in attacks if a.breached)
    return out
