"""`plugdeck mcp login NAME` / `plugdeck mcp logout NAME`, and the login `plugins add mcp --url` runs
when the server answers 401 (plugdeck/plugins/mcp/oauth.py does the OAuth; this is what the person
sees). Module-level imports stay light: this module loads with every CLI start."""

from __future__ import annotations

from typing import Any

import typer

from .common import fail as _fail


def _run_login(name: str, url: str) -> None:
    import asyncio

    from ..errors import UserError
    from ..plugins.mcp.oauth import login
    from ..tools import ToolError

    try:
        tools, _ = asyncio.run(login(name, url))
    except (ToolError, UserError) as exc:
        _fail(f"the login to MCP server {name!r} did not finish: {getattr(exc, 'message', None) or exc}")
    except KeyboardInterrupt:
        _fail("the login was interrupted; nothing was stored")
    print(f"logged in to {name!r} ({len(tools)} tool(s) offered); the tokens are in your system keyring")


def login_if_needed(name: str, options: dict[str, Any]) -> None:
    """For `plugins add mcp --url`: a server that asks for OAuth is logged in to first, and marked so
    that its connections present (and refresh) the tokens."""
    import asyncio

    from ..plugins.mcp.oauth import needs_oauth

    url = options.get("url")
    if not url or options.get("oauth") or options.get("headers_env"):
        return  # with --header-env the person brings the server's credentials
    try:
        wanted = asyncio.run(needs_oauth(url))
    except Exception:  # noqa: BLE001 - unreachable now: the listing that follows says so in full
        return
    if not wanted:
        return
    print(f"MCP server {name!r} asks you to log in (OAuth).")
    _run_login(name, url)
    options["oauth"] = True


def login_command(name: str = typer.Argument(..., help="The MCP server's plugin name.")) -> None:
    """Log in to a remote MCP server with OAuth (again): opens your browser, keeps the tokens in the keyring."""
    from ..plugins import registry
    from .mcp import _entry

    home, options = _entry(name)
    url = options.get("url")
    if not url:
        _fail(f"MCP server {name!r} runs a command on this machine; only a server reached by URL has a login")
    _run_login(name, url)
    if not options.get("oauth"):
        registry.update(home, name, options={**options, "oauth": True})


def logout_command(name: str = typer.Argument(..., help="The MCP server's plugin name.")) -> None:
    """Forget the OAuth login to a remote MCP server (its tokens and client registration in the keyring)."""
    from ..errors import UserError
    from ..plugins.mcp.oauth import forget
    from .mcp import _entry

    _, options = _entry(name)
    if not options.get("url"):
        _fail(f"MCP server {name!r} runs a command on this machine; it has no login to forget")
    try:
        forgotten = forget(name, options["url"])
    except UserError as exc:
        _fail(str(exc))
    if forgotten:
        print(f"forgot the login to {name!r}; its tools need  plugdeck mcp login {name}  before they work again")
    else:
        print(f"no login to {name!r} was stored; nothing to forget")
