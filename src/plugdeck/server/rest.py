"""The REST API under `/api`: runs (start, list, read, follow, confirm, cancel), agents, plugins,
knowledge bases, and who you are.

Starting a run or deciding on a pending action answers with JSON once the run settles (finishes or
waits for a person), or, with `Accept: text/event-stream` (or `?stream=true`), streams its events
as they happen. A key sees and decides only on the runs it started; the operator sees all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, File, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from . import knowledge
from .auth import Principal
from .errors import ApiError
from .runs_live import LiveRun
from .sse import driver_error, event_json, run_stream, sse_response, stored_stream, summary
from .state import ServerState, state_of, who

router = APIRouter(prefix="/api", tags=["plugdeck REST API"])


class Message(BaseModel):
    role: str = Field(pattern="^(user|assistant)$")
    content: str


class RunRequest(BaseModel):
    message: str = Field(min_length=1, description="The question.")
    agent: str = Field("plugdeck", description="One of the server's agents (GET /api/agents).")
    history: list[Message] = Field(default_factory=list, description="The conversation before this question.")


class Decision(BaseModel):
    approve: bool = Field(description="true runs the action with exactly the arguments shown; false refuses it.")
    reason: str = Field("", max_length=2000, description="Why it was refused; the model is told.")


def _wants_stream(stream: bool | None, accept: str | None) -> bool:
    return bool(stream) or "text/event-stream" in (accept or "")


# ---- who, agents, plugins --------------------------------------------------------------------------


@router.get("/session", summary="Who you are to this server")
async def session(request: Request, principal: Principal = Depends(who)) -> dict[str, Any]:
    state = state_of(request)
    key = principal.key
    return {"principal": principal.label, "operator": principal.operator, "keys_required": state.auth.keyed,
            "plugins": None if key is None or key.all_plugins else key.plugins, "agents": state.agents.names}


@router.get("/agents", summary="The agents, with the tools each gives you")
async def agents(request: Request, principal: Principal = Depends(who)) -> list[dict[str, Any]]:
    state = state_of(request)
    out = []
    for name, spec in state.agents.specs.items():
        try:
            agent = state.agents.get(name, principal.key)
        except ApiError as exc:
            if exc.status != 403:
                raise
            continue  # the key may use none of this agent's plugins
        out.append({"name": name, "description": spec.description, "model": agent.model.name,
                    "tools": [t.qualified_name for t in agent.tools]})
    return out


@router.get("/plugins", summary="Plugins and their tools, as the server's agents have them")
async def plugins(request: Request, principal: Principal = Depends(who)) -> list[dict[str, Any]]:
    state = state_of(request)
    seen: dict[str, dict[str, Any]] = {}
    for name in state.agents.specs:
        try:
            agent = state.agents.get(name, principal.key)
        except ApiError as exc:
            if exc.status != 403:
                raise
            continue
        for plugin in agent.plugins:
            entry = seen.setdefault(plugin.name, {**plugin.manifest(), "agents": []})
            entry["agents"].append(name)
    return list(seen.values())


# ---- runs -------------------------------------------------------------------------------------------


@router.post("/runs", summary="Start a run; JSON when it settles, or its events as they happen (SSE)")
async def start_run(body: RunRequest, request: Request, stream: bool | None = Query(None),
                    accept: str | None = Header(None), principal: Principal = Depends(who)):
    state = state_of(request)
    agent = state.agents.get(body.agent, principal.key)
    state.check_concurrency(principal)
    history = [m.model_dump() for m in body.history]
    live, driver = await state.live.start(agent, body.message, history, owner=principal.api_key_id,
                                          agent_name=body.agent)
    return await _answer(live, driver, 0, _wants_stream(stream, accept))


async def _answer(live: LiveRun, driver: asyncio.Task, start: int, streamed: bool):
    """The run's events from `start` as SSE, or its summary once the driver is done."""
    if streamed:
        return sse_response(run_stream(live, driver, start), live.id)
    await asyncio.wait([driver])
    failure = driver_error(driver)
    if failure is not None:
        raise failure
    return JSONResponse(summary(live), headers={"X-Plugdeck-Run-Id": live.id})


@router.get("/runs", summary="Recent runs, newest first")
async def list_runs(request: Request, limit: int = Query(50, ge=1, le=500), status: str | None = None,
                    principal: Principal = Depends(who)) -> list[dict[str, Any]]:
    state = state_of(request)
    stored = []
    if state.store is not None:
        stored = await asyncio.to_thread(state.store.list_runs, limit, status, api_key_id=principal.api_key_id)
    listed = {row["id"] for row in stored}
    # Runs that started a moment ago may not be written yet: the store's writer is a step behind.
    fresh = [_row(r) for r in state.live.live() if r.id not in listed and not r.finished
             and principal.may_see(r.owner) and (status is None or r.status == status)]
    return (fresh + stored)[:limit]


def _row(live: LiveRun) -> dict[str, Any]:
    started = live.events[0]
    return {"id": live.id, "question": live.question, "model": started.model, "status": live.status,
            "started_at": started.started_at, **live.totals()}


async def _find(state: ServerState, run_id: str, principal: Principal) -> tuple[LiveRun | None, dict | None]:
    """The live run, or the stored one; 404 for runs this caller may not see."""
    live = state.live.get(run_id)
    if live is not None:
        if principal.may_see(live.owner):
            return live, None
        raise _no_run(run_id)
    if state.store is None:
        raise _no_run(run_id)
    try:
        # Among the caller's own runs only: a prefix never tells a key that others' runs exist.
        stored = await asyncio.to_thread(state.store.get_run, run_id, api_key_id=principal.api_key_id)
    except KeyError as exc:
        raise ApiError(404, exc.args[0], code="no_such_run") from None
    if not principal.may_see(stored.get("api_key_id")):
        raise _no_run(run_id)
    return state.live.get(stored["id"]), stored


