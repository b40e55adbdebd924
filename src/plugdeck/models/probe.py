"""`plugdeck models check URL`: is this an OpenAI-compatible endpoint, and what can it do?

Three small requests: the model list, a non-streamed answer offered one trivial tool, and a
streamed answer. Every failure is recorded in the result rather than raised, so the command can
always print a whole report.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from .base import ModelError
from .openai import SSEDecoder, StreamedTurn, describe_connection_error, describe_error_body

GET_TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time.",
        "parameters": {"type": "object", "properties": {}},
    },
}
NO_TOOLS_HINT = (
    "plugdeck needs tool calling: enable it on the server (for vLLM: --enable-auto-tool-choice"
    " --tool-call-parser ...) or choose a model that supports it"
)


async def check_endpoint(
    base_url: str, api_key: str | None = None, model: str | None = None, timeout: float = 10
) -> dict[str, Any]:
    """Returns base_url, reachable, models, model (the one tried), tools and streaming (True, False,
    or None when unknown), error (every problem found, or None) and latency (seconds the tiny
    non-streamed answer took, or None)."""
    base = base_url.rstrip("/")
    result: dict[str, Any] = {"base_url": base, "reachable": False, "models": [], "model": model,
                              "tools": None, "streaming": None, "error": None, "latency": None}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
        await _run_checks(client, base, model, result)
    if api_key and result["error"]:  # a server may echo the key back in its error message
        result["error"] = result["error"].replace(api_key, "***")
    return result


async def _run_checks(client: httpx.AsyncClient, base: str, model: str | None, result: dict[str, Any]) -> None:
    await _list_models(client, base, result)
    result["model"] = model or next(iter(result["models"]), None)
    if not result["reachable"]:
        return
    if not result["model"]:
        _note(result, "there is no model to try: the server listed none, so pass one with --model")
        return
    await _check_tools(client, base, result)
    await _check_streaming(client, base, result)


def _note(result: dict[str, Any], problem: str) -> None:
    result["error"] = f"{result['error']}; {problem}" if result["error"] else problem


async def _list_models(client: httpx.AsyncClient, base: str, result: dict[str, Any]) -> None:
    try:
        response = await client.get(f"{base}/models")
    except httpx.HTTPError as exc:
        _note(result, f"{_describe(base, exc)}. Is the server running? Check the URL (it usually ends in /v1).")
        return
    result["reachable"] = True
    if not response.is_success:
        _note(result, f"GET {base}/models answered {_status(response)}")
        return
    try:
        result["models"] = [entry["id"] for entry in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        _note(result, f"GET {base}/models did not answer with a model list: {response.text[:300]!r}")


async def _check_tools(client: httpx.AsyncClient, base: str, result: dict[str, Any]) -> None:
    body = {"model": result["model"], "messages": [{"role": "user", "content": "What time is it?"}],
            "tools": [GET_TIME], "tool_choice": "auto", "max_tokens": 32, "stream": False}
    response = await _timed_post(client, base, body, result)
    if response is None:
        return
    if response.is_success:
        result["tools"] = True
        return
    refusal = _status(response)
    if response.status_code not in (400, 422):
        _note(result, f"a chat completion failed ({refusal})")
        return
    # A rejection may be about the tools or about anything else: ask once more without them.
    plain = {key: value for key, value in body.items() if key not in ("tools", "tool_choice")}
    retry = await _timed_post(client, base, plain, result)
    if retry is not None and retry.is_success:
        result["tools"] = False
        _note(result, f"the server does not accept tools ({refusal}); {NO_TOOLS_HINT}")
    elif retry is not None:
        _note(result, f"a chat completion failed ({refusal})")


async def _timed_post(
    client: httpx.AsyncClient, base: str, body: dict[str, Any], result: dict[str, Any]
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.post(f"{base}/chat/completions", json=body)
    except httpx.HTTPError as exc:
        _note(result, f"a chat completion failed: {_describe(base, exc)}")
        return None
    if response.is_success:
        result["latency"] = round(time.perf_counter() - started, 3)
    return response


async def _check_streaming(client: httpx.AsyncClient, base: str, result: dict[str, Any]) -> None:
    url = f"{base}/chat/completions"
    body = {"model": result["model"], "messages": [{"role": "user", "content": "Say OK."}],
            "max_tokens": 8, "stream": True}
    decoder, turn = SSEDecoder(), StreamedTurn(url)
    try:
        async with client.stream("POST", url, json=body) as response:
            if not response.is_success:
                await response.aread()
                result["streaming"] = False
                _note(result, f"a streamed chat completion failed ({_status(response)})")
                return
            async for piece in response.aiter_bytes():
                for data in decoder.feed(piece):
                    turn.add(data)
        for data in decoder.close():
            turn.add(data)
        turn.response()  # raises when the stream was not a whole answer
        result["streaming"] = True
    except ModelError as exc:
        result["streaming"] = False
        _note(result, str(exc))
    except httpx.HTTPError as exc:
        _note(result, f"a streamed chat completion failed: {_describe(base, exc)}")


def _status(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {describe_error_body(response.content)}"


def _describe(base: str, exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"{base} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return describe_connection_error(base, exc)
    return str(exc) or type(exc).__name__
