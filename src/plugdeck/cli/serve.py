"""`plugdeck serve`: the HTTP API (OpenAI-compatible + REST + SSE) and the web page, in one process.

    plugdeck serve                                  # http://127.0.0.1:8080
    plugdeck serve --plugin calculator --plugin pizzeria --kb handbook --port 8080

It binds to loopback unless told otherwise; another address needs access keys:

    plugdeck serve keys create --plugins calculator     # also: plugdeck serve keys list | revoke NAME
FastAPI and uvicorn load only here (the `server` extra).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Optional

import typer

from . import access_keys
from .main import (BaseUrlOpt, CliError, DeadlineOpt, GroundedOpt, KbOpt, MaxStepsOpt, ModelOpt, NoStoreOpt,
                   PlannerOpt, PluginOpt, PolicyOpt)

group = typer.Typer(help="Serve the OpenAI-compatible API, the REST API and the web page.",
                    invoke_without_command=True)
group.add_typer(access_keys.group, name="keys")


@group.callback()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Not loopback: API keys are required."),
    port: int = typer.Option(8080, "--port", help="Port to listen on (0 picks a free one)."),
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    plugin: Optional[list[str]] = PluginOpt,
    kb: Optional[list[str]] = KbOpt,
    grounded: Optional[bool] = GroundedOpt,
    policy: Optional[str] = PolicyOpt,
    planner: Optional[str] = PlannerOpt,
    max_steps: Optional[int] = MaxStepsOpt,
    deadline: Optional[float] = DeadlineOpt,
    no_store: bool = NoStoreOpt,
    pending_ttl: float = typer.Option(3600.0, "--pending-ttl", help="Seconds a run may wait for a person's OK "
                                                                     "before it is cancelled."),
    max_upload_mb: int = typer.Option(50, "--max-upload-mb", help="Largest document upload, in MiB."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in a browser."),
) -> None:
    """Serve plugdeck over HTTP: /v1 for OpenAI clients, /api for REST and SSE, / for the page."""
    if ctx.invoked_subcommand:
        return
    from ..server.app import build_state, create_app  # `server` extra: checked before the command starts
    from ..server.keys import KeyStore
    from ..assemble import AgentSetup
    from ..config import load_config
    from ..loopback import is_loopback_host

    config = load_config({"max_steps": max_steps, "deadline": deadline, "planner": planner})
    if not is_loopback_host(host) and not KeyStore(config.home).any_active():
        raise CliError(f"listening on {host} would let other machines in: create an API key first "
                       f"({access_keys.CREATE}), or keep the default --host 127.0.0.1")
    setup = AgentSetup(model=model, base_url=base_url, plugins=plugin, kb=kb, grounded=grounded, policy_path=policy)
    warn = lambda message: print(f"warning: {message}", file=sys.stderr)  # noqa: E731
    state = build_state(config, setup, host=host, record=not no_store, pending_ttl=pending_ttl, warn=warn)
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None
    asyncio.run(_serve(state, create_app(state, max_upload_mb=max_upload_mb), sock, open_page))


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def _serve(state, app, sock: socket.socket, open_page: bool) -> None:
    import uvicorn

    try:
        state.agents.build_all()  # on the loop that runs them; a configuration mistake stops here
    except ValueError as exc:
        if state.store is not None:
            state.store.close()
        raise CliError(str(exc)) from None
    host, port = sock.getsockname()[:2]
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    page = f"{base}/?token={state.auth.session_token}"
    keyed = state.auth.keyed
    print(f"plugdeck serving {', '.join(state.agents.names)} on {base}", flush=True)
    print(f"  page:    {page if keyed else base + '/'}", flush=True)
    if not keyed:
        print("           no API keys yet: open to this machine only (plugdeck serve keys create --plugins ... to "
              f"require keys; then sign the page in with {page})", flush=True)
    elif not state.auth.keys.any_active():
        print("           every API key is revoked: API requests answer 401 until you create one (plugdeck serve keys "
              f"create --plugins ...); to need no key on this machine again, delete {state.auth.keys.path}", flush=True)
    print(f"  OpenAI:  base_url=\"{base}/v1\", model=\"plugdeck\"", flush=True)
    print(f"  REST:    {base}/api   docs: {base}/docs", flush=True)
    if open_page:
        import webbrowser

        webbrowser.open(page)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=5, ws="none"))
    sandbox = asyncio.create_task(_sandbox_at_start(state))  # beside the server: it starts listening at once
    await server.serve(sockets=[sock])
    sandbox.cancel()


async def _sandbox_at_start(state) -> None:
    """The sandbox's self-test said on stderr, and sandboxed plugins' sandboxes started warm."""
    from ..plugins.sandbox.serving import at_server_start

    try:
        lines = await at_server_start(p for agent in state.agents.built() for p in getattr(agent, "plugins", ()))
    except Exception as exc:  # noqa: BLE001 - a report, never a reason for the server to stop
        lines = [f"sandbox: the start-up check failed: {exc}"]
    for line in lines:
        print(line, file=sys.stderr, flush=True)
