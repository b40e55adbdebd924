"""`plugdeck models check URL`: is this an OpenAI-compatible endpoint, and what can it do? And
`plugdeck models probe URL|PATH`: how well does a model call tools (conformance.py's set)?

Three small requests: the model list, a non-streamed answer offered one trivial tool, and a
streamed answer. Every failure is recorded in the result rather than raised, so the command can
always print a whole report.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from ..errors import UserError
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
    "plugdeck describes the tools in the prompt instead (tool_format \"prompted\"; the default \"auto\" turns"
    " to it when a server refuses tools). For native tool calls enable them on the server: vLLM"
    " --enable-auto-tool-choice --tool-call-parser NAME, llama.cpp's llama-server --jinja"
)
TEXT_CALL_HINT = (
    "the model wrote its tool call as {fmt} text instead of tool_calls: the server's tool parser is off or failed."
    " plugdeck reads such calls (tool_format \"auto\", or \"{fmt}\" to read only that format); to get native calls"
    " enable the server's parser (vLLM --enable-auto-tool-choice --tool-call-parser NAME, llama-server --jinja)"
)


async def check_endpoint(
    base_url: str, api_key: str | None = None, model: str | None = None, timeout: float = 10
) -> dict[str, Any]:
    """Returns base_url, reachable, models, model (the one tried), tools (does it accept `tools`) and
    streaming (True, False, or None when unknown), tool_format (how the one test call came back:
    "native", a text format, or None when the model did not call), note (what to do about it, or None),
    error (every problem found, or None) and latency (seconds the tiny non-streamed answer took, or None)."""
    base = base_url.rstrip("/")
    result: dict[str, Any] = {"base_url": base, "reachable": False, "models": [], "model": model,
                              "tools": None, "streaming": None, "tool_format": None, "note": None, "error": None,
                              "latency": None}
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
        _how_the_call_came(response, result)
        return
    refusal = _status(response)
    if response.status_code not in (400, 422) and "--jinja" not in refusal:  # llama-server refuses with a 500
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


def _how_the_call_came(response: httpx.Response, result: dict[str, Any]) -> None:
    """Accepting `tools` is not parsing them: a call left in the text means the server's parser is off."""
    from .toolcall_formats import parse_tool_calls

    try:
        message = response.json()["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return
    if not isinstance(message, dict):
        return
    if message.get("tool_calls"):
        result["tool_format"] = "native"
        return
    parsed = parse_tool_calls(str(message.get("content") or ""), ["get_time"])
    if parsed is not None:
        result["tool_format"] = parsed.format
        result["note"] = TEXT_CALL_HINT.format(fmt=parsed.format)


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


# ---- `plugdeck models probe URL|PATH`: tool-calling conformance ---------------------------------------


def probe_target(target: str, *, model: str | None = None, api_key: str | None = None,
                 tool_format: str = "auto", deadline: float = 120.0) -> tuple[Any, bool]:
    """The Model to probe, and whether it runs in process: a URL is an OpenAI-compatible endpoint
    (`model` names the model there), anything else a local model folder (the hf backend)."""
    if target.startswith(("http://", "https://")):
        if not model:
            raise ProbeError("probing an endpoint needs --model NAME: the model to ask there "
                             "(plugdeck models check URL lists them)")
        from .openai import OpenAIModel

        return OpenAIModel(model, target, api_key=api_key, tool_format=tool_format, deadline=deadline,
                           max_retries=1), False
    from pathlib import Path

    if not Path(target).expanduser().exists():
        raise ProbeError(f"{target} is neither an http(s) URL nor a model folder on this machine")
    from .local_hf import HFModel

    return HFModel(target, max_new_tokens=256), True


async def probe_model(target: str, *, model: str | None = None, api_key: str | None = None,
                      per_category: int = 5, tool_format: str = "auto") -> dict[str, Any]:
    """Run the conformance set against a URL or a local model folder; the report with recommendations."""
    from .conformance import load_cases, recommend, run_cases

    subject, local = probe_target(target, model=model, api_key=api_key, tool_format=tool_format)
    try:
        report = await run_cases(subject, load_cases(per_category))
    finally:
        close = getattr(subject, "aclose", None)
        if close is not None:
            await close()
    result = report.to_dict()
    result.update(target=target, model=model, local=local, recommended=recommend(report, local=local))
    return result


class ProbeError(UserError):
    """The probe was pointed at something it cannot probe."""


def profile_text(name: str, target: str, model: str | None, settings: dict[str, Any]) -> str:
    """A [models.NAME] table for plugdeck.toml with the recommended settings."""
    import json

    lines = [f"[models.{name}]"]
    if target.startswith(("http://", "https://")):
        lines += [f"base_url = {json.dumps(target)}", f"model = {json.dumps(model or '')}"]
    else:
        lines.append(f"# use it with --model hf:{target}")
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
