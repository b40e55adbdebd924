"""The one place that reads configuration.

Precedence: flags > `PLUGDECK_*` environment > `./plugdeck.toml` > user config
(`~/.config/plugdeck/config.toml`, or `$PLUGDECK_CONFIG`) > defaults. Data lives under
`PLUGDECK_HOME` (default `~/.local/share/plugdeck`).

    model = "local"                 # the default profile ("rules" is the offline default)

    [models.local]
    base_url = "http://127.0.0.1:8000/v1"
    model = "qwen2.5-7b-instruct"
    api_key_env = "LOCAL_LLM_KEY"   # the key is read from this variable, never stored here
    input_price = 0.0               # per million tokens; unset: a hosted model's list price (genai-prices)
    output_price = 0.0
    cached_input_price = 0.0        # cached prompt tokens (unset: the input price)

    run_store = "postgresql://plugdeck@db.internal/plugdeck"   # default: PLUGDECK_HOME/runs.db (SQLite)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

_PROFILE_KEYS = {"base_url", "model", "api_key_env", "input_price", "output_price", "cached_input_price", "deadline", "stream",
                 "max_retries", "context_window", "fallbacks", "tool_format", "send_reasoning", "tool_choice", "constrain"}
_TOP_KEYS = {"model", "base_url", "max_steps", "deadline", "home", "models", "planner", "run_store", "select_tools",
             "always_tools"}


class ConfigError(UserError, ValueError):
    pass


@dataclass
class ModelProfile:
    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    # Per million tokens. None (no price set): the hosted model's list price, if genai-prices knows it.
    input_price: float | None = None  # prompt tokens
    output_price: float | None = None  # completion tokens (reasoning tokens among them)
    cached_input_price: float | None = None  # prompt tokens the server had cached (None: the input price)
    deadline: float = 120.0
    stream: bool = True
    max_retries: int = 4
    context_window: int | None = None  # tokens; a context-length error falls back only to larger ones
    fallbacks: list[str] = field(default_factory=list)  # other profiles to try, in order (R29)
    # How tool calls are read: "auto" (the server's, else from the text), "native", "prompted" (tools
    # described in the prompt, for servers without tool support) or one text format ("hermes", ...;
    # models/toolcall_formats.py lists them, and the model layer checks the name).
    tool_format: str = "auto"
    send_reasoning: bool = False  # send the model's thinking back to it in later turns
    tool_choice: str | None = None  # sent with the tools: "auto", "required" or "none" (models/openai.py)
    constrain: str | None = None  # "vllm" or "llama.cpp": calls generated under their JSON Schema (models/openai.py)

    def api_key(self) -> str | None:
        from .redaction import register_secret

        variable = self.api_key_env or "PLUGDECK_API_KEY"
        key = os.environ.get(variable)
        register_secret(key, f"model profile {self.name} (${variable})")  # redacted wherever it turns up
        return key

    def describe(self) -> dict[str, Any]:
        """What is safe to show: the variable that holds the key, never the key."""
        return {
            "name": self.name, "base_url": self.base_url, "model": self.model,
            "api_key_env": self.api_key_env, "api_key_set": bool(self.api_key()),
            "input_price": self.input_price, "output_price": self.output_price,
            "cached_input_price": self.cached_input_price,
        }


@dataclass
class Config:
    home: Path
    model: str = "rules"
    base_url: str | None = None  # an endpoint for model names that are not profiles
    max_steps: int = 10
    deadline: float = 300.0
    planner: str = "auto"  # loop | plan | auto
    profiles: dict[str, ModelProfile] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # the files that were read
    # Where runs are stored: a SQLite file or a postgresql:// URL shared by several servers.
    run_store: str = ""
    # With many tools: offer the model only this many per question (0: all), plus these globs.
    select_tools: int = 0
    always_tools: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.run_store:
            self.run_store = str(self.runs_db)
        elif "://" not in self.run_store:
            self.run_store = str(Path(self.run_store).expanduser())

    @property
    def runs_db(self) -> Path:
        """The default SQLite run store; open `run_store` to honour the configuration."""
        return self.home / "runs.db"

    def profile(self, name: str) -> ModelProfile:
        if name in self.profiles:
            return self.profiles[name]
        known = ", ".join(["rules", *self.profiles])
        raise ConfigError(
            f"no model profile named {name!r} (known: {known}). Give --base-url URL --model NAME, "
            f"or add [models.{name}] to plugdeck.toml."
        )


def load_config(flags: dict[str, Any] | None = None, cwd: Path | None = None) -> Config:
    merged: dict[str, Any] = {}
    profiles: dict[str, dict[str, Any]] = {}
    sources = []
    for path in config_files(cwd):
        if path.is_file():
            data = _read_toml(path)
            for name, profile in data.pop("models", {}).items():
                profiles.setdefault(name, {}).update(profile)
            merged.update(data)
            sources.append(str(path))
    merged.update(_from_environment())
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    home = Path(merged.get("home") or Path.home() / ".local" / "share" / "plugdeck").expanduser()
    try:
        return Config(
            home=home,
            model=str(merged.get("model", "rules")),
            base_url=merged.get("base_url"),
            max_steps=int(merged.get("max_steps", 10)),
            deadline=float(merged.get("deadline", 300.0)),
            planner=str(merged.get("planner", "auto")),
            run_store=str(merged.get("run_store") or ""),
            select_tools=int(merged.get("select_tools", 0)),
            always_tools=_string_list(merged.get("always_tools", []), "always_tools"),
            profiles={name: _profile(name, p) for name, p in profiles.items()},
            sources=sources,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad configuration value: {exc}") from None


def config_files(cwd: Path | None = None) -> list[Path]:
    """The configuration files, in the order they are read (a later one wins)."""
    return [_user_config_path(), (cwd or Path.cwd()) / "plugdeck.toml"]


def _user_config_path() -> Path:
    explicit = os.environ.get("PLUGDECK_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "plugdeck" / "config.toml"


def config_tables(section: str, cwd: Path | None = None) -> list[tuple[Path, Any]]:
    """`[section]` of each configuration file that has one, in reading order (a later one wins).

    Features with tables of their own (agents, telemetry, knowledge) read them through this, and check
    their own keys; only this module opens and parses the configuration files.
    """
    found = []
    for path in config_files(cwd):
        if path.is_file():
            data = read_toml(path)
            if section in data:
                found.append((path, data[section]))
    return found


def read_toml(path: Path, *, error: type[Exception] = ConfigError) -> dict[str, Any]:
    """One TOML file, parsed; a syntax error is raised as `error`, naming the file and the line."""
    return parse_toml(path.read_text(encoding="utf-8"), path, error=error)


def parse_toml(text: str, source: str | Path, *, error: type[Exception] = ConfigError) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    data = read_toml(path)
    # Sections owned by later features (policy, plugins, ...) are read by them; ignore here.
    unknown = {k for k, v in data.items() if not isinstance(v, dict)} - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_TOP_KEYS - {'models'}))}")
    return {k: v for k, v in data.items() if k in _TOP_KEYS}


def _profile(name: str, data: dict[str, Any]) -> ModelProfile:
    unknown = set(data) - _PROFILE_KEYS
    if unknown:
        raise ConfigError(f"model profile {name!r}: unknown key(s) {', '.join(sorted(unknown))}")
    missing = {"base_url", "model"} - set(data)
    if missing:
        raise ConfigError(f"model profile {name!r} needs {' and '.join(sorted(missing))}")
    for key, kind in (("tool_format", str), ("send_reasoning", bool), ("tool_choice", str), ("constrain", str)):
        if key in data and not isinstance(data[key], kind):
            raise ConfigError(f"model profile {name!r}: {key} must be a {kind.__name__}, not {data[key]!r}")
    for key in ("input_price", "output_price", "cached_input_price"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"model profile {name!r}: {key} must be a number of 0 or more (per million tokens), "
                              f"not {value!r}")
    if "fallbacks" in data:
        data = {**data, "fallbacks": _string_list(data["fallbacks"], f"models.{name}.fallbacks")}
    return ModelProfile(name=name, **data)


def _string_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings, such as [\"calculator.*\"], not {value!r}")
    return value


def _from_environment() -> dict[str, Any]:
    names = {"PLUGDECK_MODEL": "model", "PLUGDECK_BASE_URL": "base_url", "PLUGDECK_MAX_STEPS": "max_steps",
             "PLUGDECK_DEADLINE": "deadline", "PLUGDECK_HOME": "home", "PLUGDECK_PLANNER": "planner",
             "PLUGDECK_RUN_STORE": "run_store", "PLUGDECK_SELECT_TOOLS": "select_tools"}
    return {key: os.environ[var] for var, key in names.items() if os.environ.get(var)}
