"""The OpenAI-compatible API: `/v1/models` and `/v1/chat/completions`, streamed or not.

The models are the server's agents. The last user message is the question, the messages before it
the history; the client's `system` (and `developer`) messages are its instructions, added below the
agent's own system prompt, which they never replace. Like the history they come from the client, so
they count as untrusted content for the policy. Tools run on the server; each step also
travels in a `plugdeck` field that OpenAI clients ignore. A run that needs a person's OK ends its
answer with where to give it (`/runs/ID` on the page, or the REST API) and the pending action's id.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..events import TextDelta
from .auth import Principal
from .errors import ApiError
from .runs_live import LiveRun
from .sse import dumps, encode, event_json, sse_response, streamed
from .state import state_of, who

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible API"])

STOPPED_EARLY = {"max_steps", "budget"}  # the run ended cleanly at a limit: an answer that says so
CLIENT_INSTRUCTIONS = ("system", "developer")  # developer: what OpenAI's newer models call the system role
FAILED = {"error": 502, "deadline": 504, "cancelled": 500, "aborted": 500}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body. Sampling parameters are accepted and left to the agent's model."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="An agent of this server (GET /v1/models); `plugdeck` is the default one.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None


@router.get("/models", summary="The agents this server offers, as OpenAI models")
async def list_models(request: Request, principal: Principal = Depends(who)) -> dict[str, Any]:
    state = state_of(request)
    return {"object": "list", "data": [_model(name, state.started_at) for name in state.agents.names]}


@router.get("/models/{model_id}", summary="One agent, as an OpenAI model")
async def get_model(model_id: str, request: Request, principal: Principal = Depends(who)) -> dict[str, Any]:
    state = state_of(request)
    if model_id not in state.agents.names:
        raise ApiError(404, f"the model {model_id!r} does not exist (models: {', '.join(state.agents.names)})",
                       code="model_not_found", param="model")
    return _model(model_id, state.started_at)


def _model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "plugdeck"}


@router.post("/chat/completions", summary="Ask an agent; it calls its plugins on the server and answers")
async def chat_completions(body: ChatCompletionRequest, request: Request, principal: Principal = Depends(who)):
    if body.tools or body.functions:
        raise ApiError(400, "this server calls its own tools (plugins) on the server side; client-side tools are "
                            "not supported: leave out `tools`", param="tools", code="unsupported_parameter")
    if body.n not in (None, 1):
        raise ApiError(400, "only one choice per request is supported (n=1)", param="n", code="unsupported_parameter")
    question, history, instructions = conversation(body.messages)
    state = state_of(request)
    agent = state.agents.get(body.model, principal.key)
    state.check_concurrency(principal)
    live, driver = await state.live.start(agent, question, history, owner=principal.api_key_id, agent_name=body.model,
                                          instructions=instructions)
    page = str(request.base_url)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = Chunks(live.id, body.model, include_usage)
        return sse_response(stream(live, driver, chunks, page), live.id)
    await asyncio.wait([driver])
    return JSONResponse(completion(live, body.model, page), headers={"X-Plugdeck-Run-Id": live.id})


def conversation(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]], str | None]:
    """The question (the last message, from the user), the history before it as text messages, and the
    client's instructions (its system messages, in order; None without any)."""
    last = messages[-1]
    if last.role != "user":
        raise ApiError(400, f"the last message must be the user's question, not a {last.role!r} message",
                       param="messages", code="invalid_messages")
    question = _text(last, len(messages) - 1)
    if not question.strip():
        raise ApiError(400, "the question (the last user message) is empty", param="messages", code="invalid_messages")
    history, instructions = [], []
    for index, message in enumerate(messages[:-1]):
        if message.role in ("user", "assistant"):
            text = _text(message, index)
            if text:  # an assistant turn of client-side tool calls has no text: nothing to carry over
                history.append({"role": message.role, "content": text})
        elif message.role in CLIENT_INSTRUCTIONS and _text(message, index).strip():
            instructions.append(_text(message, index).strip())
    return question, history, "\n\n".join(instructions) or None


def _text(message: ChatMessage, index: int) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    parts = []
    for part in message.content:
        if part.get("type") != "text":
            raise ApiError(400, f"messages[{index}] has a {part.get('type')!r} part; plugdeck agents read text only",
                           param=f"messages[{index}].content", code="unsupported_content")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


# ---- answers -------------------------------------------------------------------------------------


