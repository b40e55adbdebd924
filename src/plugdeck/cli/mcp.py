"""MCP commands: `plugdeck mcp serve` (and `--print-config`), `plugdeck mcp import` (a desktop client's
`mcpServers` block), `plugdeck mcp prompts` / `prompt`, `plugdeck plugins add mcp`, and the bodies of
`plugdeck plugins diff NAME` / `plugdeck plugins approve NAME [TOOL]` (`diff_command`,
`approve_command`). Module-level imports stay light: this module loads with every CLI start."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import typer

from .common import fail as _fail, home as _home

group = typer.Typer(help="MCP: serve plugdeck to MCP clients; import a desktop client's servers; use their prompts.",
                    no_args_is_help=True)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, var = value.partition("=")
        if not sep or not key or not var:
            _fail(f"{option} takes NAME=ENVVAR (the variable in your environment that holds the value), not {value!r}")
        pairs[key] = var
    return pairs


def _live_tools(name: str, options: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, bool]]:
    """Start the server once; return its tool definitions, who it says it is, and whether it offers
    resources and prompts (`{"resources": True}`: only what it offers)."""
    import asyncio

    from ..plugins.mcp import spec_from_options
    from ..plugins.mcp.client import MCPConnection
    from ..tools import ToolError

    async def probe():
        connection = MCPConnection(spec_from_options(name, options))
        try:
            tools = await connection.list_tools()
            offers = {kind: True for kind, offered in (await connection.offers()).items() if offered}
            return tools, connection.server_info, offers
        finally:
            await connection.close()

    try:
        return asyncio.run(probe())
    except ToolError as exc:
        _fail(exc.message)
    except ValueError as exc:
        _fail(str(exc))


def _show_tools(tools: dict[str, dict[str, Any]], name: str) -> None:
    """Each tool in full, with invisible characters spelled out: what the person approves."""
    from ..plugins.scan import spell_out

    for tool_name, definition in tools.items():
        read_only = (definition.get("annotations") or {}).get("readOnlyHint") is True
        print(f"  {name}.{spell_out(tool_name)} ({'read' if read_only else 'write'})")
        print(f"    {spell_out(definition.get('description') or definition.get('title') or '(no description)')}")
        schema = json.dumps(definition.get("inputSchema") or {}, ensure_ascii=False)
        print(f"    parameters: {spell_out(schema)}")


def _show_offers(name: str, offers: dict[str, bool]) -> None:
    from ..plugins.mcp.resources import LIST_RESOURCES, READ_RESOURCE

    if offers.get("resources"):
        print(f"  it also offers resources: the model may list and read them ({name}.{LIST_RESOURCES}, "
              f"{name}.{READ_RESOURCE}; read only, their text treated as untrusted)")
    if offers.get("prompts"):
        print(f"  it also offers prompt templates: see them with plugdeck mcp prompts {name}")


def _show_server(options: dict[str, Any]) -> None:
    """How the server is reached, exactly: the whole command line as it will run, quoted, never cut."""
    import shlex

    if options.get("command"):
        print(f"  command: {shlex.join(options['command'])}")
    else:
        print(f"  url: {options.get('url')}")
    for variable, source in (options.get("env") or {}).items():
        print(f"  environment: {variable} (from your {source}); nothing else of your environment is passed")
    for header, source in (options.get("headers_env") or {}).items():
        print(f"  header: {header} (from your {source})")


def _consent(question: str, yes: bool, what: str) -> None:
    from .confirm import ask_person

    answer = ask_person(question, yes, what)
    if isinstance(answer, str):
        _fail(answer)
    if not answer:
        _fail("not approved; nothing was changed")


def _scan(name: str, tools: dict[str, dict[str, Any]], home, allow_flagged: bool) -> None:
    """R13: every finding is shown; a high one stops the approval unless the person overrides it."""
    from ..plugins import registry
    from ..plugins.scan import ToolText, blocking, report, scan_tools

    owners = registry.tool_owners(home, skip=name)
    findings = scan_tools([ToolText.from_mcp(d) for d in tools.values()], owners)
    shared = sorted(set(tools) & set(owners))
    for tool_name in shared:  # R12: same name, different plugins: the model sees both qualified
        print(f"note: {tool_name!r} is also a tool of plugin {owners[tool_name]!r}; the model sees them as "
              f"{name}_{tool_name} and {owners[tool_name]}_{tool_name}, and each call reaches its own plugin")
    if not findings:
        return
    print("the metadata scanner found:")
    print(report(findings))
    high = blocking(findings)
    if high and not allow_flagged:
        _fail(f"{len(high)} high finding(s) in the tool definitions of {name!r} (above): they read like hidden "
              "instructions to the model. Nothing was approved. If you have read every finding and still trust "
              "this server, approve anyway with --allow-flagged.")


def _entry(name: str) -> tuple[Any, dict[str, Any]]:
    from ..plugins import registry

    home = _home()
    entry = registry.configured(home).get(name)
    if entry is None or entry.get("kind") != "mcp":
        _fail(f"no MCP server named {name!r} was added (see: plugdeck plugins; add one with plugdeck plugins add mcp)")
    return home, entry.get("options") or {}


# ---- plugdeck plugins add mcp ---------------------------------------------------------------------


YesOpt = typer.Option(False, "--yes", "-y", help="Start the server and approve its tools without asking (scripts).")
FlaggedOpt = typer.Option(False, "--allow-flagged", help="Approve even tools the metadata scanner flags high "
                                                         "(after reading every finding it shows).")


def add(
    name: Optional[str] = typer.Option(None, "--name", help="The plugin name; its tools are called NAME.TOOL. "
                                                            "With --from-json: only the server of that name."),
    command: Optional[list[str]] = typer.Argument(None, help="After --: the server's command and arguments (stdio)."),
    url: Optional[str] = typer.Option(None, "--url", help="A Streamable HTTP server, e.g. http://127.0.0.1:9000/mcp."),
    env: Optional[list[str]] = typer.Option(None, "--env", help="VAR=ENVVAR: pass the server VAR, read from your ENVVAR (repeatable)."),
    header_env: Optional[list[str]] = typer.Option(None, "--header-env", help="HEADER=ENVVAR: send HEADER with the value of your ENVVAR (HTTP, repeatable)."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds one tool call may take."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Run the server (stdio) in plugdeck's sandbox: no "
                                                          "network, no home, resource limits, a seccomp filter."),
    from_json: Optional[str] = typer.Option(None, "--from-json", help="Add the servers of a desktop client's "
                                            "mcpServers JSON (a file, or - to paste it), as plugdeck mcp import does."),
    yes: bool = YesOpt,
    allow_flagged: bool = FlaggedOpt,
) -> None:
    """Add an MCP server (a command after --, or --url): see its exact command and tools, then approve."""
    if from_json is not None:
        if command or url or env or header_env or sandbox:
            _fail("--from-json takes the servers from the JSON; give no command, --url, --env or --header-env")
        return import_command(from_json, [name] if name else None, timeout, yes, allow_flagged)
    if not name:
        _fail("give the plugin a --name (its tools are called NAME.TOOL)")
    if bool(command) == bool(url):
        _fail("give the server's command after -- (plugdeck plugins add mcp --name time -- mcp-server-time) "
              "or its --url, not both")
    if sandbox and url:
        _fail("--sandbox runs a server's command on this machine; a server reached by --url runs elsewhere")
    options: dict[str, Any] = {"command": command, "url": url, "env": _pairs(env, "--env"),
                               "headers_env": _pairs(header_env, "--header-env"), "timeout": timeout,
                               **({"sandbox": True} if sandbox else {})}
    _add_server(name, options, yes, allow_flagged)


def _add_server(name: str, options: dict[str, Any], yes: bool, allow_flagged: bool) -> int:
    """Show the server, start it to list its tools, scan and approve them, store it: the one path every
    MCP server takes into the registry. Returns how many tools were approved; exits through `_fail`."""
    import shutil

    from ..plugins import registry
    from ..plugins.mcp import build_plugin
    from ..plugins.mcp.client import ServerSpec
    from ..plugins.mcp.pinning import approve
    from ..tools import ToolError
    from .mcp_oauth import login_if_needed

    home = _home()
    if name in registry.configured(home):
        _fail(f"a plugin named {name!r} is already added; remove it first or choose another --name")
    command = options.get("command")
    if command:
        found = shutil.which(command[0])
        if found is None:
            _fail(f"the command {command[0]!r} was not found; install the server or give its full path")
        command = options["command"] = [found, *command[1:]]  # the exact program approved, not what PATH finds later
    print(f"MCP server {name!r}:")
    _show_server(options)
    try:
        ServerSpec(name, command, options["env"], options.get("url"), options["headers_env"]).secrets()
    except (ToolError, ValueError) as exc:  # before anything runs
        _fail(getattr(exc, "message", str(exc)))
    if command:  # starting it runs that program on this machine: that is a consent of its own
        _consent("Start it to list its tools?", yes, "starting an MCP server")
    login_if_needed(name, options)  # a server that answers 401 asks for an OAuth login first
    tools, info, offers = _live_tools(name, options)
    print(f"it offers {len(tools)} tool(s):")
    _show_tools(tools, name)
    _show_offers(name, offers)
    _scan(name, tools, home, allow_flagged)
    _consent(f"Approve these {len(tools)} tool(s) of {name!r}?", yes, "approving an MCP server's tools")
    options = approve({**options, "server_info": info, **offers}, tools)
    try:
        build_plugin(name, options)  # the name and options must make a plugin before they are stored
        registry.add(home, name, "mcp", options)
    except ValueError as exc:
        _fail(str(exc))
    print(f"approved {len(tools)} tool(s) of {name!r}. If the server changes a tool later, plugdeck disables it "
          f"until you approve the change (plugdeck plugins diff {name}).")
    return len(tools)


# ---- plugdeck mcp import ------------------------------------------------------------------------


@group.command("import")
def import_command(
    source: str = typer.Argument(..., help="The client's JSON file (claude_desktop_config.json, .cursor/mcp.json, "
                                           ".vscode/mcp.json, .mcp.json), or - to paste the block."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Import only this server (repeatable)."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds one tool call may take."),
    yes: bool = YesOpt,
    allow_flagged: bool = FlaggedOpt,
) -> None:
    """Add the MCP servers of a desktop client's `mcpServers` block, each as `plugdeck plugins add mcp` would.

    Secrets are never stored: each value in `env` or `headers` becomes an environment variable to export."""
    from ..plugins.mcp.desktop_config import ConfigBlockError, read_block

    text = _read_source(source)
    try:
        servers = read_block(text, "the pasted block" if source == "-" else source)
    except ConfigBlockError as exc:
        _fail(str(exc))
    unknown = sorted(set(only or []) - {item.name for item in servers})
    if unknown:
        _fail(f"the block has no server {', '.join(map(repr, unknown))} (it has: "
              f"{', '.join(item.name for item in servers)})")
    added, not_added = [], []
    for item in servers:
        if only and item.name not in only:
            continue
        print()
        if item.skipped:
            print(f"skipped {item.name!r}: {item.skipped}")
            not_added.append(item.name)
            continue
        for note in item.notes:
            print(f"note: {item.name!r}: {note}")
        try:
            with _values_for_this_process(item.literals):
                _add_server(item.name, {**item.options, "timeout": timeout}, yes, allow_flagged)
        except typer.Exit:  # _add_server said why; go on with the next server
            not_added.append(item.name)
            continue
        added.append(item)
    _tell_exports(added)
    print(f"\nadded {len(added)} MCP server(s)" + (f"; not added: {', '.join(not_added)}" if not_added else ""))
    if not_added:
        raise typer.Exit(1)


def _read_source(source: str) -> str:
    from pathlib import Path

    if source == "-":
        if sys.stdin.isatty():
            print("Paste the JSON block, then press Ctrl-D on a line of its own:", file=sys.stderr)
        return sys.stdin.read()
    path = Path(source).expanduser()
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        _fail(f"{source} does not exist")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {source}: {exc}")


@contextmanager
def _values_for_this_process(values: dict[str, str]) -> Iterator[None]:
    """The block's literal values, in this process's environment only while its server is probed (for
    variables not set already): the server can list its tools, and nothing is written anywhere."""
    import os

    added = {var: value for var, value in values.items() if var not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for var in added:
            os.environ.pop(var, None)


def _tell_exports(added: list[Any]) -> None:
    """Which variables the person must export before the servers are used (values never shown)."""
    import os

    needed = {var: why for item in added for var, why in item.exports.items()}
    if not needed:
        return
    print("\nplugdeck stored no secret values. Before using these servers, export:")
    for var, why in needed.items():
        state = "set in this shell" if os.environ.get(var) else "NOT set in this shell"
        print(f"  export {var}=...   # {why} ({state})")


# ---- plugdeck mcp prompts / prompt ----------------------------------------------------------------


def _approved_server(name: str) -> dict[str, Any]:
    """An added server's options, if it is still reached as it was approved (else it must not start)."""
    _, options = _entry(name)
    if _changed_server(name, options):
        _fail(f"review it first: plugdeck plugins approve {name}")
    return options


