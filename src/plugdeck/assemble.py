"""Build an Agent from configuration: the one recipe the CLI, the HTTP server and the MCP server share.

Plugins come from entry points and from `plugins add`; knowledge bases are added by name; the
policy is loaded and checked against the tools that exist; answer checks follow the policy and the
grounded switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .config import Config
from .errors import UserError


class SetupError(UserError, ValueError):
    """Something in the request or configuration that the person can fix."""


@dataclass
class AgentSetup:
    model: str | None = None
    base_url: str | None = None
    plugins: list[str] | None = None  # names; None: every installed and added plugin
    kb: list[str] | None = None  # knowledge bases to answer from
    grounded: bool | None = None  # None: on when knowledge bases are the only plugins
    policy_path: str | None = None
    options: dict[str, Any] | None = None  # model settings (config.MODEL_SETTINGS) over the profile's
    system: str | None = None  # a system prompt below plugdeck's own (over the profile's `system`)


def load_plugins(config: Config, names: list[str] | None = None, warn: Callable[[str], None] | None = None):
    """Installed (entry points) and added (plugins add) plugins; by name if names are given."""
    from .plugins import registry
    from .plugins.loading import installed_plugins

    plugins, problems = installed_plugins()
    added, added_problems = registry.build_all(config.home, taken={p.name for p in plugins})
    plugins += added
    for problem in [*problems, *added_problems]:
        if warn:
            warn(f"plugin {problem.name!r} was skipped: {problem.message}")
    if names:
        by_name = {p.name: p for p in plugins}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise SetupError(f"no plugin named {', '.join(missing)} (installed: {', '.join(by_name) or 'none'})")
        plugins = [by_name[n] for n in names]
    return plugins


def policy_for(path: str | None, plugins: Iterable[Any]):
    from .policy import load_policy

    policy = load_policy(path)
    policy.validate_tools([t.qualified_name for p in plugins for t in p.tools])
    return policy


def knowledge_plugin(names: list[str], config: Config):
    from .extras import MissingExtra, require

    try:
        require("knowledge", "answering from a knowledge base (--kb)")
    except MissingExtra as exc:
        raise SetupError(str(exc)) from None
    from .plugins.knowledge import KnowledgeBase, KnowledgeError, knowledge_plugin as make

    try:
        bases = [KnowledgeBase.open(name, config.home) for name in names]
        plugin = make(bases)
    except KnowledgeError as exc:
        raise SetupError(str(exc)) from None
    plugin.bases = bases  # the grounding check reads the same bases
    return plugin


def build_agent(config: Config, setup: AgentSetup, *, confirm=None, sinks: Iterable[Any] = (),
                warn: Callable[[str], None] | None = None):
    from .agent.agent import DEFAULT_SYSTEM_PROMPT, Agent, with_instructions
    from .models.profiles import model_for, system_prompt_for
    from .policy.numbers import NumberCheck

    if config.planner not in ("loop", "plan", "auto"):
        raise SetupError(f"planner must be loop, plan or auto, not {config.planner!r}")
    # With knowledge bases alone, they are the plugins; named plugins come beside them.
    plugins = load_plugins(config, setup.plugins, warn) if setup.plugins or not setup.kb else []
    if setup.kb:
        plugins.append(knowledge_plugin(setup.kb, config))
    policy = policy_for(setup.policy_path, plugins)
    grounded = setup.grounded
    if grounded is None:
        grounded = policy.grounded or bool(setup.kb and not setup.plugins)
    checks: list[Any] = []
    system_prompt = DEFAULT_SYSTEM_PROMPT
    if grounded:
        if not setup.kb:
            raise SetupError("grounded answers need a knowledge base: add --kb NAME")
        from .plugins.knowledge import GROUNDED_SYSTEM_PROMPT, GroundingCheck

        checks.append(GroundingCheck(plugins[-1].bases))
        system_prompt = GROUNDED_SYSTEM_PROMPT
    if policy.numbers != "off":
        checks.append(NumberCheck(policy.numbers))
    from .ops.otel import telemetry_sink

    # A system prompt of the configuration's (the setup's, else the profile's) goes where `ask -s` goes:
    # below plugdeck's own framing, which it adds to and never replaces.
    own_system = setup.system or (None if setup.base_url else system_prompt_for(config, setup.model))
    trace = telemetry_sink(config)  # None (and no OpenTelemetry import) unless an endpoint is configured
    agent = Agent(
        model_for(config, setup.model, base_url=setup.base_url, options=setup.options),
        plugins,
        max_steps=config.max_steps,
        deadline=config.deadline,
        sinks=[*sinks, *([trace] if trace else [])],
        policy=policy,
        checks=checks,
        confirm=confirm,
        planner=config.planner,
        system_prompt=with_instructions(system_prompt, own_system),
        select_tools=config.select_tools,
        always_tools=config.always_tools,
        setup=setup,  # kept with a waiting run's checkpoint, so any process can rebuild the agent
    )
    if config.select_tools:
        from .agent.selection import ToolSelector

        agent.tool_selector = ToolSelector(agent.tools, home=config.home)  # tool embeddings cached there
    return agent


class ReplayAgents:
    """Today's agents for ops.run_replay (its AgentFactory): replay lives below this layer, so it is
    handed the way to build an agent rather than importing it."""

    def __init__(self, config: Config):
        self.config = config

    def installed(self) -> list[str]:
        return sorted(p.name for p in load_plugins(self.config, None))

    def build(self, *, plugins: list[str] | None, kb: list[str] | None, grounded: bool, policy_path: str | None,
              confirm: Callable[[Any], bool], warn: Callable[[str], None] | None) -> Any:
        setup = AgentSetup(plugins=plugins, kb=kb, grounded=grounded, policy_path=policy_path)
        try:
            return build_agent(self.config, setup, confirm=confirm, warn=warn)
        except SetupError as exc:
            from .ops.run_replay import ReplayError

            raise ReplayError(f"cannot rebuild the run's agent today: {exc}") from None
