"""One connection to one MCP server, kept alive across tool calls.

The server starts on the first call (a subprocess for stdio, a session for Streamable HTTP) and
its session is reused. A server that crashes is reported to the call that was running and
restarted on the next one, after a backoff that grows while it keeps failing. Every failure
becomes a `ToolError` naming the server and saying what went wrong.

The SDK's session lives in task groups that must be entered and left by the same task, while
plugdeck calls tools from many tasks (the executor runs calls concurrently). So each connection
has an owner task that opens the session, waits, and closes it; calls just send requests on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from ...errors import PlugdeckError
from ...redaction import redact, redact_value, register_secret
from ...retry import Backoff
from ...tools import ToolError

# plugdeck reports server faults itself. Without a handler, Python's last-resort handler would
# print an SDK traceback to the terminal for every line of garbage a server writes.
logging.getLogger("mcp").addHandler(logging.NullHandler())

CONNECT_TIMEOUT = 20.0  # seconds for a server to start and finish the MCP handshake
STOP_TIMEOUT = 5.0  # seconds for a session to close before its owner task is cancelled
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0  # seconds before restarting a failed server
BACKOFF_WAIT_LIMIT = BACKOFF_FIRST  # a call waits out the first backoff; a longer one fails fast


@dataclass
class ServerSpec:
    """How to reach one MCP server. Secrets are named, never held: `env` maps the server's
    variable to the variable in plugdeck's environment that holds the value (likewise headers)."""

    name: str
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers_env: dict[str, str] = field(default_factory=dict)
    oauth: bool = False  # a remote server logged in to with OAuth (plugins/mcp/oauth.py)

    def __post_init__(self) -> None:
        if bool(self.command) == bool(self.url):
            raise ValueError(f"MCP server {self.name!r} needs either a command or a URL (exactly one)")

    @property
    def where(self) -> str:
        return self.url if self.url else " ".join(self.command or [])

    def secrets(self) -> dict[str, str]:
        """The secret values this server is given, by the variable that holds each."""
        missing = [var for var in (*self.env.values(), *self.headers_env.values()) if not os.environ.get(var)]
        if missing:
            raise ToolError(
                f"MCP server {self.name!r} needs the environment variable(s) {', '.join(sorted(set(missing)))}, "
                "which are not set. Set them and try again.", "mcp_unavailable")
        values = {var: os.environ[var] for var in (*self.env.values(), *self.headers_env.values())}
        for var, value in values.items():
            register_secret(value, f"MCP server {self.name} (${var})")
        return values


class _Watched:
    """The transport's read stream, seen on its way to the session: notes garbage and the end."""

    def __init__(self, stream: Any, live: _Live):
        self._stream, self._live = stream, live

    def _see(self, item: Any) -> Any:
        if isinstance(item, Exception):
            self._live.garbage.append(_garbage_text(item))
            del self._live.garbage[:-3]
        return item

    async def receive(self) -> Any:
        try:
            return self._see(await self._stream.receive())
        except Exception:
            self._live.closed = True
            raise

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> Any:
        try:
            return self._see(await self._stream.__anext__())
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._live.closed = True
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> _Watched:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self._stream.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:  # last_context and whatever else the SDK peeks at
        return getattr(self._stream, name)