def _no_run(run_id: str) -> ApiError:
    return ApiError(404, f"no run with id {run_id!r}", code="no_such_run")


@router.get("/runs/{run_id}", summary="One run with its events (a unique prefix of the id is enough)")
async def get_run(run_id: str, request: Request, messages: bool = Query(False, description="Include the messages "
                  "each model call was sent."), principal: Principal = Depends(who)) -> dict[str, Any]:
    state = state_of(request)
    live, stored = await _find(state, run_id, principal)
    if live is not None and live.events:
        started = live.events[0]
        data = {**summary(live), "model": started.model, "started_at": started.started_at}
        data["events"] = [e.to_dict() if messages else event_json(e) for e in live.events]
        return data
    if not messages:
        for event in stored["events"]:
            if "messages" in event:
                event["message_count"] = len(event.pop("messages"))
    actions = stored.pop("actions", [])
    stored["pending"] = [a for a in actions if a.get("status") == "pending"]
    stored["actions"] = actions
    return stored


@router.get("/runs/{run_id}/events", summary="Follow a run's events (SSE) until it finishes")
async def follow_run(run_id: str, request: Request, after: int = Query(-1, ge=-1),
                     last_event_id: str | None = Header(None), principal: Principal = Depends(who)):
    state = state_of(request)
    live, stored = await _find(state, run_id, principal)
    start = after + 1
    if last_event_id and last_event_id.isdigit():
        start = max(start, int(last_event_id) + 1)
    if live is not None and stored is None:
        return sse_response(run_stream(live, None, start), live.id)
    return sse_response(stored_stream(stored, start), stored["id"])


@router.post("/runs/{run_id}/actions/{action_id}", summary="Approve or reject a pending action; the run goes on")
async def decide(run_id: str, action_id: str, body: Decision, request: Request, stream: bool | None = Query(None),
                 accept: str | None = Header(None), principal: Principal = Depends(who)):
    state = state_of(request)
    live, stored = await _find(state, run_id, principal)
    streamed = _wants_stream(stream, accept)
    if live is not None and live.status == "waiting":
        start = len(live.events)
        driver = live.decide(action_id, body.approve, body.reason, principal.label)
        return await _answer(live, driver, start, streamed)
    if stored is None or stored["status"] != "waiting":
        status = live.status if live is not None else stored["status"]
        raise ApiError(409, f"run {run_id} is not waiting for a decision (its status: {status})", code="not_waiting")
    # Parked in the run store (after a restart, or by another replica): carry it on here.
    return await _resume(state, stored, action_id, body, principal, streamed)


async def _resume(state: ServerState, stored: dict, action_id: str, body: Decision, principal: Principal,
                  streamed: bool):
    from ..ops.runstore import ActionNotPending, RunNotWaiting

    checkpoint = await asyncio.to_thread(state.store.checkpoint, stored["id"])
    agent = state.agents.for_checkpoint(checkpoint, principal.key)
    try:
        run = await agent.resume(stored["id"], {action_id: body.approve}, store=state.store, by=principal.label,
                                 notes={action_id: body.reason}, api_key_id=principal.api_key_id, wait=False)
    except (ActionNotPending, RunNotWaiting) as exc:
        raise ApiError(409, str(exc), code="not_waiting") from None
    if run is None:  # another replica carries the run on; it has the decision
        return JSONResponse({"id": stored["id"], "status": "running", "elsewhere": True}, status_code=202)
    live = state.live.adopt(LiveRun(run, stored.get("api_key_id"), "", start=len(run.events)))
    return await _answer(live, asyncio.ensure_future(run.settled()), live.start, streamed)


@router.post("/runs/{run_id}/cancel", summary="Cancel a running run; it is recorded as cancelled")
async def cancel(run_id: str, request: Request, principal: Principal = Depends(who)) -> dict[str, Any]:
    state = state_of(request)
    live, _ = await _find(state, run_id, principal)
    if live is None or live.status != "running":
        status = live.status if live is not None else "not running here"
        raise ApiError(409, f"run {run_id} is not running (its status: {status}); a run that waits for a person "
                            "ends when its actions are rejected", code="not_running")
    await live.cancelled()
    return summary(live)


# ---- knowledge bases --------------------------------------------------------------------------------


def _may_use_kb(principal: Principal, name: str) -> bool:
    return principal.key is None or principal.key.allows(name)


@router.get("/kb", summary="Knowledge bases")
async def list_kb(request: Request, principal: Principal = Depends(who)) -> list[dict[str, Any]]:
    home = state_of(request).config.home
    return await asyncio.to_thread(knowledge.list_bases, home, lambda name: _may_use_kb(principal, name))


@router.post("/kb/{name}/documents", summary="Upload documents into a knowledge base (created if new)")
async def upload(name: str, request: Request, files: list[UploadFile] = File(...),
                 principal: Principal = Depends(who)) -> dict[str, Any]:
    if not _may_use_kb(principal, name):
        raise ApiError(403, f"this key may not use knowledge base {name!r}", code="plugins_not_allowed")
    return await knowledge.add_documents(state_of(request).config.home, name, files)


@router.get("/kb/{name}/search", summary="Search a knowledge base")
async def search_kb(name: str, request: Request, q: str = Query(..., min_length=1), k: int = Query(5, ge=1, le=50),
                    principal: Principal = Depends(who)) -> list[dict[str, Any]]:
    if not _may_use_kb(principal, name):
        raise ApiError(404, f"no knowledge base named {name!r}", code="knowledge_base")
    return await asyncio.to_thread(knowledge.search, state_of(request).config.home, name, q, k)
