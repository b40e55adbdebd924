"""A third-party plugin as plugdeck sees it: tools whose calls go to its runner in the sandbox.

`describe(entry_point, name)` runs the runner once in `--describe` mode (sandboxed too: importing a
package runs its code) and returns its manifest. `sandboxed_plugin` turns that manifest into a
Plugin whose tools call a `SandboxRuntime`:

- the runtime starts the runner under bwrap on the first call and speaks MCP to it through
  plugins/mcp/client.py (restart after a crash, with backoff; a tool listing that differs from the
  described one is refused);
- each call gets the plugin's declared secrets, as the operator mapped them, in its `_meta`; they are
  registered with the redactor, so they are blanked from results, errors and the run log;
- a call that overruns its time (the tool's timeout, cut to the plugin's wall_s) kills the whole
  sandbox; the next call starts a fresh one. A crash (a limit: CPU seconds, memory) does the same;
- calls run `concurrency` at a time; `breaker_failures` kills/crashes/timeouts in a row open the
  plugin's circuit for `breaker_cooldown_s`: calls are refused at once meanwhile;
- every sandbox event (egress, leftover processes killed, a kill, a restart, the circuit) is kept in
  `runtime.events` and passed to the functions in `LISTENERS` (the run log's hook).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from typing import Any, Callable

from ...events import tool_call_notes
from ...redaction import redact, redact_value, register_secret
from ...tools import ToolError, tool_from_schema
from .egress import EgressProxy, EgressRecord
from .launch import Launch, Mount, command
from .limits import Limits, plugin_limits
from .runner import CALL_META, JSON_META, KILLED_META, SECRETS_META
from .settings import SandboxSettings

# Each sandbox event, as a dict with "plugin", "kind" (egress, killed, stopped, killed_leftovers,
# circuit_open) and its details. A listener is called inside the tool call's own context (contextvars).
# An event of a call made by a run also becomes that run's SandboxNoted event (events.tool_call_notes).
LISTENERS: list[Callable[[dict[str, Any]], None]] = []
_described: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}


class SandboxError(ToolError):
    def __init__(self, message: str, kind: str = "sandbox"):
        super().__init__(message, kind)


def describe(entry_point: str, name: str, *, paths: list[str] | None = None, ceiling: Limits | None = None,
             dist: Any = None) -> dict:
    """The plugin's manifest, read by its runner inside the sandbox (kept for this process and, for a
    package pip installed (`dist`), on disk until its files change: see manifests.py)."""
    from . import manifests

    key = (entry_point, name, tuple(paths or ()))
    stored = manifests.cache_key(entry_point, name, dist)
    if key not in _described and manifests.cached(stored) is not None:
        _described[key] = manifests.cached(stored)
    if key not in _described:
        limits = Limits().within(ceiling or Limits())
        argv = command(Launch(name=name, entry_point=entry_point, limits=limits, paths=list(paths or ()),
                              mode="describe"))
        try:
            done = subprocess.run(argv, env={}, capture_output=True, text=True, timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"plugin {name!r} did not load within {limits.wall_s} s in its sandbox") from None
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or f"exit status {done.returncode}"
            raise SandboxError(f"plugin {name!r} failed to load in its sandbox: {redact(tail)}")
        try:
            _described[key] = json.loads(done.stdout)
        except json.JSONDecodeError:
            raise SandboxError(f"plugin {name!r} printed something other than its manifest while loading "
                               f"(plugins must not print on import): {redact(done.stdout[:200])!r}") from None
        manifests.keep(stored, _described[key])
    return _described[key]


class SandboxRuntime:
    """One plugin's sandbox: its process, its proxy, its limits, its secrets, its circuit."""

    def __init__(self, name: str, entry_point: str, manifest: dict[str, Any], *,
                 settings: SandboxSettings | None = None, paths: list[str] | None = None,
                 resolver: Any = None, mounts: list[Mount] | None = None, scratch: bool = True,
                 sdk: bool = False):
        """`mounts` and `scratch` come from the platform (a store package's permissions), never from
        the plugin's own manifest. `sdk`: the runner serves with the MCP SDK (bench/: to compare)."""
        from ..mcp.client import MCPConnection, ServerSpec

        self.name, self.entry_point = name, entry_point
        self.settings = settings or SandboxSettings()
        needs = manifest.get("needs") or {}
        self.limits = plugin_limits(needs, self.settings.ceiling)
        self.tools = {t["name"]: t for t in manifest.get("tools", [])}
        self.declared_secrets = [str(s) for s in needs.get("secrets") or []]
        self.network = [str(h) for h in needs.get("network") or []]
        # Filesystem: none unless declared (a read-only, empty /tmp); `session` keeps a private /tmp while the
        # sandbox is warm, `call` gives a fresh sandbox, and so an empty /tmp, for every call.
        keep = needs.get("scratch", "none")
        if keep not in ("none", "session", "call"):
            raise SandboxError(f"plugin {name!r}: needs.scratch must be 'none' (the default: nothing writable), "
                               f"'session' (a private /tmp kept while its sandbox is warm) or 'call' (a fresh "
                               f"sandbox, and so an empty /tmp, for every call), not {keep!r}")
        scratch = scratch and keep != "none"
        self.warm = self.settings.warm and keep != "call"
        grant = self.settings.grant(name)
        self.secret_vars = {declared: grant.secrets[declared] for declared in self.declared_secrets
                            if declared in grant.secrets}
        self.events: list[dict[str, Any]] = []
        self.proxy = EgressProxy(name, self.network, allow_private=grant.allow_private, resolver=resolver,
                                 on_record=self._egress) if self.network else None
        launch = Launch(name=name, entry_point=entry_point, limits=self.limits, paths=list(paths or ()),
                        egress_socket=self.proxy.path if self.proxy else None, mounts=list(mounts or ()),
                        scratch=scratch, sdk=sdk)
        self.connection = MCPConnection(ServerSpec(name=name, command=command(launch)),
                                        connect_timeout=float(self.limits.wall_s))
        self.failures = 0  # kills, crashes and timeouts in a row
        self.open_until = 0.0
        self._gates: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._egress_of: dict[str, list[EgressRecord]] = {}  # a running call's requests, by call id

    async def start(self) -> None:
        """Start the sandbox now rather than on the first call (a server at start-up: the cold start,
        mostly the MCP SDK's import inside, is then paid before anyone waits on it)."""
        await self._proxy_ready()
        await self.connection.list_tools()

    # ---- calls ---------------------------------------------------------------------------------------

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        from ..mcp.client import result_to_output

        if time.monotonic() < self.open_until:
            left = self.open_until - time.monotonic()
            raise SandboxError(f"plugin {self.name!r} failed {self.failures} times in a row; its calls are refused "
                               f"for {left:.0f} s more. Last: {self.last_problem}", "circuit_open")
        timeout = min(timeout, float(self.limits.wall_s))
        async with self._gate():
            await self._proxy_ready()
            call_id = secrets.token_hex(8)
            meta = {CALL_META: call_id, **({SECRETS_META: self._secrets()} if self.declared_secrets else {})}
            self._egress_of[call_id] = []
            try:
                result = await self.connection.call(tool, arguments, timeout, guard=self._known, meta=meta)
            except ToolError as exc:
                raise await self._failed(tool, exc, timeout) from None
            finally:
                for record in self._egress_of.pop(call_id, []):  # in the call's own context (see LISTENERS)
                    self._event("egress", tool=tool, **record.as_dict())
                if not self.warm:
                    await self.connection.close()
        self.failures = 0
        killed = (result.meta or {}).get(KILLED_META)
        if killed:
            self._event("killed_leftovers", tool=tool, processes=killed)
        try:
            output = result_to_output(self.name, tool, result)
        except ToolError as exc:
            raise ToolError(redact(exc.message), exc.kind) from None
        if (result.meta or {}).get(JSON_META) and isinstance(output, str):
            output = json.loads(output)  # a number, a list: the value the tool returned, as in process
        return redact_value(output)

    def _known(self, tool: str) -> None:
        """The MCP client's guard: the runner offers exactly the tools its manifest described."""
        if tool not in self.tools:
            raise ToolError(f"plugin {self.name!r} has no tool {tool!r} in its manifest", "unknown_tool")

    async def _failed(self, tool: str, exc: ToolError, timeout: float) -> ToolError:
        kind = exc.kind
        # The MCP client names the server by its command line; here that is the whole bwrap invocation.
        exc = ToolError(exc.message.replace(f" ({self.connection.spec.where})", " (sandboxed)"), kind)
        if kind == "timeout":
            await self.connection.close()  # the whole tree dies with bwrap (--die-with-parent, PID namespace)
            message = (f"plugin {self.name!r}: {tool} did not answer in time (limit {timeout:g} s); "
                       "its sandbox was killed, with every process in it, and restarts on the next call")
            self._event("killed", tool=tool, reason="wall-clock limit")
        elif kind in ("mcp_crashed", "mcp_unavailable"):
            message = (f"plugin {self.name!r}: its sandbox stopped while running {tool} (a limit was reached: "
                       f"CPU {self.limits.cpu_s} s or memory {self.limits.memory_mb} MB, or it crashed); it "
                       f"restarts on the next call. {exc.message}")
            self._event("stopped", tool=tool, reason=redact(exc.message))
        else:
            return ToolError(redact(exc.message), kind)
        self.failures += 1
        self.last_problem = message
        if self.failures >= self.settings.breaker_failures:
            self.open_until = time.monotonic() + self.settings.breaker_cooldown_s
            self._event("circuit_open", failures=self.failures, seconds=self.settings.breaker_cooldown_s)
        return SandboxError(redact(message), "timeout" if kind == "timeout" else "sandbox_stopped")

    last_problem = ""

    def _gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self._gates:
            self._gates = {loop: asyncio.Semaphore(self.settings.concurrency)}  # one loop's gate at a time
        return self._gates[loop]

    async def _proxy_ready(self) -> None:
        if self.proxy is None:
            return
        loop = asyncio.get_running_loop()
        if self.proxy.running_on is not loop:
            if self.proxy.running_on is not None:  # an earlier event loop's server died with it
                self.proxy._server = None
            await self.proxy.start()

    def _secrets(self) -> dict[str, str]:
        import os

        values = {}
        for declared in self.declared_secrets:
            var = self.secret_vars.get(declared)
            if var is None:  # not mapped: not given (the plugin's secret() says how to map it)
                continue
            value = os.environ.get(var)
            if not value:
                raise ToolError(f"plugin {self.name!r} needs the secret {declared!r} from ${var}, which is not set",
                                "secret_missing")
            register_secret(value, f"sandboxed plugin {self.name} ({declared})")
            values[declared] = value
        return values

    # ---- events ----------------------------------------------------------------------------------------

    def _egress(self, record: EgressRecord) -> None:
        """A request the proxy saw: kept for its call, reported when the call ends (or now, unclaimed)."""
        if record.call in self._egress_of:
            self._egress_of[record.call].append(record)
        else:
            self._event("egress", **record.as_dict())

    def _event(self, kind: str, **fields: Any) -> None:
        event = {"plugin": self.name, "kind": kind, "at": time.time(), **fields}
        self.events.append(event)
        del self.events[:-1000]
        for listener in LISTENERS:
            listener(event)
        sink = tool_call_notes.get()  # set by the executor around the tool call that caused this, if any
        if sink is not None:
            sink(self.name, kind, redact_value({k: v for k, v in fields.items() if k not in ("plugin", "call")}))

    async def close(self) -> None:
        await self.connection.close()
        if self.proxy is not None and self.proxy.running_on is asyncio.get_running_loop():
            await self.proxy.close()