def _garbage_text(exc: Exception) -> str:
    """The raw line behind a parse error, when the error carries it."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            raw = errors()[0].get("input")
            if isinstance(raw, str):
                return raw[:120]
        except Exception:
            pass
    return str(exc).splitlines()[0][:120]


@dataclass(eq=False)
class _Live:
    """One running session and what it has shown of itself."""

    loop: asyncio.AbstractEventLoop
    ready: asyncio.Future
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    client: Any = None
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed: bool = False  # the server went away (or we closed it)
    relist: bool = False  # the server said its tool list changed
    garbage: list[str] = field(default_factory=list)
    stderr: Any = None  # a temp file holding the server's stderr (stdio)


class MCPConnection:
    """A lazily started, reused, self-healing session with one MCP server."""

    def __init__(
        self,
        spec: ServerSpec,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        on_tools: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    ):
        self.spec = spec
        self.connect_timeout = connect_timeout
        self.on_tools = on_tools  # told the live definitions on every listing (for pin checks)
        self.failures = 0  # consecutive failed starts or crashes
        self.last_problem: str | None = None
        self.starts = 0
        self.server_info: dict[str, str] = {}  # name and version, as the server states them
        self._live: _Live | None = None
        self._retry_at = 0.0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._secrets: dict[str, str] = {}
        self.http_auth: Any = None  # an httpx Auth for a remote server; default from spec.oauth

    @property
    def name(self) -> str:
        return self.spec.name

    # ---- public --------------------------------------------------------------------------------

    async def list_tools(self) -> dict[str, dict[str, Any]]:
        """The server's live tool definitions (wire form), by name."""
        live = await self._session()
        return dict(live.tools)

    async def call(
        self, tool: str, arguments: dict[str, Any], timeout: float, guard: Callable[[str], None] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        """Call one tool; return its CallToolResult. Raises ToolError for every kind of failure.

        `guard(tool)` runs once the live tool list is known, before the call is sent: the place
        for pin checks, which must see the list of this very session. `meta` goes in the request's
        `_meta` (the sandbox hands a call's secrets to its runner there, never in arguments).
        """
        started = time.monotonic()

        async def send(live: _Live) -> Any:
            if live.relist:
                await self._relist(live)
            if guard:
                guard(tool)
            remaining = max(0.1, timeout - (time.monotonic() - started))
            return await live.client.call_tool(tool, arguments, read_timeout_seconds=remaining, meta=meta)

        return await self._request(tool, timeout, send)

    async def close(self) -> None:
        """Shut the session (and the server process) down."""
        live, self._live = self._live, None
        if live is not None:
            await self._stop(live)

    # ---- resources and prompts (what a server offers besides tools) -----------------------------

    async def offers(self, timeout: float = 10.0) -> dict[str, bool]:
        """Whether the server has resources and prompts: declared at the handshake and at least one listed
        (SDK servers declare both capabilities whether or not they hold any; no empty tools for those)."""
        capabilities = (await self._session()).client.server_capabilities
        found = {"resources": False, "prompts": False}
        for kind, declared, listing in (("resources", capabilities.resources, self.list_resources),
                                        ("prompts", capabilities.prompts, self.list_prompts)):
            if declared is not None:
                try:
                    found[kind] = bool(await listing(timeout))
                except ToolError:
                    found[kind] = False  # declared but not answering: nothing to offer the model
        return found

    async def list_resources(self, timeout: float) -> list[dict[str, Any]]:
        """The server's resources (wire dicts: uri, name, mimeType, ...), across pages."""
        return await self._paged("resources/list", timeout, lambda client, cursor: client.list_resources(
            cursor=cursor, cache_mode="bypass"), "resources")

    async def read_resource(self, uri: str, timeout: float) -> list[dict[str, Any]]:
        """The contents of one resource (wire dicts with `text` or `blob`)."""
        result = await self._request(f"resources/read {uri}", timeout, lambda live: live.client.read_resource(
            uri, cache_mode="bypass"))
        return [item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in result.contents]

    async def list_prompts(self, timeout: float) -> list[dict[str, Any]]:
        """The server's prompt templates (wire dicts: name, description, arguments), across pages."""
        return await self._paged("prompts/list", timeout, lambda client, cursor: client.list_prompts(
            cursor=cursor, cache_mode="bypass"), "prompts")

    async def get_prompt(self, name: str, arguments: dict[str, str], timeout: float) -> dict[str, Any]:
        """One prompt filled in with `arguments`: its description and messages (wire form)."""
        result = await self._request(f"prompts/get {name}", timeout,
                                     lambda live: live.client.get_prompt(name, arguments))
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)

    async def _paged(self, what: str, timeout: float, send: Callable[[Any, str | None], Any], key: str) -> list:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(100):  # a server that paginates forever cannot hang the caller
            page = await self._request(what, timeout, lambda live: send(live.client, cursor))
            items += [item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in getattr(page, key)]
            cursor = page.next_cursor
            if not cursor:
                break
        return items

    async def _request(self, what: str, timeout: float, send: Callable[[_Live], Any]) -> Any:
        """`send(live)` on the live session (a tool call, a resource read, ...); every failure a ToolError
        naming the server and `what` was asked (a tool's name, `resources/read URI`)."""
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT
        from pydantic import ValidationError

        from mcp import MCPError

        live = None
        try:
            async with asyncio.timeout(timeout):
                live = await self._session()
                result = await send(live)
        except TimeoutError:
            raise ToolError(f"MCP server {self.name!r} did not answer {what} within {timeout:g} s", "timeout") from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolError(f"MCP server {self.name!r} did not answer {what} within {timeout:g} s", "timeout") from None
            if exc.code == CONNECTION_CLOSED or (live is not None and live.closed):
                gone = "stopped" if self.spec.command else "closed the connection"
                raise self._crashed(live, f"{gone} while running {what}") from None
            raise ToolError(f"MCP server {self.name!r} refused the call to {what}: {self._redact(exc.message)}",
                            "mcp_error") from None
        except ValidationError as exc:
            raise ToolError(f"MCP server {self.name!r} answered {what} with something that is not a valid MCP "
                            f"result ({exc.error_count()} problem(s))", "mcp_bad_result") from None
        except RuntimeError as exc:  # the SDK checks structured results against the output schema
            raise ToolError(f"MCP server {self.name!r} returned a result for {what} that breaks its own output "
                            f"schema: {self._redact(str(exc))}", "mcp_bad_result") from None
        except (OSError, ConnectionError) as exc:
            raise self._crashed(live, f"lost its connection while running {what} ({exc})") from None
        self.failures = 0
        return result

    # ---- the session ---------------------------------------------------------------------------

    async def _session(self) -> _Live:
        loop = asyncio.get_running_loop()
        live = self._live
        if live is not None and live.loop is loop and not live.closed:
            return live
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            live = self._live
            if live is not None and live.loop is loop and not live.closed:
                return live
            if live is not None:
                self._live = None
                if live.loop is loop:
                    if not live.stop.is_set():  # it went away by itself: that is a crash
                        self._note_failure(self._describe_exit(live, "stopped"))
                    await self._stop(live)
                # A session from an earlier event loop died with that loop.
            await self._wait_backoff()
            self._live = await self._start(loop)
            return self._live

    async def _wait_backoff(self) -> None:
        wait = self._retry_at - time.monotonic()
        if wait <= 0:
            return
        if wait > BACKOFF_WAIT_LIMIT:
            raise ToolError(
                f"MCP server {self.name!r} failed {self.failures} time(s) in a row; plugdeck will try to start "
                f"it again in {wait:.0f} s. Last problem: {self.last_problem}", "mcp_unavailable")
        await asyncio.sleep(wait)

    async def _start(self, loop: asyncio.AbstractEventLoop) -> _Live:
        self._secrets = self.spec.secrets()
        live = _Live(loop=loop, ready=loop.create_future())
        live.task = loop.create_task(self._own(live), name=f"mcp server {self.name}")
        self.starts += 1
        try:
            await asyncio.wait_for(asyncio.shield(live.ready), self.connect_timeout)
        except TimeoutError:
            problem = self._describe_exit(live, f"did not finish the MCP handshake within {self.connect_timeout:g} s")
            await self._stop(live)
            raise self._unavailable(problem) from None
        except ToolError as exc:
            await self._stop(live)
            raise self._unavailable(exc.message) from None
        except BaseException:
            await self._stop(live)
            raise
        if self.on_tools:
            self.on_tools(live.tools)
        return live

    async def _own(self, live: _Live) -> None:
        """The owner task: open the session, publish it, wait to be told to stop, close it."""
        from mcp import Client, Implementation

        from ... import __version__

        async def on_message(message: Any) -> None:
            if getattr(message, "method", None) == "notifications/tools/list_changed":
                live.relist = True

        try:
            async with Client(self._transport(live), cache=None, message_handler=on_message,
                              client_info=Implementation(name="plugdeck", version=__version__)) as client:
                live.tools = await _list_all(client)
                info = client.server_info
                if info is not None:
                    self.server_info = {"name": info.name, "version": info.version}
                live.client = client
                live.ready.set_result(None)
                await live.stop.wait()
        except BaseException as exc:  # noqa: BLE001 - the owner reports, it never raises
            if not live.ready.done():
                live.ready.set_exception(ToolError(self._startup_problem(exc, live), "mcp_unavailable"))
        finally:
            live.closed = True
            if not live.ready.done():
                live.ready.set_exception(ToolError(self._describe_exit(live, "stopped during startup"),
                                                   "mcp_unavailable"))
            if live.stderr is not None:
                live.stderr.close()

    def _transport(self, live: _Live):
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import streamable_http_client

        if self.spec.url:
            headers = {header: self._secrets[var] for header, var in self.spec.headers_env.items()}
            inner = streamable_http_client(self.spec.url, http_client=_http_client(headers, self._http_auth()))
        else:
            command, *args = self.spec.command or []
            env = {name: self._secrets[var] for name, var in self.spec.env.items()}
            live.stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
            params = StdioServerParameters(command=command, args=args, env=env)
            inner = stdio_client(params, errlog=live.stderr)
        return _watching(inner, live)

    def _http_auth(self) -> Any:
        if self.http_auth is None and self.spec.oauth and self.spec.url:
            from .oauth import connection_auth

            self.http_auth = connection_auth(self.name, self.spec.url)
        return self.http_auth

    async def _relist(self, live: _Live) -> None:
        live.relist = False
        live.tools = await _list_all(live.client)
        if self.on_tools:
            self.on_tools(live.tools)

    async def _stop(self, live: _Live) -> None:
        live.stop.set()
        task = live.task
        if task is None or task.done() or live.loop is not asyncio.get_running_loop():
            return
        if not live.ready.done() or live.ready.exception() is not None:
            task.cancel()  # still starting: nothing to close gracefully
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ---- failures ------------------------------------------------------------------------------

    def _note_failure(self, problem: str) -> None:
        self.failures += 1
        self.last_problem = problem
        self._retry_at = time.monotonic() + Backoff(BACKOFF_FIRST, BACKOFF_MAX, jitter="none").delay(self.failures)

    def _unavailable(self, problem: str) -> ToolError:
        self._note_failure(problem)
        return ToolError(problem, "mcp_unavailable")

    def _crashed(self, live: _Live | None, what: str) -> ToolError:
        problem = self._describe_exit(live, what) if live else f"MCP server {self.name!r} {what}"
        self._note_failure(problem)
        if live is not None:
            live.closed = True
            live.stop.set()  # let the owner task close what is left; the next call starts afresh
        again = "It will be restarted" if self.spec.command else "plugdeck reconnects"
        return ToolError(f"{problem}. {again} on the next call.", "mcp_crashed")

    def _startup_problem(self, exc: BaseException, live: _Live) -> str:
        from mcp import MCPError

        exc = _innermost(exc)
        if isinstance(exc, FileNotFoundError):
            return (f"could not start MCP server {self.name!r}: the command {self.spec.where!r} was not found. "
                    "Check that it is installed and on PATH")
        if isinstance(exc, PermissionError):
            return f"could not start MCP server {self.name!r}: permission denied running {self.spec.where!r}"
        if isinstance(exc, asyncio.CancelledError):
            return self._describe_exit(live, "was stopped during startup")
        if isinstance(exc, PlugdeckError):  # e.g. OAuth: a login is needed, or was refused
            return f"MCP server {self.name!r} ({self.spec.where}): {exc}"
        if isinstance(exc, MCPError):
            if live.closed:
                return self._describe_exit(live, "exited before it finished the MCP handshake")
            return self._describe_exit(live, f"broke off the MCP handshake ({self._redact(exc.message)})")
        if type(exc).__module__.startswith(("httpx", "httpcore")) or isinstance(exc, ConnectionError):
            return f"cannot reach MCP server {self.name!r} at {self.spec.url}: {self._redact(str(exc)) or type(exc).__name__}"
        return self._describe_exit(live, f"failed during startup ({type(exc).__name__}: {self._redact(str(exc))})")

    def _describe_exit(self, live: _Live, what: str) -> str:
        """`MCP server 'x' <what>`, with the evidence: garbage it printed, its last error lines."""
        message = f"MCP server {self.name!r} ({self.spec.where}) {what}"
        if live.garbage:
            seen = "it wrote output that is not MCP JSON-RPC" if self.spec.command else "its transport reported"
            message += f"; {seen}, e.g. {self._redact(live.garbage[0])!r}"
        tail = self._stderr_tail(live)
        if tail:
            message += f"; its last error output: {tail}"
        return message

    def _stderr_tail(self, live: _Live, limit: int = 400) -> str:
        if live.stderr is None or live.stderr.closed:
            return ""
        try:
            live.stderr.flush()
            live.stderr.seek(0, os.SEEK_END)
            size = live.stderr.tell()
            live.stderr.seek(max(0, size - 4000))
            lines = [line.strip() for line in live.stderr.read().splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return self._redact(" | ".join(lines[-3:]))[-limit:]

    def redact(self, value: Any) -> Any:
        """`value` (text or JSON) with the platform's secrets blanked out, this server's among them.

        A server may echo what it was given, in any encoding; its secrets never travel on from here
        (into results, errors, the model's context or the run log).
        """
        return redact_value(value)

    @staticmethod
    def _redact(text: str) -> str:
        return redact(text)


@asynccontextmanager
async def _watching(transport: Any, live: _Live):
    async with transport as (read_stream, write_stream):
        yield _Watched(read_stream, live), write_stream


def _http_client(headers: dict[str, str], auth: Any = None):
    """The HTTP client for a remote server, built with the public httpx2 API as the SDK's
    `streamable_http_client` asks: its usual timeouts, 30 s, and 5 minutes to read an open event stream;
    `auth` signs the requests (an OAuth provider)."""
    import httpx2

    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0), auth=auth)


