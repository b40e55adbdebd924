"""Find and load plugdeck's extensions: what installed packages declare in these entry-point groups.

    plugdeck.plugins       NAME = a Plugin, a Tool, or a function returning one (tools for the agent)
    plugdeck.models        PREFIX = a function(name) -> Model; `--model PREFIX:NAME` asks it for NAME
    plugdeck.commands      NAME = a typer.Typer (a command group) or a function (one command): `plugdeck NAME`
    plugdeck.embedders     PREFIX = a function(name) -> Embedder; knowledge bases use it when the
                           embedding model is `PREFIX:NAME` and no endpoint is set
    plugdeck.rules_skills  NAME = a function() -> rules Skill, a skill of the offline `rules` model
    plugdeck.hooks         NAME = an object (a module, an instance, or a class to instantiate) with
                           `before_tool_call(call)` and/or `after_tool_call(call, result, error)`

plugdeck declares its own built-ins in the same groups (pyproject.toml), so they take no other path.
Only the declarations are read up front; an extension's module is imported when it is first asked
for, so `--model echo:x` imports the echo backend and nothing else, and `plugdeck ask` imports no
command module. An extension that fails to import is recorded with its package (`problems()`), logged
once, and skipped: it never stops plugdeck. The one exception fails closed: an installed tool-call hook
that cannot be loaded refuses every tool call, since it may be a guard. A name is kept by the first
package that declares it, plugdeck's own first; later claimants are skipped and recorded.
`plugdeck plugins extensions` lists them all. What was read is kept while sys.path stays the same
(`refresh()` forgets it, e.g. after a pip install into a running process).

Third-party plugins (plugdeck.plugins) are only declared here: their code runs in the sandbox
(plugdeck.sandbox). The other kinds run in plugdeck's process, as trusted as any installed package.

Plain entry points rather than pluggy: named entry points let us import one backend by its prefix
instead of every extension at start-up, hooks here may be async (pluggy's are not), and it needs no
dependency.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable

from .errors import UserError

__all__ = [
    "PLUGINS", "MODELS", "COMMANDS", "EMBEDDERS", "RULES_SKILLS", "HOOKS", "Extension", "Problem", "ExtensionError",
    "declared", "named", "load", "get", "required", "loaded", "problems", "refresh",
    "model_backend", "embedder_backend", "rules_skills",
    "ToolCallInfo", "before_tool_call", "after_tool_call", "register_hooks", "has_tool_hooks",
]

PLUGINS = "plugdeck.plugins"
MODELS = "plugdeck.models"
COMMANDS = "plugdeck.commands"
EMBEDDERS = "plugdeck.embedders"
RULES_SKILLS = "plugdeck.rules_skills"
HOOKS = "plugdeck.hooks"

OWN_PACKAGE = "plugdeck"
log = logging.getLogger(__name__)


class ExtensionError(UserError):
    """An extension the person asked for by name is declared but cannot be used."""


@dataclass(frozen=True)
class Extension:
    group: str
    name: str
    target: str  # "module:attribute", as declared
    package: str  # the distribution that declares it
    entry_point: Any  # the importlib.metadata.EntryPoint

    @property
    def builtin(self) -> bool:
        return self.package == OWN_PACKAGE

    def load(self) -> Any:
        """The declared object; raises what importing it raises (see `load()` for the forgiving way)."""
        return self.entry_point.load()


@dataclass(frozen=True)
class Problem:
    group: str
    name: str
    package: str
    message: str

    def __str__(self) -> str:
        return f"the {self.group} extension {self.name!r} from the package {self.package} was skipped: {self.message}"


_lock = threading.RLock()
_declared: dict[str, list[Extension]] = {}
_named: dict[str, dict[str, Extension]] = {}
_loaded: dict[tuple[str, str, str], Any] = {}  # (group, name, package) -> object
_failed: dict[tuple[str, str, str], Problem] = {}
_conflicts: dict[str, list[Problem]] = {}
_instances: dict[tuple[str, str], Any] = {}  # a hook class, instantiated once
_scanned_path: list[str] = []  # sys.path when the entry points were read


def declared(group: str) -> list[Extension]:
    """Every declaration in the group, plugdeck's own first, then by name; nothing is imported."""
    with _lock:
        if _scanned_path != sys.path:  # a folder added to (or taken from) sys.path may hold other packages
            _forget()
            _scan()
        return list(_declared.get(group, []))


