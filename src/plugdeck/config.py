"""The one place that reads configuration.

Precedence: flags > `PLUGDECK_*` environment > `OPENAI_BASE_URL` > `./plugdeck.toml` > user config
(`~/.config/plugdeck/config.toml`, or `$PLUGDECK_CONFIG`) > defaults. Data lives under
`PLUGDECK_HOME` (default `~/.local/share/plugdeck`).

A model's key: the profile's `api_key = "keyring:NAME"` (stored with `plugdeck keys set NAME`), else
its `api_key_env` variable, else `PLUGDECK_API_KEY`, else `OPENAI_API_KEY`, which goes only to OpenAI's
endpoint (`OPENAI_BASE_URL`, default https://api.openai.com/v1), as the OpenAI SDK sends it.

    model = "local"                 # the default profile ("rules" is the offline default)

    [models.local]
    base_url = "http://127.0.0.1:8000/v1"
    model = "qwen2.5-7b-instruct"
    api_key_env = "LOCAL_LLM_KEY"   # the key is read from this variable, never stored here
    input_price = 0.0               # per million tokens; unset: a hosted model's list price (genai-prices)
    output_price = 0.0
    cached_input_price = 0.0        # cached prompt tokens (unset: the input price)
    temperature = 0.2               # model settings, sent with each request (MODEL_SETTINGS)
    max_tokens = 1024
    extra_body = {chat_template_kwargs = {enable_thinking = false}}   # vLLM: fields of its own
    system = "Answer in French."    # a system prompt, added below plugdeck's own (as `ask -s` is)

    [models.gpt]
    base_url = "https://api.openai.com/v1"
    model = "gpt-4.1-mini"
    api_key = "keyring:openai"      # a key stored with `plugdeck keys set openai`

    run_store = "postgresql://plugdeck@db.internal/plugdeck"   # default: PLUGDECK_HOME/runs.db (SQLite)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

OPENAI_ENDPOINT = "https://api.openai.com/v1"
KEYRING_PREFIX = "keyring:"
# Settings sent with each model request, from a profile, an [agents.NAME] table or flags (`-o KEY VALUE`):
# the kinds each may be. `extra_body`'s fields are sent as they are, beside the others (vLLM's
# `chat_template_kwargs`, a provider's own switches).
MODEL_SETTINGS: dict[str, tuple[type, ...]] = {
    "temperature": (int, float), "top_p": (int, float), "max_tokens": (int,), "seed": (int,), "stop": (str, list),
    "tool_choice": (str,), "extra_body": (dict,),
}
_FIELDS_PLUGDECK_SENDS = {"model", "messages", "stream", "stream_options", "tools"}
_PROFILE_KEYS = {"base_url", "model", "api_key_env", "api_key", "input_price", "output_price", "cached_input_price", "deadline", "stream",
                 "max_retries", "context_window", "fallbacks", "tool_format", "send_reasoning", "constrain",
                 "system", *MODEL_SETTINGS}
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
    key_name: str | None = None  # `api_key = "keyring:NAME"`: a key stored with `plugdeck keys set NAME`
    settings: dict[str, Any] = field(default_factory=dict)  # MODEL_SETTINGS other than tool_choice
    system: str | None = None  # a system prompt, added below plugdeck's own (as `ask -s` is)

    def api_key(self, *, strict: bool = False) -> str | None:
        """The key for this profile's endpoint (see the module's docstring), registered as a secret so
        it is redacted wherever it turns up. `strict`: a stored key that cannot be read is an error
        (for the model call); otherwise None (for listings and redaction lists)."""
        from .redaction import register_secret

        if self.key_name:
            from .secret_store import get_secret

            try:
                key = get_secret(self.key_name)
            except UserError:
                if strict:
                    raise
                return None
            if key is None and strict:
                raise ConfigError(f"model profile {self.name!r} uses the stored key {self.key_name!r}, which is not "
                                  f"stored on this machine: plugdeck keys set {self.key_name}")
            return key
        variable = self.api_key_env or "PLUGDECK_API_KEY"
        key = os.environ.get(variable)
        if not key and not self.api_key_env:
            key = openai_key_for(self.base_url)
            variable = "OPENAI_API_KEY"
        register_secret(key, f"model profile {self.name} (${variable})")
        return key

    def describe(self) -> dict[str, Any]:
        """What is safe to show: where the key comes from, never the key."""
        return {
            "name": self.name, "base_url": self.base_url, "model": self.model,
            "api_key_env": self.api_key_env, "api_key_set": bool(self.api_key()),
            **({"api_key": KEYRING_PREFIX + self.key_name} if self.key_name else {}),
            "input_price": self.input_price, "output_price": self.output_price,
            "cached_input_price": self.cached_input_price,
        }


def openai_key_for(base_url: str) -> str | None:
    """OPENAI_API_KEY, when `base_url` is OpenAI's endpoint (OPENAI_BASE_URL, or OpenAI's own): the key
    is never sent to any other server."""
    from .redaction import register_secret

    key = os.environ.get("OPENAI_API_KEY")
    register_secret(key, "$OPENAI_API_KEY")
    endpoint = os.environ.get("OPENAI_BASE_URL") or OPENAI_ENDPOINT
    return key if key and _same_endpoint(base_url, endpoint) else None


def _same_endpoint(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def check_model_settings(values: dict[str, Any], where: str) -> dict[str, Any]:
    """`values` if each is a known model setting of the right kind; otherwise a ConfigError naming it."""
    for key, value in values.items():
        if key not in MODEL_SETTINGS:
            raise ConfigError(f"{where}: {key!r} is not a model setting; known: {', '.join(MODEL_SETTINGS)} "
                              "(send anything else in extra_body)")
        kinds = MODEL_SETTINGS[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = " or ".join({int: "an integer", float: "a number", str: "text", list: "a list of texts",
                                dict: "a table"}[k] for k in kinds)
            raise ConfigError(f"{where}: {key} must be {kind}, not {value!r}")
        if key == "stop" and isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: stop must be a text or a list of texts, not {value!r}")
        if key == "extra_body" and (clash := sorted(set(value) & _FIELDS_PLUGDECK_SENDS)):
            raise ConfigError(f"{where}: extra_body cannot set {', '.join(clash)}: plugdeck sends those itself")
        if key == "max_tokens" and value < 1:
            raise ConfigError(f"{where}: max_tokens must be at least 1, not {value}")
    return values


def parse_model_option(text: str) -> Any:
    """A `-o KEY VALUE` flag's value: JSON where it reads as JSON (0.2, 42, ["END"], {...}), else the text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


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
    except ConfigError:
        raise
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
        raise ConfigError(f"model profile {name!r}: unknown key(s) {', '.join(sorted(unknown))}; known: "
                          f"{', '.join(sorted(_PROFILE_KEYS))} (send anything else in extra_body)")
    missing = {"base_url", "model"} - set(data)
    if missing:
        raise ConfigError(f"model profile {name!r} needs {' and '.join(sorted(missing))}")
    for key, kind in (("tool_format", str), ("send_reasoning", bool), ("constrain", str), ("system", str)):
        if key in data and not isinstance(data[key], kind):
            raise ConfigError(f"model profile {name!r}: {key} must be a {kind.__name__}, not {data[key]!r}")
    for key in ("input_price", "output_price", "cached_input_price"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"model profile {name!r}: {key} must be a number of 0 or more (per million tokens), "
                              f"not {value!r}")
    data = dict(data)
    if "fallbacks" in data:
        data["fallbacks"] = _string_list(data["fallbacks"], f"models.{name}.fallbacks")
    if "api_key" in data:
        data["key_name"] = _stored_key_name(name, data.pop("api_key"), data.get("api_key_env"))
    settings = {k: data.pop(k) for k in list(data) if k in MODEL_SETTINGS}
    check_model_settings(settings, f"model profile {name!r}")
    tool_choice = settings.pop("tool_choice", None)
    return ModelProfile(name=name, **data, tool_choice=tool_choice, settings=settings)


