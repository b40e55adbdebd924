"""The plugin store under `/api/store`, for the server's operator only (the page's Store view).

The operator's session (or loopback while no key exists) may list and add stores, search them, read a
package's page, and install with consent; an API key gets 403 on every route here: installing code on
the server is never a key's business. Install is two steps, as on the command line:

1. `POST /api/store/consent` fetches the package through TUF (store/client.py) and answers what the
   person consents to: the verified manifest (tools with their effects and schemas, permissions, the
   publisher's namespace), the metadata scanner's findings, and the manifest's sha256;
2. `POST /api/store/install` names that sha256: client.install runs again (the one install path: TUF,
   unpack, plugdeck.lock, the plugin registry) and its consent step says yes only to the very manifest
   that was shown; a changed one is refused (409), a flagged one needs `allow_flagged`.

Every client call blocks on the network or the disk, so each runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from ..errors import UserError
from .auth import Principal
from .errors import ApiError
from .state import state_of, who

PACKAGE = r"^[a-z][a-z0-9-]{0,38}/[a-z][a-z0-9_-]{0,63}$"


def operator(principal: Principal = Depends(who)) -> Principal:
    if not principal.operator:
        raise ApiError(403, "the plugin store is for the server's operator: API keys may not browse it or install "
                            "plugins", code="operator_only")
    return principal


router = APIRouter(prefix="/api/store", tags=["plugin store (operator)"], dependencies=[Depends(operator)])


class StoreAddress(BaseModel):
    url: str = Field(min_length=1, max_length=2000, description="The store's base URL, e.g. http://127.0.0.1:8700")


class NewStore(StoreAddress):
    name: str = Field(min_length=1, max_length=64, description="A short name for it here, e.g. team")
    fingerprint: str = Field(pattern=r"^sha256:[0-9a-f]{64}$",
                             description="The root fingerprint the operator checked (from .../stores/preview)")


class PackageRef(BaseModel):
    package: str = Field(pattern=PACKAGE, description="namespace/name, e.g. acme/weather")
    store: str | None = Field(None, description="A store's name (the only one added when left out)")
    version: str | None = Field(None, max_length=100, description="Default: the latest not revoked")


class Consented(PackageRef):
    version: str = Field(max_length=100)
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="From /api/store/consent: what was shown")
    allow_flagged: bool = Field(False, description="Install although the scanner flags hidden instructions")


def _home(request: Request):
    from ..extras import require

    require("store", "the plugin store")
    return state_of(request).config.home


async def _off(function, *args, **kwargs):
    return await asyncio.to_thread(function, *args, **kwargs)


@router.get("/stores", summary="The stores added here, with their pinned root fingerprints")
async def list_stores(request: Request) -> list[dict[str, Any]]:
    from ..store import client

    known = client.stores(_home(request))
    return [{"name": name, "url": entry["url"], "fingerprint": entry["fingerprint"]} for name, entry in known.items()]


@router.post("/stores/preview", summary="A store's root fingerprint, to check before adding it")
async def preview_store(body: StoreAddress, request: Request) -> dict[str, Any]:
    from ..store import client

    _home(request)
    root = await _off(client.fetch_first_root, body.url)
    return {"url": body.url.rstrip("/"), "fingerprint": client.root_fingerprint(root),
            "name": client.name_for_url(body.url)}


@router.post("/stores", status_code=201, summary="Add a store, pinning the root whose fingerprint was checked")
async def add_store(body: NewStore, request: Request) -> dict[str, Any]:
    from ..store import client

    home = _home(request)
    root = await _off(client.fetch_first_root, body.url)
    entry = await _off(client.add_store, home, body.name, body.url, root, fingerprint=body.fingerprint)
    return {"name": body.name, "url": entry["url"], "fingerprint": entry["fingerprint"]}


@router.get("/search", summary="Search a store (its listings: what is installed is verified through TUF)")
async def search(request: Request, q: str = Query("", max_length=500), store: str | None = None,
                 kind: str | None = Query(None, pattern="^(python|openapi|mcp)$"),
                 limit: int = Query(20, ge=1, le=100)) -> dict[str, Any]:
    from ..store import client

    name, url = client.resolve(_home(request), store)
    return {"store": name, "results": await _off(client.search, url, q, kind=kind, limit=limit)}


@router.get("/packages/{namespace}/{package}", summary="A package's page: versions, tools, permissions, publisher")
async def package_page(namespace: str, package: str, request: Request, store: str | None = None) -> dict[str, Any]:
    import httpx

    from ..store import client, lock

    home = _home(request)
    full = f"{namespace}/{package}"
    name, url = client.resolve(home, store)
    try:
        answer = await _off(httpx.get, f"{url}/api/v1/packages/{full}", timeout=30)
    except httpx.HTTPError as exc:
        raise ApiError(502, f"cannot reach the store {name} ({url}): {exc}", code="store_unreachable") from None
    if answer.status_code == 404:
        raise ApiError(404, f"the store {name} has no package {full}", code="no_such_package")
    if answer.status_code != 200:
        raise ApiError(502, f"the store {name} answered {answer.status_code} for {full}", code="store_unreachable")
    installed = lock.read(home)["packages"].get(full)
    return {**answer.json(), "store": name, "publisher": namespace,
            "installed": None if installed is None else {"version": installed["version"], "store": installed["store"],
                                                         "disabled": installed.get("disabled")}}


@router.post("/consent", summary="What installing a package means, verified through TUF: shown before consent")
async def consent(body: PackageRef, request: Request) -> dict[str, Any]:
    from ..store import client

    home = _home(request)
    name, url = client.resolve(home, body.store)
    version = body.version or await _off(client.latest_version, url, body.package)
    if version is None:
        raise ApiError(409, f"every version of {body.package} is revoked", code="revoked")
    fetched = await _off(client.fetch, home, name, body.package, version)
    return _consent_view(fetched, client.scan(fetched.manifest))


def _consent_view(fetched: Any, findings: list) -> dict[str, Any]:
    """The same facts the command line shows before it asks (cli/store.py `_show`), as data."""
    from ..plugins.scan import blocking, spell_out

    m = fetched.manifest
    return {
        "store": fetched.store, "package": m.name, "version": m.version, "kind": m.kind, "plugin": m.plugin,
        "publisher": m.namespace, "description": spell_out(m.description),
        "tools": [{"name": f"{m.plugin}.{t.name}", "effect": t.effect, "description": spell_out(t.description),
                   "parameters": t.parameters} for t in m.tools],
        "permissions": m.permissions.model_dump(),
        "findings": [str(f) for f in findings], "blocking": bool(blocking(findings)),
        "manifest_sha256": hashlib.sha256(fetched.manifest_bytes).hexdigest(),
    }


@router.post("/install", status_code=201, summary="Install the package exactly as it was shown for consent")
async def install(body: Consented, request: Request, principal: Principal = Depends(operator)) -> dict[str, Any]:
    from ..plugins.scan import blocking
    from ..store import client

    home = _home(request)
    refusal: list[ApiError] = []

    def agreed(fetched: Any, findings: list) -> bool:
        shown = hashlib.sha256(fetched.manifest_bytes).hexdigest()
        if shown != body.manifest_sha256:
            refusal.append(ApiError(409, f"{body.package} {body.version} is not what was shown for consent (its "
                                         "manifest changed); review it again", code="consent_stale"))
            return False
        if blocking(findings) and not body.allow_flagged:
            refusal.append(ApiError(409, "the metadata scanner flags what reads like hidden instructions to the "
                                         "model; not installed (allow_flagged installs it anyway)", code="flagged"))
            return False
        return True

    try:
        entry = await _off(client.install, home, body.package, store=body.store, version=body.version, consent=agreed)
    except UserError:
        if refusal:
            raise refusal[0] from None
        raise
    return {"package": body.package, "version": entry["version"], "plugin": entry["plugin"], "store": entry["store"],
            "tools": sorted(entry["tools"]), "permissions": entry["permissions"], "by": principal.label,
            "note": "pinned in plugdeck.lock; agents built from now on offer its tools"}
