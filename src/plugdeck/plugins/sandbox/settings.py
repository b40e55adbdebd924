"""The operator's sandbox settings: `PLUGDECK_HOME/sandbox.toml` (all optional).

    [ceiling]                 # no plugin gets more than this, whatever its manifest asks
    memory_mb = 1024
    cpu_s = 30
    wall_s = 60

    [lifecycle]
    warm = true               # keep a plugin's sandbox between calls (false: a fresh one per call)
    concurrency = 4           # calls at once per plugin; more wait their turn
    breaker_failures = 5      # crashes/kills/timeouts in a row that open the plugin's circuit...
    breaker_cooldown_s = 30   # ...for this long: calls are refused at once meanwhile

    [plugins.weather]
    secrets = { API_KEY = "WEATHER_API_KEY" }   # a secret the plugin declared -> the variable holding it
    allow_private = true      # it may reach the private origins it declares (off by default)
    knowledge = "docs"        # the knowledge base (PLUGDECK_HOME/kb/NAME) a store plugin declaring
                              # filesystem = "kb" sees, read-only, at /kb

Secret values stay in plugdeck's environment; the file only names where they are.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .limits import LimitError, Limits


@dataclass(frozen=True)
class PluginGrant:
    secrets: dict[str, str] = field(default_factory=dict)  # declared name -> environment variable
    allow_private: bool = False
    knowledge: str = ""  # a knowledge base's name, for a store plugin that declares filesystem "kb"


@dataclass(frozen=True)
class SandboxSettings:
    ceiling: Limits = field(default_factory=Limits)
    warm: bool = True
    concurrency: int = 4
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    plugins: dict[str, PluginGrant] = field(default_factory=dict)

    def grant(self, plugin: str) -> PluginGrant:
        return self.plugins.get(plugin, PluginGrant())

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sandbox.toml") -> SandboxSettings:
        unknown = sorted(set(data) - {"ceiling", "lifecycle", "plugins"})
        if unknown:
            raise LimitError(f"{where}: unknown section(s) {', '.join(unknown)} (known: ceiling, lifecycle, plugins)")
        life = data.get("lifecycle") or {}
        plugins = {}
        for name, grant in (data.get("plugins") or {}).items():
            secrets = grant.get("secrets") or {}
            if not isinstance(secrets, dict) or not all(isinstance(v, str) and v for v in secrets.values()):
                raise LimitError(f"{where}: plugins.{name}.secrets must map each secret's name to an environment "
                                 "variable's name")
            knowledge = grant.get("knowledge", "")
            if not isinstance(knowledge, str):
                raise LimitError(f"{where}: plugins.{name}.knowledge must be a knowledge base's name")
            plugins[name] = PluginGrant(dict(secrets), bool(grant.get("allow_private", False)), knowledge)
        for key in ("concurrency", "breaker_failures"):
            if key in life and (not isinstance(life[key], int) or life[key] <= 0):
                raise LimitError(f"{where}: lifecycle.{key} must be a positive whole number")
        return cls(
            ceiling=Limits.from_dict(data.get("ceiling") or {}, f"{where}: ceiling"),
            warm=bool(life.get("warm", True)),
            concurrency=life.get("concurrency", 4),
            breaker_failures=life.get("breaker_failures", 5),
            breaker_cooldown_s=float(life.get("breaker_cooldown_s", 30.0)),
            plugins=plugins,
        )

    @classmethod
    def load(cls, home: Path | None = None) -> SandboxSettings:
        import os

        home = Path(home or os.environ.get("PLUGDECK_HOME") or Path.home() / ".local" / "share" / "plugdeck")
        path = home.expanduser() / "sandbox.toml"
        if not path.exists():
            return cls()
        try:
            return cls.from_dict(tomllib.loads(path.read_text(encoding="utf-8")), str(path))
        except tomllib.TOMLDecodeError as exc:
            raise LimitError(f"{path} is not valid TOML ({exc})") from None
