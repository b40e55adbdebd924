"""The agents the server offers: `plugdeck` (from the `serve` flags) and any `[agents.NAME]` table.

    [agents.support]                  # in plugdeck.toml or the user config
    description = "Answers from the handbook"
    model = "local"                   # a model profile, or a model name at base_url
    kb = ["handbook"]
    plugins = ["calculator"]
    policy = "support-policy.toml"
    system = "You answer staff questions about the handbook."   # below plugdeck's own, instead of the profile's
    temperature = 0.1                 # model settings, over the profile's (config.MODEL_SETTINGS)
    extra_body = {chat_template_kwargs = {enable_thinking = false}}

OpenAI clients pick one with `model="support"`. An agent is built once per set of plugins it may
use: a key limited to some plugins gets an agent that holds only those tools, so the model never
sees the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..assemble import AgentSetup, build_agent
from ..config import MODEL_SETTINGS, Config, ConfigError, check_model_settings, config_tables
from .errors import ApiError
from .keys import ApiKey

DEFAULT_AGENT = "plugdeck"
_KEYS = {"description": str, "model": str, "base_url": str, "plugins": list, "kb": list, "grounded": bool,
         "policy": str, "system": str}


@dataclass
class AgentSpec:
    name: str
    setup: AgentSetup
    description: str = ""


def configured_agents(default: AgentSetup, cwd: Path | None = None) -> dict[str, AgentSpec]:
    """`plugdeck` first (flags over `[agents.plugdeck]`), then the other `[agents.NAME]` tables."""
    tables: dict[str, dict[str, Any]] = {}
    for path, data in config_tables("agents", cwd):
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: agents must be tables, one per agent ([agents.NAME])")
        for name, table in data.items():
            _check(path, name, table)
            tables.setdefault(name, {}).update(table)
    agents = {DEFAULT_AGENT: _spec(DEFAULT_AGENT, tables.pop(DEFAULT_AGENT, {}), default)}
    for name, table in tables.items():
        agents[name] = _spec(name, table, AgentSetup())
    return agents


def _check(path: Path, name: str, table: Any) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [agents.{name}] must be a table")
    check_model_settings({k: v for k, v in table.items() if k in MODEL_SETTINGS}, f"{path}: [agents.{name}]")
    for key, value in table.items():
        if key in MODEL_SETTINGS:
            continue
        if key not in _KEYS:
            raise ConfigError(f"{path}: [agents.{name}] has unknown key {key!r} (known: "
                              f"{', '.join([*_KEYS, *MODEL_SETTINGS])})")
        if not isinstance(value, _KEYS[key]):
            raise ConfigError(f"{path}: [agents.{name}] {key} must be a {_KEYS[key].__name__}")


def _spec(name: str, table: dict[str, Any], over: AgentSetup) -> AgentSpec:
    options = {k: v for k, v in table.items() if k in MODEL_SETTINGS} or None
    setup = AgentSetup(model=table.get("model"), base_url=table.get("base_url"), plugins=table.get("plugins"),
                       kb=table.get("kb"), grounded=table.get("grounded"), policy_path=table.get("policy"),
                       options=options, system=table.get("system"))
    flags = {k: v for k, v in vars(over).items() if v is not None}
    if options and over.options:  # a flag's setting wins over the table's, the others stay
        flags["options"] = {**options, **over.options}
    return AgentSpec(name, replace(setup, **flags), table.get("description", ""))


class AgentCatalog:
    def __init__(self, config: Config, specs: dict[str, AgentSpec], *, sinks: list[Callable] = (),
                 warn: Callable[[str], None] | None = None):
        self.config = config
        self.specs = specs
        self.sinks = list(sinks)
        self.warn = warn
        self._built: dict[tuple, Any] = {}

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    def build_all(self) -> None:
        """Build every agent with all its plugins now, so that a configuration mistake stops the start."""
        for name in self.specs:
            self.get(name, None)

    def get(self, name: str, key: ApiKey | None):
        """The agent NAME as this key may use it (None: the operator, everything)."""
        spec = self.specs.get(name)
        if spec is None:
            raise ApiError(404, f"the model {name!r} does not exist: this server's models are its agents "
                                f"({', '.join(self.specs)}); GET /v1/models lists them", code="model_not_found",
                           param="model")
        return self._agent(spec, key)

    def for_checkpoint(self, checkpoint: dict[str, Any] | None, key: ApiKey | None):
        """The agent that carries on a run parked in the run store, rebuilt from its checkpoint."""
        setup = (checkpoint or {}).get("setup")
        if not setup:
            raise ApiError(409, "this run cannot be carried on here: its checkpoint does not say how its agent "
                                "was built", code="cannot_resume")
        fields = {k: v for k, v in setup.items() if k in AgentSetup.__dataclass_fields__}
        return self._agent(AgentSpec("resumed", AgentSetup(**fields)), key)

    def _agent(self, spec: AgentSpec, key: ApiKey | None):
        setup = self._limited(spec, key)
        cache_key = (_tuple(setup.plugins), _tuple(setup.kb), setup.policy_path, setup.model, setup.base_url,
                     setup.grounded, json.dumps(setup.options, sort_keys=True), setup.system)
        agent = self._built.get(cache_key)
        if agent is None:
            try:
                agent = build_agent(self.config, setup, confirm=None, sinks=self.sinks, warn=self.warn)
            except ValueError as exc:  # SetupError, ConfigError, PolicyError: the server's configuration
                if key is None:
                    raise
                raise ApiError(500, f"agent {spec.name!r} cannot be built for key {key.name!r}: {exc}",
                               code="agent_setup") from None
            self._built[cache_key] = agent
        return agent

    def built(self) -> list[Any]:
        return list(self._built.values())

    def _limited(self, spec: AgentSpec, key: ApiKey | None) -> AgentSetup:
        """The agent's setup cut down to what the key may use; its own policy file if it has one."""
        setup = spec.setup
        if key is None:
            return setup
        if key.policy:
            setup = replace(setup, policy_path=key.policy)
        if key.all_plugins:
            return setup
        kb = [k for k in setup.kb or [] if key.allows(k)]
        if setup.plugins is None and setup.kb:
            plugins = None  # an agent of knowledge bases alone
        else:
            offered = setup.plugins if setup.plugins is not None else self.plugin_names()
            plugins = [p for p in offered if key.allows(p)]
        if not plugins and not kb:
            has = ", ".join([*(setup.plugins or self.plugin_names()), *(setup.kb or [])]) or "none"
            raise ApiError(403, f"key {key.name!r} may use none of the plugins of agent {spec.name!r} "
                                f"(the key may use: {', '.join(key.plugins)}; the agent has: {has})",
                           code="plugins_not_allowed")
        return replace(setup, plugins=plugins, kb=kb or None)

    def plugin_names(self) -> list[str]:
        """Installed and added plugins, by name, without building them."""
        from .. import extensions
        from ..plugins import registry

        names = sorted({e.name for e in extensions.declared(extensions.PLUGINS)})
        return names + [n for n in registry.configured(self.config.home) if n not in names]

    async def aclose(self) -> None:
        for agent in self._built.values():
            await agent.aclose()
        self._built.clear()


def _tuple(items: list[str] | None) -> tuple | None:
    return None if items is None else tuple(items)