def _scan() -> None:
    """Read every installed package's plugdeck.* entry points in one pass over the installed packages
    (a pass costs about 10 ms; one per group would cost that for each group a command uses)."""
    from importlib.metadata import distributions

    found: dict[str, list[Extension]] = {}
    packages: set[str] = set()
    for dist in distributions():
        points = [ep for ep in dist.entry_points if ep.group.startswith("plugdeck.")]
        if not points:
            continue
        package = dist.name or "an unknown package"
        if package in packages:
            continue  # the same package found again further down sys.path: the first one is what imports
        packages.add(package)
        for ep in points:
            found.setdefault(ep.group, []).append(Extension(ep.group, ep.name, ep.value, package, ep))
    _declared.update({group: sorted(items, key=lambda e: (not e.builtin, e.name, e.package))
                      for group, items in found.items()})
    _scanned_path[:] = sys.path


def named(group: str) -> dict[str, Extension]:
    """Name -> the extension that keeps it: the first declaration wins, plugdeck's own before any other."""
    with _lock:
        found = declared(group)  # first: it forgets what was kept when sys.path changed
        if group not in _named:
            kept: dict[str, Extension] = {}
            conflicts = []
            for extension in found:
                if extension.name in kept:
                    owner = kept[extension.name].package
                    conflicts.append(Problem(group, extension.name, extension.package,
                                             f"{extension.name!r} is already declared by {owner}"))
                    continue
                kept[extension.name] = extension
            _named[group], _conflicts[group] = kept, conflicts
            for problem in conflicts:
                log.warning("%s", problem)
        return dict(_named[group])


def load(extension: Extension) -> Any | None:
    """The extension's object, imported once; None (and a recorded problem) when it cannot be imported."""
    key = (extension.group, extension.name, extension.package)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if key in _failed:
            return None
        try:
            value = extension.load()
        except Exception as exc:  # a broken extension must never stop plugdeck
            problem = Problem(extension.group, extension.name, extension.package, f"{type(exc).__name__}: {exc}")
            _failed[key] = problem
            log.warning("%s", problem)
            return None
        _loaded[key] = value
        return value


def fail(extension: Extension, exc: BaseException) -> None:
    """Record that an extension which imported could not be used (its factory raised): it is skipped."""
    key = (extension.group, extension.name, extension.package)
    with _lock:
        if key not in _failed:
            _failed[key] = Problem(extension.group, extension.name, extension.package,
                                   f"{type(exc).__name__}: {exc}")
            log.warning("%s", _failed[key])


def get(group: str, name: str) -> Any | None:
    """The object declared under `name` in `group`, or None when none is declared or it failed to import."""
    extension = named(group).get(name)
    return load(extension) if extension is not None else None


def loaded(group: str) -> list[tuple[Extension, Any]]:
    """Every extension of the group that imports, in `declared` order, each name once."""
    return [(e, value) for e in named(group).values() if (value := load(e)) is not None]


def problems(group: str | None = None) -> list[Problem]:
    """What was skipped so far (failed imports, taken names), for a group or for all."""
    with _lock:
        found = [p for p in _failed.values() if group in (None, p.group)]
        return found + [p for g, ps in _conflicts.items() if group in (None, g) for p in ps]


def refresh() -> None:
    """Forget what was read and imported: after installing a package into a running process, and in tests."""
    with _lock:
        _forget()


def _forget() -> None:
    for cache in (_declared, _named, _loaded, _failed, _conflicts, _instances, _scanned_path):
        cache.clear()


# ---- the kinds ------------------------------------------------------------------------------------

def required(group: str, name: str) -> Any | None:
    """Like `get`, but a declared extension that failed to import raises ExtensionError naming its
    package, instead of looking as if nothing were declared."""
    value = get(group, name)
    if value is None:
        failed = [p for p in problems(group) if p.name == name]
        if failed:
            raise ExtensionError(str(failed[0]))
    return value


