"""A run's events as Server-Sent Events, and the JSON shapes the REST API and the page share.

    event: tool_finished            (the event's type)
    id: 4                           (its place in the run: reconnect with ?after=4 or Last-Event-ID)
    data: {"type": "tool_finished", "run_id": ..., "tool": ..., "result": ..., "latency": ...}

A stream ends with `event: settled`, the run's summary (status, answer, pending actions, usage).
Model-call events leave out the messages sent (the whole conversation, again on every step); the
stored run has them.

A stream carries answer text only as the person may see it: checked. Drafts (answer text that answer
checks may still change) are not sent, a model call that answered (asked for no tool) leaves out its
text (it arrives as the `answer` event, after the checks), and an answer check leaves out the text it
removed. The run's record (GET /api/runs/ID) keeps all of it, for review.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

from sse_starlette import EventSourceResponse

from ..events import Event, ModelCalled
from .errors import ApiError
from .runs_live import LiveRun

PING_SECONDS = 15


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def encode(data: str, event: str | None = None, event_id: str | None = None) -> str:
    """One SSE message. `data` is JSON (or [DONE]): never a raw newline in it."""
    head = (f"id: {event_id}\n" if event_id is not None else "") + (f"event: {event}\n" if event else "")
    return f"{head}data: {data}\n\n"


def event_json(event: Event) -> dict[str, Any]:
    data = event.to_dict()
    if isinstance(event, ModelCalled):
        data["message_count"] = len(data.pop("messages"))
    return data


_UNCHECKED_DETAILS = ("dropped", "sentences")  # the grounding check's copies of the unchecked sentences


def streamed(data: dict[str, Any]) -> dict[str, Any] | None:
    """An event (as JSON) the way streams send it, or None for one they do not send: see the module's doc."""
    kind = data["type"]
    if kind == "text_delta" and data.get("channel") == "draft":
        return None
    if kind == "model_called" and not data.get("tool_calls"):
        data["text"] = ""
    elif kind == "answer_checked":
        data.pop("original", None)
        data["details"] = {k: v for k, v in (data.get("details") or {}).items() if k not in _UNCHECKED_DETAILS}
    return data


def summary(live: LiveRun) -> dict[str, Any]:
    last = live.events[-1] if live.finished else None
    return {
        "id": live.id,
        "agent": live.agent_name,
        "question": live.question,
        "status": live.status,
        "answer": last.answer if last is not None else None,
        "error": last.error if last is not None else None,
        "pending": live.pending,
        "usage": live.totals(),
        "cost": live.cost,
        "events": len(live.events),
    }


async def run_stream(live: LiveRun, driver: asyncio.Task | None, start: int = 0) -> AsyncIterator[bytes]:
    """The run's events until the driver is done (or, with no driver, until the run finishes).

    A stream that drives its run (driver given) cancels it when the client leaves while it runs.
    """
    try:
        async for batch in live.follow(driver, start):
            sent = ((i, e.type, streamed(event_json(e))) for i, e in batch)
            yield "".join(encode(dumps(data), kind, str(i)) for i, kind, data in sent if data is not None).encode()
        failure = driver_error(driver)
        if failure is not None:
            yield encode(dumps(failure.body()), "error").encode()
        yield encode(dumps(summary(live)), "settled").encode()
    finally:
        if driver is not None and not driver.done():
            live.cancel()


def driver_error(driver: asyncio.Task | None) -> ApiError | None:
    """Why a finished driver could not carry its run on (an ApiError it raised); other errors surface."""
    if driver is None or not driver.done() or driver.cancelled() or driver.exception() is None:
        return None
    if isinstance(driver.exception(), ApiError):
        return driver.exception()
    raise driver.exception()


async def stored_stream(run: dict[str, Any], start: int = 0) -> AsyncIterator[bytes]:
    """A run read back from the run store, as if it were streamed."""
    for index, data in enumerate(run["events"][start:], start):
        data.pop("messages", None)
        if (data := streamed(data)) is not None:
            yield encode(dumps(data), data["type"], str(index)).encode()
    yield encode(dumps({k: v for k, v in run.items() if k != "events"}), "settled").encode()


def sse_response(content: AsyncIterator[Any], run_id: str | None = None, *, ping: float = PING_SECONDS) -> EventSourceResponse:
    headers = {"X-Plugdeck-Run-Id": run_id} if run_id else None
    return EventSourceResponse(content, headers=headers, ping=ping, sep="\n")
