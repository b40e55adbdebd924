"""Tools: one callable the model may use, with a JSON Schema and strict argument validation.

`@tool` turns a typed Python function (sync or async) into a Tool; `tool_from_schema` wraps a
schema from elsewhere (an OpenAPI operation, an MCP tool, a function doc). Either way, the agent
validates every call before running it and turns every failure into a `ToolError` that goes back
to the model as data, never up the stack.

A function whose first parameter is annotated `RunContext[...]` is handed the run's context there
(the caller's `deps`, the run id, its usage so far): the model never sees that parameter.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import hashlib
import inspect
import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Collection, Generic, Iterable, Literal, TypeVar, get_origin, overload

from .errors import PlugdeckError
from .schemas import json_schema_validator, normalize_schema, object_schema
from .usage import Usage

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

Effect = Literal["read", "write"]
# A tool's egress when its author did not say where its arguments go (see Tool.egress).
UNDECLARED = "undeclared"
WIRE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# The id of the approved action being executed, for tools that pass it on as an idempotency key.
_action_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("plugdeck_action_id", default=None)


def idempotency_key() -> str | None:
    """Inside a tool: the approved action's id (the same on any retry of that action), else None."""
    return _action_id.get()


DepsT = TypeVar("DepsT")


@dataclass(frozen=True, kw_only=True)
class RunContext(Generic[DepsT]):
    """What a tool may know of the run that calls it; the model never sees it.

    Declare it as a tool function's first parameter, `ctx: RunContext[MyDeps]`, and `ctx.deps` is what
    the caller passed to `agent.run(question, deps=...)`. Called outside a run (`Tool.call`,
    `plugdeck tools call`), a tool gets a context with deps None and an empty run id.
    """

    deps: DepsT
    run_id: str
    usage: Usage  # the run's counters so far (model calls, tool calls, tokens, cost)
    tool_name: str = ""  # the qualified name of the tool being called (plugin.tool)
    call_id: str | None = None  # the model's id for this call
    action_id: str | None = None  # the approved action's id, the same on any retry (an idempotency key)


def _outside_a_run() -> RunContext[None]:
    return RunContext(deps=None, run_id="", usage=Usage())