def sandboxed_plugin(entry_point: str, name: str, *, settings: SandboxSettings | None = None,
                     paths: list[str] | None = None, resolver: Any = None, source: str = "", dist: Any = None):
    """The Plugin for a third-party entry point, its code run only in the sandbox; `dist`, the package
    that declares it (importlib.metadata), lets its manifest be kept on disk."""
    from ..base import Plugin

    settings = settings or SandboxSettings.load()
    manifest = describe(entry_point, name, paths=paths, ceiling=settings.ceiling, dist=dist)
    runtime = SandboxRuntime(name, entry_point, manifest, settings=settings, paths=paths, resolver=resolver)
    needs = dict(manifest.get("needs") or {})
    tools = [_tool(runtime, definition) for definition in manifest.get("tools", [])]
    # The plugin's own name, as in process (a plugin may differ from its entry point's name).
    plugin = Plugin(name=str(manifest.get("name") or name), tools=tools, version=str(manifest.get("version") or "0"),
                    description=str(manifest.get("description") or ""), author=str(manifest.get("author") or ""),
                    source=source or f"entry point {entry_point} (sandboxed)",
                    needs={**needs, "sandbox": {"limits": runtime.limits.as_dict()}}, close=runtime.close)
    plugin.runtime = runtime  # for tests and the run log's hook
    return plugin


def _tool(runtime: SandboxRuntime, definition: dict[str, Any]):
    name = definition["name"]
    timeout = float(definition.get("timeout") or 30.0)

    async def call(**arguments: Any) -> Any:
        return await runtime.call(name, arguments, timeout)

    return tool_from_schema(
        name, str(definition.get("description") or name), definition.get("parameters"), call,
        effect="write" if definition.get("effect") == "write" else "read",
        timeout=min(timeout, runtime.limits.wall_s) + 5,  # the runtime's own limit fires first, and kills
        untrusted=bool(definition.get("untrusted")) or bool(runtime.network),
        private=bool(definition.get("private")),
        capabilities=tuple(str(c) for c in definition.get("capabilities") or ()),  # what routers match on
        # No declared host: its arguments cannot leave this machine (the sandbox has no network).
        egress=None if not runtime.network else "undeclared",
    )
