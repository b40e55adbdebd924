"""The FastAPI application: the routers, the guard, the page and the API docs, in one process.

    state = build_state(load_config(), AgentSetup(plugins=["calculator"]), host="127.0.0.1")
    app = create_app(state)          # serve with uvicorn; `plugdeck serve` does all of this

Routes: `/v1/*` (OpenAI-compatible), `/api/*` (REST + SSE), `/docs` (OpenAPI docs, from
`/openapi.json`), the plugin store for the operator (`/api/store/*`, store_api.py), and the page at `/`,
`/runs/ID`, `/plugins`, `/knowledge`, `/store` (static files shipped in the package: no build step).
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import __version__
from ..assemble import AgentSetup
from ..config import Config
from ..errors import UserError
from ..loopback import is_loopback_host
from ..redaction import register_secret
from . import openai_api, rest, store_api
from .agents import AgentCatalog, configured_agents
from .auth import Authenticator, Guard
from .errors import ApiError, error_body, from_user_error
from .keys import KeyStore
from .runs_live import LiveRegistry
from .state import ServerState

STATIC = Path(__file__).parent / "static"
PAGES = ("/", "/chat", "/runs", "/runs/{run_id}", "/plugins", "/knowledge", "/store", "/store/{namespace}/{package}")
MAX_BODY = 1 << 20  # JSON requests
SWEEP_SECONDS = 10.0


def build_state(config: Config, default: AgentSetup, *, host: str = "127.0.0.1", record: bool = True,
                pending_ttl: float = 3600.0, warn: Callable[[str], None] | None = None) -> ServerState:
    """Everything the app holds: agents (not built yet), the run store, keys and a fresh session token."""
    from ..ops.runstore import RunStore

    store = RunStore(config.run_store) if record else None
    agents = AgentCatalog(config, configured_agents(default), sinks=[store.record] if store else [], warn=warn)
    session = secrets.token_urlsafe(32)
    register_secret(session, "server session token")  # never in a trace, a stored run or an error
    auth = Authenticator(KeyStore(config.home), session, loopback=is_loopback_host(host))
    return ServerState(config=config, agents=agents, live=LiveRegistry(pending_ttl=pending_ttl), auth=auth,
                       store=store)


def create_app(state: ServerState, *, max_upload_mb: int = 50) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        sweeper = asyncio.create_task(_sweep(state))
        try:
            yield
        finally:
            sweeper.cancel()
            await state.live.cancel_all()  # runs in flight are recorded as cancelled
            await state.agents.aclose()
            if state.store is not None:
                await asyncio.to_thread(state.store.close)

    app = FastAPI(title="plugdeck", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="OpenAI-compatible chat completions backed by plugdeck agents that call plugins, "
                              "and a REST API for runs, confirmations, plugins and knowledge bases.")
    app.state.plugdeck = state
    app.add_middleware(Guard, loopback=state.auth.loopback, max_body=MAX_BODY, max_upload=max_upload_mb << 20)
    app.include_router(openai_api.router)
    app.include_router(rest.router)
    app.include_router(store_api.router)
    _errors(app)
    _pages(app, state)
    return app


async def _sweep(state: ServerState) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        state.live.sweep()


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(UserError)  # e.g. a PolicyError or a ModelError that no route turned into an ApiError
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return from_user_error(exc).response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "header"))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        return JSONResponse(error_body(400, message, "invalid_request", where or None), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(500, "internal server error; the server's log has the details"),
                            status_code=500)


def _pages(app: FastAPI, state: ServerState) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def page(request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None:
            # The link `plugdeck serve` printed: the token moves to the address's fragment, which the page
            # keeps in its own storage (see auth.py) and takes out of the address; a wrong one is dropped.
            valid = secrets.compare_digest(token.encode(), state.auth.session_token.encode())
            return RedirectResponse(request.url.path + (f"#session={token}" if valid else ""), status_code=303)
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    for path in PAGES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_assets(name: str) -> FileResponse:
        allowed = {"swagger-ui.css", "swagger-ui-bundle.js"}
        if name not in allowed:
            raise ApiError(404, f"no such file {name!r}")
        try:  # Swagger UI's files, shipped in a package (no CDN: the page must work offline and under its CSP)
            from importlib.resources import files

            assets = files("fastapi_offline") / "static"
        except ImportError:
            raise ApiError(404, "the API docs page needs fastapi-offline: pip install 'plugdeck[server]'") from None
        return FileResponse(Path(str(assets)) / name)

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict:
        return {"ok": True, "runs_in_flight": len(state.live.live())}