@group.command("prompts")
def prompts_command(server: str = typer.Argument(..., help="An added MCP server (see plugdeck plugins).")) -> None:
    """List the prompt templates an added MCP server offers, with their arguments."""
    import asyncio

    from ..plugins.mcp.prompts import PromptError, list_prompts

    options = _approved_server(server)
    try:
        found = asyncio.run(list_prompts(server, options))
    except PromptError as exc:
        _fail(str(exc))
    if not found:
        print(f"MCP server {server!r} offers no prompts")
        return
    for prompt in found:
        arguments = " ".join(f"-a {a['name']}=...{'' if a.get('required') else ' (optional)'}"
                             for a in prompt.get("arguments") or [])
        print(f"{server}/{prompt['name']}  {arguments}".rstrip())
        if prompt.get("description"):
            print(f"    {prompt['description']}")
    print(f"fill one in: plugdeck mcp prompt {server}/NAME -a KEY=VALUE (pipe it into plugdeck ask to ask it)")


@group.command("prompt")
def prompt_command(
    prompt: str = typer.Argument(..., help="SERVER/NAME, as plugdeck mcp prompts SERVER lists them."),
    argument: Optional[list[str]] = typer.Option(None, "--arg", "-a", help="KEY=VALUE for the prompt (repeatable)."),
) -> None:
    """Print an MCP server's prompt filled in with your arguments (e.g. to pipe into plugdeck ask)."""
    import asyncio

    from ..plugins.mcp.prompts import PromptError, fill_prompt

    server, sep, name = prompt.partition("/")
    if not sep or not server or not name:
        _fail(f"name the prompt as SERVER/NAME (see plugdeck mcp prompts SERVER), not {prompt!r}")
    arguments = {}
    for item in argument or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"-a takes KEY=VALUE, not {item!r}")
        arguments[key] = value
    options = _approved_server(server)
    try:
        print(asyncio.run(fill_prompt(server, options, name, arguments)))
    except PromptError as exc:
        _fail(str(exc))