def model_backend(prefix: str) -> Callable[[str], Any] | None:
    """The function registered as `prefix` in plugdeck.models: it turns a model name into a Model."""
    return required(MODELS, prefix)


def embedder_backend(prefix: str) -> Callable[[str], Any] | None:
    """The function registered as `prefix` in plugdeck.embedders: it turns a model name into an Embedder."""
    return required(EMBEDDERS, prefix)


def rules_skills() -> list[Any]:
    """A skill from each plugdeck.rules_skills extension (each entry point is a function returning one,
    or the skill itself), in `declared` order. One whose function fails is recorded and skipped."""
    skills = []
    for extension, value in loaded(RULES_SKILLS):
        try:
            skills.append(value() if callable(value) else value)
        except Exception as exc:
            fail(extension, exc)
    return skills


# ---- tool-call hooks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolCallInfo:
    run_id: str
    call_id: str
    tool: str  # the qualified name, plugin.tool
    arguments: dict[str, Any]
    effect: str  # read | write | ... as the tool declares


_registered: list[Any] = []  # hooks registered in this process, in order


def register_hooks(obj: Any) -> Callable[[], None]:
    """Add a hook object in this process (after the installed ones); returns a function that removes it."""
    with _lock:
        _registered.append(obj)

    def unregister() -> None:
        with _lock:
            if any(h is obj for h in _registered):
                _registered.pop(next(i for i, h in enumerate(_registered) if h is obj))

    return unregister


def has_tool_hooks() -> bool:
    """Whether any tool-call hook is installed or registered (cheap: the admission chain asks per call)."""
    with _lock:
        return bool(_registered) or bool(declared(HOOKS))


def _hooks() -> list[tuple[str, Any]]:
    """(who, hook object): the installed hooks in `declared` order, then those registered in process."""
    found = []
    for extension, value in loaded(HOOKS):
        if isinstance(value, type):
            try:
                value = _instance(extension, value)
            except Exception as exc:
                fail(extension, exc)
                continue
        found.append((f"the hook {extension.name!r} from {extension.package}", value))
    with _lock:
        found += [(f"the hook {getattr(h, '__name__', type(h).__name__)!r}", h) for h in _registered]
    return found


def _instance(extension: Extension, cls: type) -> Any:
    key = (extension.name, extension.package)
    with _lock:
        if key not in _instances:
            _instances[key] = cls()
        return _instances[key]


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    value = function(*args)
    return await value if inspect.isawaitable(value) else value


async def before_tool_call(call: ToolCallInfo) -> None:
    """Ask every hook, in order, before a tool runs. A hook refuses the call by raising ToolError (the
    model reads its message). A hook that fails any other way refuses it too, and so does an installed
    hook that could not be loaded: a hook that guards tools must not let calls through because it broke."""
    from .tools import ToolError

    hooks = _hooks()
    broken = [p for p in problems(HOOKS) if p.name in named(HOOKS) and named(HOOKS)[p.name].package == p.package]
    if broken:  # a guard that did not load must not mean "no guard": fail closed, and say why
        raise ToolError(f"not run: {broken[0]}", "hook_failed")
    for who, hook in hooks:
        function = getattr(hook, "before_tool_call", None)
        if function is None:
            continue
        try:
            await _call(function, call)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"not run: {who} failed ({type(exc).__name__}: {exc})", "hook_failed") from exc


async def after_tool_call(call: ToolCallInfo, result: Any, error: dict[str, Any] | None) -> Any:
    """Show every hook, in order, what the tool returned; each may return a replacement result (None
    keeps it). An error result is shown to the hooks but passed through unchanged. A hook that fails
    turns the result into a ToolError, so a hook that redacts never lets the unredacted result out."""
    from .tools import ToolError

    for who, hook in _hooks():
        function = getattr(hook, "after_tool_call", None)
        if function is None:
            continue
        try:
            replaced = await _call(function, call, result, error)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"the result was withheld: {who} failed ({type(exc).__name__}: {exc})",
                            "hook_failed") from exc
        if error is None and replaced is not None:
            result = replaced
    return result
