"""The `plugdeck` command: ask, chat, plugins, runs, models, tools."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer

from ..errors import UserError


def _click_style_help() -> None:
    """Recent typer writes each parameter's Python type in --help (`--json <bool>`, `--plugin <list[str]>`,
    `{question}`). Show help as click does: a flag bare, a value as a NAME in capitals (TEXT, INTEGER, a
    choice's values, or the option's metavar), an argument as QUESTION. Older typer versions already do."""
    from typer import core

    names = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT"}

    def option_type(self, ctx):
        if self.metavar is not None:
            return self.metavar
        if self.is_flag:
            return None
        label = self.display_type(ctx).strip("<>").removeprefix("list[").removesuffix("]")  # "<list[str]>": str
        return f"[{label}]" if "|" in label else names.get(label, label.upper())

    def argument_name(self) -> str:
        return (self.metavar or self.name.upper()) + ("..." if self.nargs != 1 else "")

    if hasattr(core, "TyperOption") and hasattr(core.TyperOption, "display_type_rich"):
        core.TyperOption.display_type_rich = option_type
    if hasattr(core, "TyperArgument") and hasattr(core.TyperArgument, "_usage_display_name"):
        core.TyperArgument.display_type_rich = lambda self, ctx: None
        core.TyperArgument._rich_display_name = argument_name
        core.TyperArgument._usage_display_name = lambda self: argument_name(self) if self.required else \
            f"[{argument_name(self)}]"


_click_style_help()

# What `ask` (and every command) exits with; shown at the end of --help.
EXIT_CODES = ("Exit status: 0 answered; 1 failed (model or connection error, deadline, step limit, budget, bad setup); "
              "2 bad usage; 3 no answer (refused by a tool, the model or an answer check); 4 an action needed a "
              "person's OK and did not get it; 130 cancelled (Ctrl-C).")
app = typer.Typer(
    help="plugdeck: answer questions by letting a model call plugins (offline by default).",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plugins_app = typer.Typer(help="List installed plugins and their tools.", invoke_without_command=True)
runs_app = typer.Typer(help="List stored runs, or show one as a tree.", invoke_without_command=True)
models_app = typer.Typer(help="Show model profiles, or check an endpoint.", invoke_without_command=True)
tools_app = typer.Typer(help="Call one tool directly, without a model.")
app.add_typer(plugins_app, name="plugins")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.add_typer(tools_app, name="tools")
plugins_add_app = typer.Typer(help="Add a plugin: an OpenAPI service, an MCP server, a SQL database.")
plugins_app.add_typer(plugins_add_app, name="add")

# Features with commands of their own live in plugdeck/cli/<name>.py. Such a module may define
# `group` (a typer.Typer, registered as `plugdeck <name> ...`) and `add` (registered as
# `plugdeck plugins add <name> ...`). Keep their module-level imports light.
EXTENSIONS = ("kb", "openapi", "mcp", "sql", "policy", "serve", "keys", "eval", "runs_replay", "runs_export", "tune", "store",
              "extensions")
# The optional part (pip extra, see plugdeck.extras) each extension's commands need: checked before a
# command starts, so that nothing is half done without it. `add` is `plugdeck plugins add NAME`.
NEEDS = {("kb", "group"): "knowledge", ("mcp", "group"): "mcp", ("serve", "group"): "server",
         ("openapi", "add"): "openapi", ("mcp", "add"): "mcp", ("sql", "add"): "sql", ("store", "group"): "store"}


def _needing(extra: str, what: str, command):
    """`command`, checking first that the extra is installed."""
    import functools

    @functools.wraps(command)
    def checked(*args, **kwargs):
        from ..extras import MissingExtra, require

        try:
            require(extra, what)
        except MissingExtra as exc:
            raise CliError(str(exc)) from None
        return command(*args, **kwargs)

    return checked


def _guard_group(group: typer.Typer, extra: str, what: str) -> None:
    for info in group.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        info.callback = _needing(extra, f"plugdeck {what} {name}", info.callback)
    if group.registered_callback is not None and group.registered_callback.callback is not None:
        callback = group.registered_callback
        callback.callback = _needing(extra, f"plugdeck {what}", callback.callback)
    for sub in group.registered_groups:
        _guard_group(sub.typer_instance, extra, f"{what} {sub.name}")


def _register_extensions() -> None:
    import importlib
    import importlib.util

    for name in EXTENSIONS:
        if importlib.util.find_spec(f"plugdeck.cli.{name}") is None:
            continue
        module = importlib.import_module(f"plugdeck.cli.{name}")
        if hasattr(module, "group"):
            if (name, "group") in NEEDS:
                _guard_group(module.group, NEEDS[name, "group"], name)
            app.add_typer(module.group, name=name)
        if hasattr(module, "add"):
            add = module.add
            if (name, "add") in NEEDS:
                add = _needing(NEEDS[name, "add"], f"plugdeck plugins add {name}", add)
            plugins_add_app.command(name)(add)
        for command in getattr(module, "plugins_commands", {}).items():  # e.g. plugins diff / approve
            plugins_app.command(command[0])(command[1])
        for command in getattr(module, "runs_commands", {}).items():  # e.g. runs replay
            runs_app.command(command[0])(command[1])
        for command in getattr(module, "app_commands", {}).items():  # e.g. plugdeck install
            app.command(command[0])(command[1])


def _builtin_command_names() -> set[str]:
    names = {info.name or info.callback.__name__.replace("_", "-") for info in app.registered_commands}
    return names | {info.name for info in app.registered_groups}


def _add_installed_commands(argv: list[str]) -> None:
    """Commands that packages add through the `plugdeck.commands` entry-point group. Read only when the
    command line may name one (help, no command, a name that is not built in), so that `plugdeck ask`
    imports no extension. A built-in keeps its name; one that fails to load is named and skipped."""
    builtin = _builtin_command_names()
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    if first in builtin:
        return
    from .. import extensions

    for extension, value in extensions.loaded(extensions.COMMANDS):
        problem = None
        if extension.name in builtin:
            problem = f"{extension.name!r} is a built-in command"
        elif isinstance(value, typer.Typer):
            app.add_typer(value, name=extension.name)
        elif callable(value):
            app.command(extension.name)(value)
        else:
            problem = f"it is a {type(value).__name__}, not a typer.Typer or a function"
        if problem:
            extensions.fail(extension, ValueError(problem))
    for problem in extensions.problems(extensions.COMMANDS):
        print(f"warning: {problem}", file=sys.stderr)


class CliError(UserError):
    """An error the user can fix, raised by a command; printed as one line."""


class Cancelled(UserError):
    """Ctrl-C stopped a run: it was recorded as cancelled (run_id None: before it started)."""

    def __init__(self, run_id: str | None, recorded: bool):
        super().__init__(run_id)
        self.run_id, self.recorded = run_id, recorded

    def message(self) -> str:
        if self.run_id is None:
            return "cancelled"
        if not self.recorded:
            return f"cancelled: run {self.run_id} was stopped"
        return f"cancelled: run {self.run_id} was stopped and recorded as cancelled (plugdeck runs show {self.run_id})"


# ---- shared options -------------------------------------------------------------------------

ModelOpt = typer.Option(None, "--model", "-m", help="Model profile, or model name at --base-url. Default: rules (offline).")
BaseUrlOpt = typer.Option(None, "--base-url", help="Any OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")
PluginOpt = typer.Option(None, "--plugin", "-p", help="Use only these plugins (repeatable). Default: all installed.")
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")
MaxStepsOpt = typer.Option(None, "--max-steps", help="Most model calls in one run.")
DeadlineOpt = typer.Option(None, "--deadline", help="Seconds one run may take in all.")
NoStoreOpt = typer.Option(False, "--no-store", help="Do not record the run in the run store.")
PolicyOpt = typer.Option(None, "--policy", help="A policy file (default: \\[policy] in plugdeck.toml).")
KbOpt = typer.Option(None, "--kb", help="Answer from this knowledge base (repeatable); see plugdeck kb.")
GroundedOpt = typer.Option(None, "--grounded/--no-grounded",
                           help="Answers must be supported by the cited passages (default: on when only --kb is used).")
PlannerOpt = typer.Option(None, "--planner", help="loop (one model call per step), plan (plan the calls at once) or auto.")
TemperatureOpt = typer.Option(None, "--temperature", help="Sampling temperature for the model (over the profile's).")
MaxTokensOpt = typer.Option(None, "--max-tokens", help="Most tokens the model may write per turn.")
ModelOptionOpt = typer.Option(None, "--option", "-o", metavar="KEY VALUE",  # joined as KEY=VALUE by main()
                              help="A model setting (repeatable): temperature, top_p, max_tokens, seed, stop, "
                                   "tool_choice, extra_body; VALUE is JSON or text, e.g. -o seed 7 -o extra_body "
                                   "'{\"chat_template_kwargs\": {\"enable_thinking\": false}}'.")
YesOpt = typer.Option(False, "--yes", "-y", help="Approve actions that need confirmation without asking (scripts).")
SystemOpt = typer.Option(None, "--system", "-s", help="A system prompt for this run, added to plugdeck's own.")
ContinueOpt = typer.Option(False, "--continue", "-c", help="Continue the latest conversation.")
CidOpt = typer.Option(None, "--cid", help="Continue the conversation with this id (see: plugdeck runs).")


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"plugdeck {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),  # read in main()
    version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                 callback=_print_version, is_eager=True),
) -> None:
    """plugdeck: answer questions by letting a model call plugins (offline by default)."""


def _config(**flags: Any):
    from ..config import load_config

    return load_config(flags)


def _load_plugins(names: list[str] | None):
    """Installed (entry points) and added (plugins add) plugins, by name if given."""
    from ..assemble import load_plugins

    err = _consoles()[1]
    return load_plugins(_config(), names, warn=lambda message: err.print(f"[yellow]warning:[/] {message}"))


def _run(coroutine):
    """asyncio.run, except that after Ctrl-C (Cancelled) nothing waits for the threads of its default
    executor: one may be busy for many seconds more (loading the embedding model) and cannot be stopped."""
    import asyncio  # not at module level: `plugdeck --help` should not pay for it
    from concurrent.futures import ThreadPoolExecutor

    class Threads(ThreadPoolExecutor):
        abandoned = False

        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            super().shutdown(wait=wait and not self.abandoned, cancel_futures=cancel_futures)

    threads = Threads()
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(threads)
        try:
            return runner.run(coroutine)
        except Cancelled:
            threads.abandoned = True
            raise


def _consoles():
    from .render import consoles

    return consoles()


def _policy(path: str | None, plugins):
    from ..assemble import policy_for

    return policy_for(path, plugins)


def _model_options(temperature: float | None, max_tokens: int | None, option: list[str] | None) -> dict[str, Any] | None:
    """The model settings the flags give (`-o KEY VALUE`, then --temperature and --max-tokens), checked."""
    from ..config import ConfigError, check_model_settings, parse_model_option

    options = {}
    for pair in option or []:
        key, equals, value = pair.partition("=")
        if not equals:
            raise ConfigError(f"-o {key} needs a value: -o KEY VALUE, such as -o temperature 0.2")
        options[key] = parse_model_option(value)
    options.update({k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens)) if v is not None})
    return check_model_settings(options, "model setting") or None


def _build_agent(model, base_url, plugins, max_steps, deadline, no_store, policy_path=None, yes=False, planner=None,
                 kb=None, grounded=None, options=None):
    from ..assemble import AgentSetup, build_agent
    from ..ops.runstore import RunStore
    from .confirm import terminal_confirmer

    config = _config(max_steps=max_steps, deadline=deadline, planner=planner)
    err = _consoles()[1]
    setup = AgentSetup(model=model, base_url=base_url, plugins=plugins, kb=kb, grounded=grounded,
                       policy_path=policy_path, options=options)
    store = None if no_store else RunStore(config.run_store)
    agent = build_agent(config, setup, confirm=terminal_confirmer(err, yes), sinks=[store.record] if store else [],
                        warn=lambda message: err.print(f"[yellow]warning:[/] {message}"))
    return agent, store


# ---- ask / chat -----------------------------------------------------------------------------


@app.command(epilog=EXIT_CODES)
def ask(
    question: Optional[str] = typer.Argument(None, help="The question; text piped in goes before it."),
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    plugin: Optional[list[str]] = PluginOpt,
    as_json: bool = JsonOpt,
    max_steps: Optional[int] = MaxStepsOpt,
    deadline: Optional[float] = DeadlineOpt,
    no_store: bool = NoStoreOpt,
    policy: Optional[str] = PolicyOpt,
    yes: bool = YesOpt,
    planner: Optional[str] = PlannerOpt,
    kb: Optional[list[str]] = KbOpt,
    grounded: Optional[bool] = GroundedOpt,
    temperature: Optional[float] = TemperatureOpt,
    max_tokens: Optional[int] = MaxTokensOpt,
    option: Optional[list[str]] = ModelOptionOpt,
    system: Optional[str] = SystemOpt,
    continue_: bool = ContinueOpt,
    cid: Optional[str] = CidOpt,
) -> None:
    """Answer one question, showing each step (tool calls with arguments and results)."""
    question = _piped_question(question)
    cid, history = _continued(continue_, cid)
    agent, store = _build_agent(model, base_url, plugin, max_steps, deadline, no_store, policy, yes, planner, kb,
                                grounded, _model_options(temperature, max_tokens, option))

    async def answer():
        try:
            return await _show_run(agent, question, history, as_json, recorded=store is not None,
                                   conversation_id=cid, instructions=system)
        finally:
            await agent.aclose()

    try:
        run = _run(answer())
    finally:
        if store:
            store.close()
    from .render import exit_status

    raise typer.Exit(exit_status(run))


@app.command()
def chat(
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    plugin: Optional[list[str]] = PluginOpt,
    max_steps: Optional[int] = MaxStepsOpt,
    deadline: Optional[float] = DeadlineOpt,
    no_store: bool = NoStoreOpt,
    policy: Optional[str] = PolicyOpt,
    yes: bool = YesOpt,
    planner: Optional[str] = PlannerOpt,
    kb: Optional[list[str]] = KbOpt,
    grounded: Optional[bool] = GroundedOpt,
    temperature: Optional[float] = TemperatureOpt,
    max_tokens: Optional[int] = MaxTokensOpt,
    option: Optional[list[str]] = ModelOptionOpt,
    system: Optional[str] = SystemOpt,
    continue_: bool = ContinueOpt,
    cid: Optional[str] = CidOpt,
) -> None:
    """Chat interactively; the conversation so far goes with each question. /exit or Ctrl-D ends."""
    cid, history = _continued(continue_, cid)
    agent, store = _build_agent(model, base_url, plugin, max_steps, deadline, no_store, policy, yes, planner, kb,
                                grounded, _model_options(temperature, max_tokens, option))
    _, err = _consoles()
    err.print(f"[dim]chatting with {agent.model.name} · {len(agent.tools)} tool(s) · /exit to leave[/]")

    async def session() -> None:
        # One event loop for the whole chat, so plugin connections (MCP servers) stay open between turns.
        import asyncio

        from .confirm import read_line

        nonlocal cid, history
        try:
            while True:
                try:
                    line = (await read_line("you> ")).strip()
                except (EOFError, KeyboardInterrupt, asyncio.CancelledError):
                    err.print()
                    return  # Ctrl-C or Ctrl-D at the prompt ends the chat
                if line in ("/exit", "/quit"):
                    return
                if line:
                    run = await _show_run(agent, line, history, False, recorded=store is not None,
                                          conversation_id=cid, instructions=system)
                    cid, history = cid or run.id, run.messages  # one conversation for the whole chat
        finally:
            await agent.aclose()

    try:
        _run(session())
    finally:
        if store:
            store.close()


def _piped_question(question: str | None) -> str:
    """The question: text piped in, then the one given (as llm combines them), or either alone."""
    piped = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    text = " ".join(part for part in (piped, question) if part)
    if not text.strip():
        raise CliError('give a question: plugdeck ask "...", or pipe one in: cat question.txt | plugdeck ask')
    return text


def _continued(latest: bool, cid: str | None):
    """The conversation to carry on (`-c`: the latest of the command line's, `--cid`: that one): its id and
    the earlier turns as history, labelled with what they read. (None, None): a new conversation."""
    if not latest and not cid:
        return None, None
    from ..ops.conversation import history_of

    with _store() as store:
        cid = cid or store.latest_conversation()
        if cid is None:
            raise CliError('there is no conversation to continue yet: ask something first (plugdeck ask "...")')
        try:
            runs = store.conversation(cid)
        except KeyError as exc:
            raise CliError(exc.args[0]) from None
    history = history_of(runs)
    _consoles()[1].print(f"[dim]continuing conversation {runs[0]['conversation_id']} "
                         f"({len(history) // 2} earlier turn(s))[/]")
    return runs[0]["conversation_id"], history


async def _show_run(agent, question: str, history, as_json: bool, recorded: bool = True, **options):
    """Run one question, printing steps live (or JSON at the end); return the Run. `options`: Agent.run's
    conversation_id and instructions.

    Ctrl-C cancels the run: it is stopped, recorded as cancelled, and Cancelled is raised."""
    import asyncio

    from .render import LiveSteps

    out, err = _consoles()
    steps = LiveSteps(out, err)
    seen: list[str] = []  # the run's id, from its first event

    def note(event) -> None:
        if not seen:
            seen.append(event.run_id)

    try:
        run = await agent.run(question, history=history, sinks=[note] if as_json else [note, steps], **options)
    except asyncio.CancelledError:
        await _stop_the_run()
        steps.close()
        for sink in agent.sinks:  # traces: the process exits at once after this (see main)
            if callable(getattr(sink, "flush", None)):
                sink.flush(2.0)
        raise Cancelled(seen[0] if seen else None, recorded) from None
    if as_json:
        started = next((e for e in run.events if e.type == "run_started"), None)
        print(json.dumps({"run_id": run.id, "conversation_id": getattr(started, "conversation_id", None),
                          "status": run.status, "answer": run.answer, "error": run.error,
                          "events": [e.to_dict() for e in run.events]}, ensure_ascii=False, default=str, indent=2))
        return run
    steps.finish(run.events[-1])
    if agent.model.name == "rules":
        err.print("[dim]Answered offline by the built-in rules model. Connect an LLM with "
                  "--base-url http://HOST:PORT/v1 --model NAME (see: plugdeck models).[/]")
    return run


async def _stop_the_run() -> None:
    """After Ctrl-C: cancel the run's own task (and whatever it started) and let it record that it was
    cancelled, before plugins and the model's connections close under it."""
    import asyncio

    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


# ---- plugins / tools --------------------------------------------------------------------------


@plugins_app.callback()
def plugins_list(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """List installed plugins with every tool and its schema."""
    if ctx.invoked_subcommand:
        return
    plugins = _load_plugins(None)
    out, _ = _consoles()
    if as_json:
        print(json.dumps([{**p.manifest(), "sandboxed": _sandboxed(p)} for p in plugins], indent=2))
        return
    from rich.markup import escape

    for plugin in plugins:
        where = " [magenta]sandboxed[/]" if _sandboxed(plugin) else ""
        out.print(f"[bold]{plugin.name}[/] {plugin.version}{where} [dim]({plugin.effect}; {escape(plugin.source)})[/]")
        if plugin.description:
            out.print(f"  {escape(plugin.description)}")
        for t in plugin.tools:
            out.print(f"  [cyan]{t.qualified_name}[/] [dim]{t.effect}, timeout {t.timeout:g} s[/]  {escape(t.description)}")
            out.print(f"    parameters: {escape(json.dumps(t.parameters))}")


def _sandboxed(plugin: Any) -> bool:
    """Whether the plugin's code runs out of process, in the sandbox (plugins/sandbox: a SandboxRuntime)."""
    return getattr(plugin, "runtime", None) is not None


@plugins_app.command("new")
def plugins_new(
    name: str = typer.Argument(..., help="The plugin's name, e.g. weather"),
    directory: str = typer.Option(".", "--dir", help="Where to create the package folder."),
) -> None:
    """Create a plugin package: pyproject with the entry point, one example tool, a test."""
    from pathlib import Path

    from ..plugins.scaffold import scaffold

    try:
        folder = scaffold(name, Path(directory))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    _consoles()[1].print(f"created {folder}\nnext: cd {folder} && pip install -e \".[test]\" && python -m pytest "
                         f"&& plugdeck plugins")


@plugins_app.command("remove")
def plugins_remove(name: str = typer.Argument(..., help="A plugin added with plugdeck plugins add.")) -> None:
    """Remove a plugin that was added with `plugdeck plugins add`."""
    from ..plugins import registry

    home = _config().home
    entry = registry.configured(home).get(name) or {}
    try:
        registry.remove(home, name)
    except registry.RegistryError as exc:
        raise CliError(str(exc)) from None
    options = entry.get("options") or {}
    if options.get("oauth"):  # the login goes with the plugin: no tokens left in the keyring
        from ..plugins.mcp.oauth import forget

        forget(name, options["url"])
    _consoles()[1].print(f"removed plugin {name!r}")


@tools_app.command("call")
def tools_call(
    name: str = typer.Argument(..., help="PLUGIN.TOOL, e.g. calculator.calculate"),
    arguments: str = typer.Argument("{}", help="The arguments as one JSON object."),
    as_json: bool = JsonOpt,
    policy: Optional[str] = PolicyOpt,
    yes: bool = YesOpt,
) -> None:
    """Run one tool directly, through the same validation and policy as the agent, and print its result."""
    from ..models.toolcall_parsers import ArgumentsError, parse_arguments
    from ..tools import ToolError

    plugin_name, _, tool_name = name.partition(".")
    if not tool_name:
        raise CliError(f"give the tool as PLUGIN.TOOL (for example calculator.calculate), not {name!r}")
    plugins = _load_plugins(None)
    plugin = next((p for p in plugins if p.name == plugin_name), None)
    if plugin is None:
        raise CliError(f"no plugin named {plugin_name!r} is installed (see: plugdeck plugins)")
    try:
        tool = plugin.tool(tool_name)
        args, _ = parse_arguments(arguments)
        result = _run(_call_under_policy(tool, args, _policy(policy, plugins), yes))
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    except ArgumentsError as exc:
        raise CliError(f"{exc}") from None
    except ToolError as exc:
        raise CliError(f"{tool.qualified_name} failed ({exc.kind}): {exc.message}") from None
    if isinstance(result, str) and not as_json:
        print(result)
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))