def _stored_key_name(profile: str, value: Any, api_key_env: Any) -> str:
    """The NAME of `api_key = "keyring:NAME"`; anything else (a key pasted in) is refused unread."""
    where = f"model profile {profile!r}"
    if api_key_env is not None:
        raise ConfigError(f"{where}: give api_key or api_key_env, not both")
    if isinstance(value, str) and value.startswith(KEYRING_PREFIX) and value[len(KEYRING_PREFIX):].strip():
        return value[len(KEYRING_PREFIX):].strip()
    from .redaction import register_secret

    register_secret(value if isinstance(value, str) else None, f"{where} api_key (refused)")
    raise ConfigError(f"{where}: api_key must be \"keyring:NAME\", naming a key stored with `plugdeck keys set "
                      "NAME`; a key itself never goes in a configuration file (or use api_key_env = \"VARIABLE\" "
                      "for one in the environment)")


def _string_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings, such as [\"calculator.*\"], not {value!r}")
    return value


def _from_environment() -> dict[str, Any]:
    names = {"PLUGDECK_MODEL": "model", "PLUGDECK_BASE_URL": "base_url", "PLUGDECK_MAX_STEPS": "max_steps",
             "PLUGDECK_DEADLINE": "deadline", "PLUGDECK_HOME": "home", "PLUGDECK_PLANNER": "planner",
             "PLUGDECK_RUN_STORE": "run_store", "PLUGDECK_SELECT_TOOLS": "select_tools"}
    found = {key: os.environ[var] for var, key in names.items() if os.environ.get(var)}
    from .redaction import register_secret

    # The provider's key is scrubbed from prompts, traces and stored runs even where it is not sent.
    register_secret(os.environ.get("OPENAI_API_KEY"), "$OPENAI_API_KEY")
    if os.environ.get("OPENAI_BASE_URL") and "base_url" not in found:  # below PLUGDECK_BASE_URL
        found["base_url"] = os.environ["OPENAI_BASE_URL"]
    return found
