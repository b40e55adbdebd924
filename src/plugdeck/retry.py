"""How long to wait before trying again: one backoff schedule and one reading of Retry-After for every
client that retries (model servers, embedding endpoints, the run store, MCP servers).

Each caller keeps its own loop, because what may be retried differs (only before an answer starts,
only idempotent requests, only while a deadline allows); what they share is here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Literal, Mapping


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `first` seconds before the first retry, doubling, at most `cap`.

    jitter "full" waits a random time up to the delay (clients that failed together do not come back
    together), "half" between half the delay and all of it, "none" exactly the delay.
    """

    first: float = 0.5
    cap: float = 8.0
    jitter: Literal["full", "half", "none"] = "full"

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        ceiling = min(self.cap, self.first * 2 ** max(retry - 1, 0))
        if self.jitter == "full":
            return random.uniform(0, ceiling)
        if self.jitter == "half":
            return ceiling * (0.5 + random.random() / 2)
        return ceiling


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for: `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date.

    None when it asked for none, or wrote something unreadable (the caller's backoff applies then).
    `headers` must look names up without regard to case, as httpx's do.
    """
    try:
        if "retry-after-ms" in headers:
            return max(float(headers["retry-after-ms"]) / 1000, 0.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
    except (ValueError, TypeError):
        return None