# ---- plugdeck plugins diff / approve --------------------------------------------------------------


def _changed_server(name: str, options: dict[str, Any]) -> bool:
    """Whether how the server is reached changed since approval (then it must not start unasked)."""
    from ..plugins.mcp.pinning import server_identity

    if options.get("server") == server_identity(options):
        return False
    print(f"the command, URL or declared environment of MCP server {name!r} changed since it was approved; "
          "it is now:")
    _show_server(options)
    return True


def diff_command(name: str = typer.Argument(..., help="The MCP server's plugin name.")) -> None:
    """Show how an MCP server's tools differ from what was approved (exit code 1 if they do)."""
    from ..plugins.mcp.pinning import review

    _, options = _entry(name)
    if _changed_server(name, options):
        print(f"plugdeck does not start it to compare tools; review it, then: plugdeck plugins approve {name}")
        raise typer.Exit(1)
    live, _, _ = _live_tools(name, options)
    found = review(options.get("approved") or {}, live)
    _print_changes(found, options.get("tools") or {}, live)
    if found.clean:
        print(f"no changes: the {len(found.unchanged)} tool(s) of {name!r} match what was approved")
        return
    print(f"approve with: plugdeck plugins approve {name} [TOOL]")
    raise typer.Exit(1)


def _print_changes(found, approved: dict[str, Any], live: dict[str, Any], only: str | None = None) -> None:
    from ..plugins.mcp.pinning import diff

    for tool_name in found.changed:
        if only in (None, tool_name):
            print(diff(tool_name, approved.get(tool_name), live[tool_name]), end="")
    for tool_name in found.new:
        if only in (None, tool_name):
            print(f"new tool {tool_name!r} (not approved, not offered to the model):")
            print(diff(tool_name, None, live[tool_name]), end="")
    for tool_name in found.removed:
        if only is None:
            print(f"tool {tool_name!r} was approved but the server no longer offers it")