class ToolError(PlugdeckError):
    """A failure the model should see and may correct: bad arguments, unknown tool, tool crash."""

    def __init__(self, message: str, kind: str = "tool_error"):
        super().__init__(message)
        self.message = message
        self.kind = kind

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclass(eq=False)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Any]
    effect: Effect = "read"
    timeout: float = 30.0
    plugin: str | None = None
    capabilities: tuple[str, ...] = ()  # what kind of job it does ("arithmetic"), for routers
    # Output that comes from outside (documents, web pages, HTTP/MCP/SQL results) is data that may
    # carry injected instructions; the run records that it entered the conversation (provenance).
    untrusted: bool = False
    # Where a call's arguments go (see plugdeck.policy.flows): an OpenAPI server's origin, a database, an MCP
    # server; None: nowhere outside plugdeck's process and this machine (the calculator, a local search).
    # Left UNDECLARED, a tool whose output comes from outside (untrusted) or from a third-party package is
    # taken to reach anywhere; any other tool to stay on this machine (see `destination`).
    egress: str | None = UNDECLARED
    private: bool = False  # its output is the user's private data (documents, database rows)
    origin: str = "local"  # local (made in code) | builtin | added (plugins add) | third-party
    summary: Callable[[dict[str, Any]], str] | None = field(default=None, repr=False)  # for confirmations
    check: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda args: args, repr=False)
    takes_context: bool = False  # func's first parameter is a RunContext, passed by position

    def __post_init__(self) -> None:
        if self.effect not in ("read", "write"):
            raise ValueError(f"tool {self.name!r}: effect must be 'read' or 'write', not {self.effect!r}")
        self.is_async = inspect.iscoroutinefunction(self.func)

    @property
    def destination(self) -> str | None:
        """Where its arguments go, for the data-flow rule: the declared egress; undeclared, anywhere
        (UNDECLARED) for a tool that reads from outside or comes from a third-party package, else None."""
        if self.egress != UNDECLARED:
            return self.egress
        return UNDECLARED if self.untrusted or self.origin == "third-party" else None

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}.{self.name}" if self.plugin else self.name

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Check arguments against the schema; return what the function is called with."""
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments must be a JSON object, got {type(arguments).__name__}", "invalid_arguments")
        return self.check(arguments)

    async def call(self, arguments: Any, context: RunContext[Any] | None = None) -> Any:
        """Validate, then run: what `plugdeck tools call` does."""
        return await self.invoke(self.validate(arguments), context=context)

    async def invoke(self, kwargs: dict[str, Any], action_id: str | None = None,
                     context: RunContext[Any] | None = None) -> Any:
        """Run with already validated arguments. `action_id`: the approved action being run (see
        idempotency_key); `context`: the run's, handed to a tool that takes one, with this tool's name
        and the action id filled in."""
        args: tuple[Any, ...] = ()
        if self.takes_context:
            context = context if context is not None else _outside_a_run()
            args = (replace(context, tool_name=self.qualified_name, action_id=action_id),)
        token = _action_id.set(action_id)
        try:
            if self.is_async:
                return await self.func(*args, **kwargs)
            # Blocking work never runs on the event loop.
            return await asyncio.to_thread(self.func, *args, **kwargs)
        finally:
            _action_id.reset(token)

    def in_plugin(self, plugin: str, origin: str | None = None) -> Tool:
        return replace(self, plugin=plugin, origin=origin or self.origin)


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    func: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    effect: Effect = "read",
    timeout: float = 30.0,
    capabilities: tuple[str, ...] = (),
    untrusted: bool = False,
    private: bool = False,
    egress: str | None = UNDECLARED,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    effect: Effect = "read",
    timeout: float = 30.0,
    capabilities: tuple[str, ...] = (),
    untrusted: bool = False,
    private: bool = False,
    egress: str | None = UNDECLARED,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a Tool from a typed function. Usable as `@tool` or `@tool(effect="write")`.

    `untrusted`: its output comes from outside and may carry instructions; `private`: its output is the
    user's private data; `egress`: where its arguments are sent (None: nowhere outside this machine; left
    undeclared, a tool with untrusted output is taken to reach anywhere). A first parameter annotated
    `RunContext[...]` receives the run's context and is left out of the schema the model sees."""

    def build(fn: Callable[..., Any]) -> Tool:
        summary, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
        params = list(inspect.signature(fn, eval_str=True).parameters.values())
        takes_context = bool(params) and _is_run_context(params[0].annotation)
        model = _arguments_model(fn, params[1:] if takes_context else params, arg_docs)
        return Tool(
            name=name or fn.__name__,
            description=description or summary,
            parameters=_clean_schema(model.model_json_schema()),
            func=fn,
            effect=effect,
            timeout=timeout,
            capabilities=tuple(capabilities),
            untrusted=untrusted,
            private=private,
            egress=egress,
            check=_pydantic_check(model),
            takes_context=takes_context,
        )

    return build(func) if func is not None else build


def tool_from_schema(
    name: str,
    description: str,
    parameters: dict[str, Any] | None,
    func: Callable[..., Any],
    *,
    language: str | None = None,
    **options: Any,
) -> Tool:
    """Wrap a function whose arguments are described by a (possibly loosely written) JSON Schema.

    `language` names the language of a foreign function doc (see `normalize_schema`).
    """
    schema = object_schema(normalize_schema(parameters or {}, language))
    problems = json_schema_validator(schema)

    def check(arguments: dict[str, Any]) -> dict[str, Any]:
        found = problems(arguments)
        if found:
            raise ToolError("invalid arguments: " + "; ".join(found), "invalid_arguments")
        return arguments

    return Tool(name=name, description=description, parameters=schema, func=func, check=check, **options)


# ---- typed functions -> pydantic models -------------------------------------------------------


def _is_run_context(annotation: Any) -> bool:
    return annotation is RunContext or get_origin(annotation) is RunContext


def _arguments_model(fn: Callable[..., Any], params: list[inspect.Parameter],
                     arg_docs: dict[str, str]) -> type[BaseModel]:
    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {fn.__name__!r}: *args and **kwargs cannot be described to a model")
        if _is_run_context(param.annotation):
            raise TypeError(f"tool {fn.__name__!r}: the RunContext parameter {param.name!r} must come first")
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(f"tool {fn.__name__!r}: parameter {param.name!r} is positional-only; the model "
                            f"passes arguments by name")
        annotation = Any if param.annotation is param.empty else param.annotation
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, Field(default, description=arg_docs.get(param.name)))
    config = ConfigDict(strict=True, extra="forbid")
    model: type[BaseModel] = create_model(f"{fn.__name__}_arguments", __config__=config, **fields)
    return model


