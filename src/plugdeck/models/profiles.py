"""The model a configuration names: an installed backend (`PREFIX:NAME`), the offline rules model, a
profile (with its fallbacks), or a model at an endpoint.

Here, in models/, rather than on Config: the configuration only reads settings, and the layer that
makes models reads it, never the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import ConfigError, ModelProfile, check_model_settings
from .pricing import profile_prices

if TYPE_CHECKING:
    from ..config import Config
    from .base import Model


def model_for(config: Config, name: str | None = None, *, base_url: str | None = None,
              api_key: str | None = None, options: dict[str, Any] | None = None) -> Model:
    """The model to use: the offline rules model, a profile, or a model at an endpoint. `options`: model
    settings (config.MODEL_SETTINGS, from flags or an agent) over the profile's own."""
    name = name or config.model
    options = check_model_settings(dict(options or {}), "model settings")
    if base_url is None and name not in config.profiles:  # `PREFIX:NAME` for an installed model backend
        from .backends import backend_model

        model = backend_model(name)
        if model is not None:
            return model
    if base_url is None and name == "rules":
        from .rules import RulesModel

        return RulesModel()
    if base_url is None and name not in config.profiles and config.base_url:
        base_url = config.base_url
    if base_url is not None:
        if name == "rules":
            raise ConfigError("--base-url needs --model NAME: the model to use at that endpoint")
        profile = ModelProfile(name=name, base_url=base_url, model=name)
    else:
        profile = config.profile(name)
    model = _openai_model(profile, api_key, options)
    if not profile.fallbacks:
        return model
    from .fallback import FallbackModel

    # One level: the fallbacks' own fallbacks are not followed, so a chain can never loop.
    chain = [(model, profile.context_window)]
    chain += [(_openai_model(config.profile(other), None, options), config.profile(other).context_window)
              for other in profile.fallbacks if other != name]
    return FallbackModel(chain, name=name)


def system_prompt_for(config: Config, name: str | None = None) -> str | None:
    """The system prompt of the profile a model name refers to (`system = "..."`), if it has one."""
    profile = config.profiles.get(name or config.model)
    return profile.system if profile else None


def _openai_model(profile: ModelProfile, api_key: str | None, options: dict[str, Any]) -> Model:
    from .openai import OpenAIModel
    from .toolcall_formats import TOOL_FORMATS

    if profile.tool_format not in TOOL_FORMATS:
        raise ConfigError(f"model profile {profile.name!r}: tool_format {profile.tool_format!r} is not known;"
                          f" use one of {', '.join(TOOL_FORMATS)}")
    model = OpenAIModel(
        profile.model,
        profile.base_url,
        api_key=api_key or profile.api_key(strict=True),
        deadline=profile.deadline,
        stream=profile.stream,
        max_retries=profile.max_retries,
        tool_format=profile.tool_format,
        send_reasoning=profile.send_reasoning,
        tool_choice=options.get("tool_choice", profile.tool_choice),
        constrain=profile.constrain,
        settings={**profile.settings, **{k: v for k, v in options.items() if k != "tool_choice"}},
    )
    model.prices = profile_prices(profile)  # for costs and budgets: the profile's, else the hosted list price
    return model