def approve_command(
    name: str = typer.Argument(..., help="The MCP server's plugin name."),
    tool: Optional[str] = typer.Argument(None, help="One tool to approve; default: the server's whole tool list as it is now."),
    yes: bool = YesOpt,
    allow_flagged: bool = FlaggedOpt,
) -> None:
    """Approve an MCP server's current tool definitions: shows the changes, scans them, asks."""
    from ..plugins import registry
    from ..plugins.mcp.pinning import approve, review

    home, options = _entry(name)
    server_changed = _changed_server(name, options)
    if server_changed:
        _consent("Start it to list its tools?", yes, "starting a changed MCP server")
    live, info, offers = _live_tools(name, options)
    if tool is not None and tool not in live:
        _fail(f"MCP server {name!r} offers no tool {tool!r} (it offers: {', '.join(live) or 'none'})")
    found = review(options.get("approved") or {}, live)
    touched = [tool] if tool else [*found.changed, *found.new]
    if not touched and not server_changed and (tool or not found.removed):
        print(f"no changes to approve for {name!r}")
        return
    _print_changes(found, options.get("tools") or {}, live, tool)
    _scan(name, {t: live[t] for t in touched}, home, allow_flagged)
    what = ", ".join(touched) or "the server as it is now"
    _consent(f"Approve {what} for {name!r}?", yes, "approving an MCP server's tools")
    updated = approve({**options, "server_info": info, "resources": False, "prompts": False, **offers}, live,
                      [tool] if tool else None)
    registry.update(home, name, options=updated)
    print(f"approved {what} for {name!r}"
          + (f"; dropped {', '.join(found.removed)}" if not tool and found.removed else ""))