def _pydantic_check(model: type[BaseModel]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from pydantic import ValidationError

    names = tuple(model.model_fields)

    def check(arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            # JSON mode: strict about types (no false -> 0), yet dates may arrive as strings.
            parsed = model.model_validate_json(json.dumps(arguments))
        except ValidationError as exc:
            raise ToolError("invalid arguments: " + _describe(exc), "invalid_arguments") from None
        return {name: getattr(parsed, name) for name in names}

    return check


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles: they cost tokens and tell the model nothing."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    for definition in schema.get("$defs", {}).values():
        _clean_schema(definition)
    return schema


# ---- docstrings ---------------------------------------------------------------------------------

def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and per-argument descriptions.

    docstring-parser reads Google (`Args:`), reST/Sphinx (`:param name:`), Epydoc (`@param name:`)
    and NumPy (`Parameters` / `----------`, where `x, y : float` documents both).
    """
    from docstring_parser import ParseError, parse

    try:
        parsed = parse(doc)
    except ParseError:  # a malformed section: the text still describes the tool
        return " ".join(doc.split()), {}
    summary = " ".join(part for part in (parsed.short_description, parsed.long_description) if part)
    args: dict[str, str] = {}
    for param in parsed.params:
        for name in param.arg_name.split(","):
            name = name.strip().lstrip("*")
            if name:
                args[name] = " ".join((param.description or "").split())
    return " ".join(summary.split()), args


# ---- wire names ---------------------------------------------------------------------------------


def to_wire_name(name: str, taken: Collection[str] = frozenset()) -> str:
    """A name that satisfies ^[a-zA-Z0-9_-]{1,64}$; a short hash keeps it unique when needed."""
    wire = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]
    if wire and wire not in taken and (wire == name or len(name) <= 64):
        return wire
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]
    return f"{wire[:57] or 'tool'}_{digest}"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What a model is told about one tool."""

    name: str  # the wire name
    description: str
    parameters: dict[str, Any]
    capabilities: tuple[str, ...] = ()

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class Toolset:
    """The tools of one agent, with a reversible map between wire names and tools."""

    def __init__(self, tools: list[Tool]):
        bare_counts: dict[str, int] = {}
        for t in tools:
            bare_counts[t.name] = bare_counts.get(t.name, 0) + 1
        # A name two plugins share is shown qualified (alpha_send_email, beta_send_email), and no tool
        # may take such a name by being called that (R12): a bare name that equals another tool's
        # qualified wire name is qualified too, and qualified names are given out first.
        qualified = {to_wire_name(t.qualified_name) for t in tools if bare_counts[t.name] > 1}
        preferred = {id(t): t.name if bare_counts[t.name] == 1 and to_wire_name(t.name) not in qualified
                     else t.qualified_name for t in tools}
        self.tools = list(tools)
        self._by_wire: dict[str, Tool] = {}
        self._by_name: dict[str, Tool] = {}
        self.wire_name: dict[int, str] = {}
        for t in sorted(tools, key=lambda t: preferred[id(t)] == t.name):
            wire = to_wire_name(preferred[id(t)], self._by_wire.keys())
            self._by_wire[wire] = t
            self.wire_name[id(t)] = wire
        for t in tools:
            self._by_name.setdefault(t.qualified_name, t)
            if bare_counts[t.name] == 1:  # an echoed bare name resolves only when it is unambiguous
                self._by_name.setdefault(t.name, t)
        self.specs = [
            ToolSpec(self.wire_name[id(t)], t.description, t.parameters, t.capabilities) for t in tools
        ]

    def offering(self, tools: Iterable[Tool]) -> Toolset:
        """The same toolset offering the model only `tools` (with the wire names the whole set gave
        them), while a call still resolves to any of its tools, under the same policy."""
        chosen = {id(t) for t in tools}
        view = copy.copy(self)
        view.specs = [spec for t, spec in zip(self.tools, self.specs) if id(t) in chosen]
        return view

    def resolve(self, name: str) -> Tool | None:
        """Find a tool by wire name, or by its original name when a model echoes that instead."""
        return self._by_wire.get(name) or self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.tools)