async def _list_all(client: Any) -> dict[str, dict[str, Any]]:
    """Every tool, across pages, as wire dicts by name."""
    tools: dict[str, dict[str, Any]] = {}
    cursor = None
    for _ in range(100):  # a server that paginates forever cannot hang the connection
        page = await client.list_tools(cursor=cursor)
        for tool in page.tools:
            tools[tool.name] = tool.model_dump(by_alias=True, mode="json", exclude_none=True)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _innermost(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def result_to_output(server: str, tool: str, result: Any) -> Any:
    """What the model reads: the structured result when there is one, else the content as text."""
    text = "\n".join(_content_text(block) for block in result.content)
    if result.is_error:
        raise ToolError(f"MCP server {server!r} reported an error from {tool}: {text or 'no details given'}",
                        "mcp_tool_error")
    if result.structured_content is not None:
        return result.structured_content
    return text


def _content_text(block: Any) -> str:
    kind = getattr(block, "type", "")
    if kind == "text":
        return block.text
    if kind == "resource":
        resource = block.resource
        if getattr(resource, "text", None) is not None:
            return resource.text
        return f"[binary resource {resource.uri} ({resource.mime_type or 'unknown type'}) not shown]"
    if kind == "resource_link":
        return f"[resource link {block.name}: {block.uri}]"
    if kind in ("image", "audio"):
        return f"[{kind} ({block.mime_type}), {len(block.data) * 3 // 4} bytes, not shown]"
    return f"[{kind or 'unknown'} content not shown]"