# ---- plugdeck mcp serve -----------------------------------------------------------------------------


@group.command("serve")
def serve(
    http: Optional[int] = typer.Option(None, "--http", help="Serve Streamable HTTP on this port (0: any free port) instead of stdio."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind with --http. Default loopback only."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", "-p", help="Expose only these plugins (repeatable)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model `ask` uses. Default: rules (offline)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Any OpenAI-compatible endpoint for --model."),
    policy: Optional[str] = typer.Option(None, "--policy", help="A policy file (default: \\[policy] in plugdeck.toml)."),
    yes: bool = typer.Option(False, "--yes", help="Let the MCP client's own confirmation count as a person's OK "
                                                   "for calls the policy wants confirmed (default: refuse them)."),
    kb: Optional[list[str]] = typer.Option(None, "--kb", help="Answer from this knowledge base and offer its "
                                                              "documents as resources kb://NAME/DOC (repeatable)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the JSON a desktop client (Claude "
                                      "Desktop, Cursor, Claude Code) needs to start this server, and exit."),
    vscode: bool = typer.Option(False, "--vscode", help="With --print-config: VS Code's mcp.json form."),
) -> None:
    """Expose plugdeck's plugins (tools), its agent (the `ask` tool) and knowledge bases (resources) to MCP clients."""
    import asyncio
    from pathlib import Path

    from .. import __version__
    from ..assemble import AgentSetup, SetupError, build_agent
    from ..config import ConfigError, load_config
    from ..loopback import is_loopback_host
    from ..ops.runstore import RunStore
    from ..server.mcp import build_server, serve_http, serve_stdio
    from ..server.keys import KeyStore

    try:
        config = load_config({"model": model, "base_url": base_url})
        store = RunStore(config.run_store)
        agent = build_agent(config, AgentSetup(model=model, base_url=base_url, plugins=plugin, kb=kb,
                                               policy_path=policy),
                            confirm=(lambda action: True) if yes else None, sinks=[store.record],
                            warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    except (ConfigError, SetupError, ValueError) as exc:
        _fail(str(exc))
    if print_config and http == 0:
        _fail("--print-config needs the port the server will use: give --http PORT, not 0")
    if print_config:
        from .mcp_config import client_config, print_client_config

        flags = {"--plugin": plugin, "--kb": kb, "--model": model, "--base-url": base_url,
                 "--policy": str(Path(policy).resolve()) if policy else None, "--yes": yes}
        block = client_config(flags, config, agent, (host, http) if http is not None else None, vscode)
        store.close()
        asyncio.run(agent.aclose())
        print_client_config(block, http is not None, vscode)
        return
    server = build_server(agent, version=__version__, assume_yes=yes)
    keys = KeyStore(config.home)
    if http is not None and not is_loopback_host(host) and not keys.any_active():
        _fail(f"serving MCP on {host} lets anyone who can reach it call these tools: create a key first "
              "(plugdeck keys create --plugins NAMES); every request then needs it")

    def ready(url: str) -> None:
        print(f"plugdeck MCP server on {url} · {len(agent.tools)} tool(s) + ask", file=sys.stderr, flush=True)

    async def main() -> None:
        try:
            if http is None:
                await serve_stdio(server)
            else:
                await serve_http(server, host, http, on_ready=ready, keys=keys,
                                 plugins=sorted({t.plugin for t in agent.tools if t.plugin}))
        finally:
            await agent.aclose()

    try:
        asyncio.run(main())
    except OSError as exc:
        _fail(f"cannot serve on {host}:{http}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


def _register_oauth_commands() -> None:
    from .mcp_oauth import login_command, logout_command

    group.command("login")(login_command)
    group.command("logout")(logout_command)


_register_oauth_commands()

# Registered by cli/main.py as `plugdeck plugins diff` and `plugdeck plugins approve`.
plugins_commands = {"diff": diff_command, "approve": approve_command}