def waiting_text(live: LiveRun, page: str) -> str:
    lines = ["This needs your approval before it runs:"]
    for action in live.pending:
        lines += [f"- {action['summary']}", f"  action {action['id']}"]
    lines.append(f"Approve or reject it at {page}runs/{live.id} (or POST {page}api/runs/{live.id}/actions/ACTION_ID "
                 "with {\"approve\": true}).")
    return "\n".join(lines)


def stopped_text(live: LiveRun) -> str:
    return f"The run stopped before it had an answer: {live.events[-1].error} (run {live.id})."


def _failure(live: LiveRun) -> ApiError:
    finished = live.events[-1]
    status = finished.status
    code = 500 if (finished.error or "").startswith("internal error") else FAILED.get(status, 500)
    return ApiError(code, f"the run failed ({status}): {finished.error} (run {live.id})", code=f"run_{status}",
                    headers={"X-Plugdeck-Run-Id": live.id})


def _extra(live: LiveRun, steps: bool = True) -> dict[str, Any]:
    """The run behind an answer: its id, status, pending actions, cost, and (unless streamed) its tool steps."""
    extra = {"run_id": live.id, "status": live.status, "pending": live.pending, "cost": live.cost}
    if steps:
        extra["steps"] = [event_json(e) for e in live.events if e.type in ("tool_finished", "confirmation_requested",
                                                                           "confirmation_answered")]
    return extra


def completion(live: LiveRun, model: str, page: str) -> dict[str, Any]:
    status = live.status
    if status == "ok":
        text, reason = live.events[-1].answer, "stop"
    elif status == "waiting":
        text, reason = waiting_text(live, page), "stop"
    elif status in STOPPED_EARLY:
        text, reason = stopped_text(live), "length"
    else:
        raise _failure(live)
    message = {"role": "assistant", "content": text, "refusal": None}
    return {"id": f"chatcmpl-{live.id}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}],
            "usage": live.totals(), "plugdeck": _extra(live)}


class Chunks:
    """`chat.completion.chunk` objects of one answer, as SSE messages."""

    def __init__(self, run_id: str, model: str, include_usage: bool):
        self.base = {"id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model}
        self.include_usage = include_usage

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None, extra: Any = None) -> str:
        data = {**self.base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if self.include_usage:
            data["usage"] = None  # OpenAI sends usage only on the last chunk, null before
        if extra is not None:
            data["plugdeck"] = extra
        return encode(dumps(data))

    def usage(self, usage: dict[str, int]) -> str:
        return encode(dumps({**self.base, "choices": [], "usage": usage}))


async def stream(live: LiveRun, driver: asyncio.Task, chunks: Chunks, page: str) -> AsyncIterator[bytes]:
    """Text as the model writes it (unless answer checks may still change it: then the checked answer
    once they are done), the steps in the `plugdeck` field, then the finish reason, usage and [DONE].
    Leaving early cancels the run."""
    try:
        out = [chunks.delta({"role": "assistant", "content": ""})]
        step_text: dict[int, str] = {}
        last_step = None
        async for batch in live.follow(driver):
            for _, event in batch:
                if isinstance(event, TextDelta):
                    if event.channel != "text":  # a plan, or a draft the answer checks may still change
                        continue
                    text = event.text if last_step in (None, event.step) else "\n\n" + event.text
                    last_step = event.step
                    step_text[event.step] = step_text.get(event.step, "") + event.text
                    out.append(chunks.delta({"content": text}))
                elif (step := streamed(event_json(event))) is not None:
                    out.append(chunks.delta({}, extra=step))
            yield "".join(out).encode()
            out = []
        status = live.status
        if status == "ok":
            answer = live.events[-1].answer or ""
            if step_text.get(last_step) != answer:
                out.append(chunks.delta({"content": ("\n\n" if step_text else "") + answer}))
            reason = "stop"
        elif status == "waiting":
            out.append(chunks.delta({"content": ("\n\n" if step_text else "") + waiting_text(live, page)}))
            reason = "stop"
        elif status in STOPPED_EARLY:
            out.append(chunks.delta({"content": ("\n\n" if step_text else "") + stopped_text(live)}))
            reason = "length"
        else:
            yield (encode(dumps(_failure(live).body()))).encode()
            return
        out.append(chunks.delta({}, reason, extra=_extra(live, steps=False)))
        if chunks.include_usage:
            out.append(chunks.usage(live.totals()))
        out.append(encode("[DONE]"))
        yield "".join(out).encode()
    finally:
        if not driver.done():
            live.cancel()