async def _call_under_policy(tool, args, policy, yes: bool):
    """The agent's own admission chain for one call: validation, policy, confirmation, timeout."""
    from ..agent.executor import call_tool
    from ..tools import ToolError
    from .confirm import terminal_confirmer

    finished = await call_tool(tool, args, policy=policy, confirmer=terminal_confirmer(_consoles()[1], yes),
                               question=f"tools call {tool.qualified_name}", call_id="cli")
    if finished.error:
        raise ToolError(finished.error["message"], finished.error["kind"])
    return finished.result


# ---- runs -------------------------------------------------------------------------------------


def _store():
    from ..ops.runstore import RunStore, RunStoreError

    try:
        return RunStore(_config().run_store)
    except RunStoreError as exc:
        raise CliError(str(exc)) from None


@runs_app.callback()
def runs_list(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status (ok, error, waiting, ...)."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Only the runs of this conversation."),
    as_json: bool = JsonOpt,
) -> None:
    """List stored runs, newest first."""
    if ctx.invoked_subcommand:
        return
    with _store() as store:
        runs = store.list_runs(limit, status, conversation_id=cid)
    _print_runs(runs, as_json)


@runs_app.command("search")
def runs_search(
    text: str = typer.Argument(..., help="Words the question or the answer holds (all of them, any case)."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """Find stored runs by the words of their question or answer, newest first."""
    if not text.split():
        raise CliError("give the words to search for, e.g. plugdeck runs search invoice")
    with _store() as store:
        runs = store.search(text, limit)
    _print_runs(runs, as_json, none=f"no run has {text!r} in its question or answer")


def _print_runs(runs: list[dict[str, Any]], as_json: bool, none: str = "") -> None:
    if as_json:
        print(json.dumps(runs, indent=2, ensure_ascii=False))
        return
    from datetime import datetime

    from rich.table import Table

    from .render import ms

    table = Table(box=None)
    table.add_column("id", no_wrap=True)
    table.add_column("when", no_wrap=True)
    for column in ("conversation", "status", "model", "steps", "tools", "tokens", "cost", "time", "question"):
        table.add_column(column, justify="right" if column == "cost" else "left")
    for r in runs:
        when = datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M:%S")
        question = " ".join(r["question"].split())  # piped questions have lines: one row each
        question = question if len(question) <= 60 else question[:59] + "…"
        # A run that started its conversation is named by it: "new" reads better than its own id again.
        conversation = "new" if r["conversation_id"] in (None, r["id"]) else r["conversation_id"]
        table.add_row(r["id"], when, conversation, r["status"], r["model"], str(r["steps"]), str(r["tool_calls"]),
                      f"{r['prompt_tokens']}→{r['completion_tokens']}", _money(r["cost"]), ms(r["duration"]), question)
    out, _ = _consoles()
    out.print(table if runs else none or "no runs yet: try plugdeck ask \"What is 17.5% of 2,340, plus 12?\"")


def _cost_text(cost: float, unpriced: int, calls: int) -> str:
    """A cost that says so when some model calls had no known price (their share is missing, not 0)."""
    if unpriced and unpriced >= calls:
        return "price unknown"
    return f"{_money(cost)} + {unpriced} call(s) of unknown price" if unpriced else _money(cost)


def _money(amount: float | None) -> str:
    """Costs are in the currency of the model profiles' prices; small amounts keep their digits."""
    amount = amount or 0.0
    return f"{amount:.2f}" if amount >= 1 else f"{amount:.6f}"


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(..., help="A run id (a unique prefix is enough)."), as_json: bool = JsonOpt) -> None:
    """Show one run as a tree of its steps with timings."""
    with _store() as store:
        try:
            run = store.get_run(run_id)
        except KeyError as exc:
            raise CliError(exc.args[0]) from None
    if as_json:
        print(json.dumps(run, indent=2, ensure_ascii=False))
        return
    from .render import run_tree

    out, _ = _consoles()
    out.print(run_tree(run))
    out.print(f"conversation {run['conversation_id']} (plugdeck ask --cid {run['conversation_id']} carries it on)")
    calls = [e for e in run["events"] if e["type"] == "model_called" and not e.get("error")]
    unpriced = sum(1 for e in calls if e.get("priced") is False)
    if run["cost"] or unpriced:
        out.print(f"cost {_cost_text(run['cost'], unpriced, len(calls))}")


@runs_app.command("costs")
def runs_costs(
    by: str = typer.Option("day", "--by", help="Group by day (UTC), key (API key of the server) or model."),
    since: Optional[str] = typer.Option(None, "--since", help="Only from this day on (YYYY-MM-DD, UTC)."),
    as_json: bool = JsonOpt,
) -> None:
    """What the model calls cost: tokens x the model profile's prices, per day, API key or model."""
    from datetime import date

    if by not in ("day", "key", "model"):
        raise CliError(f"--by takes day, key or model, not {by!r}")
    try:
        start = date.fromisoformat(since) if since else None
    except ValueError:
        raise CliError(f"--since takes a day as YYYY-MM-DD, not {since!r}") from None
    with _store() as store:
        rows = store.costs(by, start)
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(box=None)
    for column in (by, "runs", "model calls", "tokens in", "cached", "tokens out", "reasoning", "cost"):
        table.add_column(column, justify="left" if column == by else "right")
    totals = {key: sum(r[key] for r in rows) for key in rows[0] if key != by} if rows else {}
    for label, row, style in [*((r[by] if r[by] is not None else "(none)", r, None) for r in rows),
                              *([("total", totals, "bold")] if len(rows) > 1 else [])]:
        mark = "~" if row["estimated_calls"] else ""  # some counts are estimates: the server sent no usage
        table.add_row(label, str(row["runs"]), str(row["model_calls"]), f"{mark}{row['prompt_tokens']}",
                      str(row["cached_tokens"]), f"{mark}{row['completion_tokens']}", str(row["reasoning_tokens"]),
                      _cost_text(row["cost"], row["unpriced_calls"], row["model_calls"]), style=style)
    out, _ = _consoles()
    out.print(table if rows else "no model calls recorded yet")
    if any(r["estimated_calls"] for r in rows):
        out.print("~ some token counts are estimates: the model server sent no usage")


@runs_app.command("pending")
def runs_pending(
    run_id: Optional[str] = typer.Argument(None, help="Only this run's actions."),
    as_json: bool = JsonOpt,
) -> None:
    """Actions that wait for a person's OK, with their exact arguments (kept across restarts)."""
    with _store() as store:
        actions = store.pending(run_id)
    if as_json:
        print(json.dumps(actions, indent=2, ensure_ascii=False))
        return
    from rich.markup import escape

    out, _ = _consoles()
    if not actions:
        out.print("no actions wait for a decision")
    for action in actions:
        out.print(f"[bold]{action['id']}[/] run {action['run_id']} · {escape(action['reason'])}")
        out.print(f"  {escape(action['summary'])}".replace("\n", "\n  "))


@runs_app.command("decide")
def runs_decide(
    run_id: str = typer.Argument(..., help="The waiting run."),
    action_id: str = typer.Argument(..., help="The action to decide (see plugdeck runs pending)."),
    approve: bool = typer.Option(..., "--approve/--reject", help="Approve the action, or reject it."),
    reason: str = typer.Option("", "--reason", help="Why (told to the model when rejecting)."),
    as_json: bool = JsonOpt,
) -> None:
    """Decide an action a run waits on, and carry the run on here: any process that shares the run store."""
    from ..agent.pause import RunNotWaiting
    from ..assemble import AgentSetup, build_agent
    from .render import exit_status

    config = _config()
    err = _consoles()[1]
    with _store() as store:
        checkpoint = store.checkpoint(run_id)
        if checkpoint is None:
            raise CliError(f"run {run_id} does not wait for a decision (no checkpoint in the run store)")
        if not checkpoint.get("setup"):
            raise CliError(f"run {run_id} cannot be carried on from the command line: its agent was made in code "
                           "(decide it there, with Agent.resume)")
        fields = {k: v for k, v in checkpoint["setup"].items() if k in AgentSetup.__dataclass_fields__}
        agent = build_agent(config, AgentSetup(**fields), confirm=None, sinks=[store.record],
                            warn=lambda message: err.print(f"[yellow]warning:[/] {message}"))

        async def go():
            try:
                return await agent.resume(run_id, {action_id: approve}, store=store, by="person (cli)",
                                          notes={action_id: reason})
            finally:
                await agent.aclose()

        try:
            run = _run(go())
        except (KeyError, RunNotWaiting) as exc:  # ActionNotPending is a KeyError too
            raise CliError(exc.args[0] if exc.args else str(exc)) from None
    if run is None:
        print(f"run {run_id} is being carried on by another process; the decision is recorded for it")
        return
    if as_json:
        print(json.dumps({"run_id": run.id, "status": run.status, "answer": run.answer, "error": run.error,
                          "pending": [a.to_dict() for a in run.waiting]}, ensure_ascii=False, default=str, indent=2))
    elif run.status == "waiting":
        print(f"run {run.id} waits for: " + ", ".join(a.id for a in run.waiting))
    else:
        print(run.answer if run.status == "ok" else f"{run.status}: {run.error}")
    raise typer.Exit(0 if run.status == "waiting" else exit_status(run))


# ---- models -----------------------------------------------------------------------------------


@models_app.callback()
def models_list(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Show the model profiles from the configuration."""
    if ctx.invoked_subcommand:
        return
    config = _config()
    rows = [{"name": "rules", "base_url": None, "model": "built-in, offline", "default": config.model == "rules"}]
    rows += [{**p.describe(), "default": config.model == p.name} for p in config.profiles.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out, _ = _consoles()
    for row in rows:
        mark = "*" if row["default"] else " "
        key = f"key from ${row['api_key_env']}" if row.get("api_key_env") else ""
        out.print(f"{mark} [bold]{row['name']}[/] {row['model']} {row['base_url'] or ''} [dim]{key}[/]")
    out.print(f"[dim]config files read: {', '.join(config.sources) or 'none'}; add profiles under \\[models.NAME] "
              "in plugdeck.toml[/]")


@models_app.command("check")
def models_check(
    url: str = typer.Argument(..., help="The endpoint's base URL, e.g. http://127.0.0.1:8000/v1"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model to try (default: the first listed)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable holding the API key."),
    as_json: bool = JsonOpt,
) -> None:
    """Probe an endpoint: reachable? which models? does it accept tools and streaming?"""
    import os

    from ..models.probe import check_endpoint

    key = os.environ.get(api_key_env) if api_key_env else os.environ.get("PLUGDECK_API_KEY")
    report = _run(check_endpoint(url, api_key=key, model=model))
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        out, _ = _consoles()

        def yes(v: Any) -> str:
            return {True: "[green]yes[/]", False: "[red]no[/]", None: "[dim]unknown[/]"}[v]

        out.print(f"{report['base_url']}: reachable {yes(report['reachable'])}")
        if report["models"]:
            out.print(f"  models: {', '.join(report['models'])}")
        out.print(f"  model tried: {report.get('model') or '-'} · tools {yes(report['tools'])} · "
                  f"streaming {yes(report['streaming'])}")
        if report.get("note"):
            out.print(f"  [yellow]note:[/] {report['note']}")
        if report.get("error"):
            out.print(f"  [red]problem:[/] {report['error']}")
    if not report["reachable"]:
        raise typer.Exit(1)


@models_app.command("probe")
def models_probe(
    target: str = typer.Argument(..., help="An endpoint's base URL (http://127.0.0.1:8000/v1) or a local model folder."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model to ask at the endpoint."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable holding the API key."),
    per_category: int = typer.Option(5, "--per-category", min=1, max=5, help="Cases per category (at most 5)."),
    write: Optional[str] = typer.Option(None, "--write", metavar="NAME",
                                        help="Add the recommended profile as [models.NAME] to ./plugdeck.toml."),
    as_json: bool = JsonOpt,
) -> None:
    """Run a tool-calling conformance set (a BFCL v3 sample): accuracy per category, the format calls came
    in, parse failures, latency, and the profile settings it recommends."""
    import os
    import re
    from pathlib import Path

    from ..models.probe import probe_model, profile_text

    key = os.environ.get(api_key_env) if api_key_env else os.environ.get("PLUGDECK_API_KEY")
    report = _run(probe_model(target, model=model, api_key=key, per_category=per_category))
    settings = report["recommended"]["settings"]
    if write:
        if report["local"]:
            raise UserError("--write adds an endpoint's profile; a local model is used with --model hf:PATH")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", write):
            raise UserError(f"--write takes a profile name of letters, digits, _ and -, not {write!r}")
        path = Path("plugdeck.toml")
        existing = path.read_text() if path.exists() else ""
        if re.search(rf"^\[models\.{re.escape(write)}\]", existing, re.M):
            raise UserError(f"{path} already has [models.{write}]; choose another name or edit it")
        path.write_text(existing + ("\n" if existing and not existing.endswith("\n") else "")
                        + ("\n" if existing else "") + profile_text(write, target, model, settings))
        report["written"] = str(path.resolve())
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        out, _ = _consoles()
        out.print(f"[bold]{target}[/] {model or ''}: {report['cases']} cases")
        for category, accuracy in report["accuracy"].items():
            out.print(f"  {category:<12} {accuracy:6.0%}")
        formats = ", ".join(f"{f} ({n})" for f, n in report["formats"].items()) or "none seen"
        latency = report["latency"]
        out.print(f"  tool-call format: {formats} · parse failures: {report['parse_failures']}")
        if latency:
            out.print(f"  latency: p50 {latency['p50']:.2f}s, max {latency['max']:.2f}s")
        for error in report["errors"][:3]:
            out.print(f"  [red]error:[/] {error}")
        out.print("  recommended: " + (", ".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) or "nothing to change"))
        for reason in report["recommended"]["reasons"]:
            out.print(f"    [dim]{reason}[/]")
        if report.get("written"):
            out.print(f"  written to {report['written']} as [models.{write}]")
    if report["errors"] and len(report["errors"]) == report["cases"]:
        raise typer.Exit(1)


_register_extensions()


def _joined_model_options(argv: list[str]) -> list[str]:
    """`-o KEY VALUE` as `-o KEY=VALUE`: typer has no repeatable option of two values (llm's habit)."""
    out, i = [], 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] in ("-o", "--option") and i + 2 < len(argv) and "=" not in argv[i + 1]:
            out.append(f"{argv[i + 1]}={argv[i + 2]}")
            i += 3
        else:
            i += 1
    return out


def main() -> None:
    debug = "--debug" in sys.argv
    if sys.argv[1:2] in (["ask"], ["chat"]):
        sys.argv[1:] = _joined_model_options(sys.argv[1:])
    try:
        _add_installed_commands(sys.argv[1:])
        app()
    except (Cancelled, KeyboardInterrupt) as exc:
        import os

        print(f"\n{exc.message() if isinstance(exc, Cancelled) else 'cancelled'}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # The run is stopped and its end recorded (the store was closed); a thread that cannot be stopped
        # (a model still loading) must not keep the person waiting, so do not wait for it to exit.
        os._exit(130)
    except ModuleNotFoundError as exc:  # met before any check named the extra (see plugdeck.extras)
        if debug:
            raise
        from ..extras import extra_of, install_hint

        print(f"error: this needs an optional part that is not installed ({exc}): "
              f"{install_hint(extra_of(exc.name or '') or 'all')}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        from ..redaction import redact

        known = isinstance(exc, UserError)  # written for the person; anything else is a bug of ours
        message = redact(str(exc) if known else f"{type(exc).__name__}: {exc}")  # no secret on the screen or in logs
        print(f"error: {message}" + ("" if known else " (run with --debug for the traceback)"), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
