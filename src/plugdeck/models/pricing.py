"""What a model call costs: the profile's prices, else the hosted model's list price from genai-prices.

A profile's `input_price`, `output_price` and `cached_input_price` (per million tokens) always win.
A profile that sets none gets `HostedPrices`: the model's name is looked up in the genai-prices data
(bundled with the package, never fetched) at the first call, since importing it takes most of a second.
A model that neither knows has no price: its calls cost 0 and are marked unpriced, so `runs costs`
says "price unknown" instead of presenting 0 as real.

Tokens: the prompt count includes the cached prompt tokens (OpenAI's usage, and genai-prices', count
them so), which cost the cached input price where one is known; reasoning tokens are part of the
completion count and cost the output price.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prices:
    """Per million tokens, in the profile's currency. cached_input None: cached tokens cost the input price."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        cached = min(max(cached, 0), prompt)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((prompt - cached) * self.input + cached * cached_rate + completion * self.output) / 1_000_000


class HostedPrices:
    """The list price genai-prices knows for a hosted model (in US dollars), looked up when first needed."""

    def __init__(self, model: str):
        self.model = model

    def __repr__(self) -> str:
        return f"HostedPrices({self.model!r})"

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float | None:
        """None when genai-prices is not installed or does not know the model."""
        return _hosted_cost(self.model, prompt, completion, min(max(cached, 0), prompt))


def profile_prices(profile: Any) -> Prices | HostedPrices:
    """A profile's prices, or the hosted lookup when it sets none (0 is a price: a local model's)."""
    given = (profile.input_price, profile.output_price, profile.cached_input_price)
    if all(price is None for price in given):
        return HostedPrices(profile.model)
    return Prices(profile.input_price or 0.0, profile.output_price or 0.0, profile.cached_input_price)


def prices_data(prices: Any) -> Any:
    """Prices as JSON, for a checkpoint: [input, output], {input, output, cached_input} or {hosted: model}."""
    if isinstance(prices, tuple):
        return list(prices)
    if isinstance(prices, Prices):
        return asdict(prices)
    if isinstance(prices, HostedPrices):
        return {"hosted": prices.model}
    return None


def charge(prices: Any, response: Any) -> dict[str, Any]:
    """The usage fields of a model call's event: tokens as the server counted them (or estimated),
    and their cost at `prices` (a Prices, a HostedPrices, or a tuple (input, output[, cached input]))."""
    prompt, completion = response.prompt_tokens, response.completion_tokens
    cached = getattr(response, "cached_tokens", 0)
    if isinstance(prices, tuple):
        prices = Prices(*prices)
    cost = prices.cost(prompt, completion, cached) if prices is not None else None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": cached,
            "reasoning_tokens": getattr(response, "reasoning_tokens", 0),
            "estimated": getattr(response, "usage_estimated", False),
            "cost": cost or 0.0, "priced": cost is not None}


def _hosted_cost(model: str, prompt: int, completion: int, cached: int) -> float | None:
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # installed without it: the price stays unknown rather than 0
        return None
    try:
        price = calc_price(Usage(input_tokens=prompt, cache_read_tokens=cached, output_tokens=completion), model)
    except LookupError:
        return None
    except Exception as exc:  # noqa: BLE001 - a price table problem must never fail a model call
        log.warning("genai-prices could not price %s: %s", model, exc)
        return None
    return float(price.total_price)
