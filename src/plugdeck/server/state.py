"""What one server process holds: its agents, the runs in flight, the run store, the credentials.

Routes reach it as `request.app.state.plugdeck`; `who` is the dependency that says who is asking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from ..config import Config
from .agents import AgentCatalog
from .auth import Authenticator, Principal
from .errors import ApiError
from .runs_live import LiveRegistry


@dataclass
class ServerState:
    config: Config
    agents: AgentCatalog
    live: LiveRegistry
    auth: Authenticator
    store: Any = None  # RunStore, or None when runs are not recorded
    started_at: int = field(default_factory=lambda: int(time.time()))

    def check_concurrency(self, principal: Principal) -> None:
        key = principal.key
        if key is not None and key.concurrent and self.live.running(key.id) >= key.concurrent:
            raise ApiError(429, f"key {key.name!r} already has {key.concurrent} run(s) running, its limit; "
                                "wait for one to finish", code="too_many_runs", headers={"Retry-After": "1"})


def state_of(request: Request) -> ServerState:
    return request.app.state.plugdeck


def who(request: Request) -> Principal:
    """FastAPI dependency: the caller, or an ApiError (401, 403, 429)."""
    state = state_of(request)
    client = request.client.host if request.client else None
    return state.auth.principal(request.method, request.headers, client)
