"""Read a policy from TOML (`[policy]` in plugdeck.toml, or a file named by --policy).

    [policy]
    allow = ["calculator.*", "shop.*"]      # globs over plugin.tool; deny wins
    deny = ["shop.run_query"]
    confirm = ["pizzeria.place_order"]      # always ask a person
    confirm_writes = true                   # tools with effect "write" need a person's OK
    flows = {"weather.*" = "allow"}         # the data-flow rule per tool: allow | confirm | deny
    spotlight = "off"                       # mark untrusted tool output: off | delimit | datamark | base64

    [policy.budgets]
    max_steps = 10
    max_tool_calls = 30
    max_tokens = 100000
    max_cost = 0.50                         # in the currency of the model profile's prices
    max_seconds = 300

    [policy.answers]
    grounded = false                        # answers must be supported by retrieved passages
    numbers = "flag"                        # off | flag | refuse: numbers not traced to the data

    [[policy.arguments]]
    tool = "pizzeria.place_order"
    path = "items[].quantity"               # where in the arguments; [] means every item
    max = 10                                # also: min, values, pattern, hosts
    action = "confirm"                      # deny (default) or confirm
    reason = "large orders need a person's OK"

Mistakes (unknown keys, wrong types, bad patterns) are refused when the policy is loaded, with the
line they are on. Globs are checked against the tools of the agent: one that names a plugin which is
not selected is inactive (one plugdeck.toml serves `ask -p calculator` and the full set alike), but
one that names a selected plugin and matches none of its tools is a typo and is refused.

The data-flow rule (`flows`) is explained in plugdeck.policy.flows, spotlighting in
plugdeck.policy.spotlight.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

from ..config import parse_toml
from ..errors import UserError
from ..usage import Limits
from .flows import FLOW_ACTIONS

TOP_KEYS = {"allow": list, "deny": list, "confirm": list, "confirm_writes": bool, "budgets": dict, "answers": dict,
            "arguments": list, "flows": dict, "spotlight": str}
SPOTLIGHT_MODES = ("off", "delimit", "datamark", "base64")
BUDGET_KEYS: dict[str, type | tuple[type, ...]] = {"max_steps": int, "max_tool_calls": int, "max_tokens": int, "max_cost": (int, float),
               "max_seconds": (int, float)}
ANSWER_KEYS = {"grounded": bool, "numbers": str}
RULE_KEYS = {"tool": str, "path": str, "min": (int, float), "max": (int, float), "values": list, "pattern": str,
             "hosts": list, "action": str, "reason": str}
NUMBER_MODES = ("off", "flag", "refuse")


class PolicyError(UserError, ValueError):
    pass


@dataclass
class ArgumentRule:
    tool: str
    path: str
    line: int
    action: str = "deny"
    reason: str = ""
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    pattern: re.Pattern[str] | None = None
    hosts: list[str] | None = None

    @property
    def name(self) -> str:
        return f"arguments rule for {self.tool} {self.path} (line {self.line})"


@dataclass
class Policy:
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    confirm: list[str] = field(default_factory=list)
    confirm_writes: bool = True
    limits: Limits = field(default_factory=Limits)  # [policy.budgets]; per agent and per run ones add to it
    grounded: bool = False
    numbers: str = "off"
    arguments: list[ArgumentRule] = field(default_factory=list)
    flows: dict[str, str] = field(default_factory=dict)  # tool glob -> allow | confirm | deny
    spotlight: str = "off"
    source: str = "defaults"
    lines: dict[str, int] = field(default_factory=dict, repr=False)  # "allow[0]" -> line number

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.source}, line {line}" if line else self.source

    def validate_tools(self, names: list[str]) -> list[str]:
        """Check the globs against the tools that exist; return notes on the inactive ones.

        A glob whose plugin part (before the first dot) matches no plugin present is inactive: the
        plugin is simply not selected. One that names a present plugin (or a tool without a plugin) but
        matches none of its tools is a typo, refused: it must not silently allow or deny nothing. So is
        a plugin name that is a near miss of a present one (`calculater.*` beside `calculator`)."""
        problems, inactive = [], []
        plugins = {name.split(".", 1)[0] for name in names}

        def judge(pattern: str, where: str, what: str) -> None:
            if any(fnmatchcase(name, pattern) for name in names):
                return
            plugin = pattern.split(".", 1)[0]
            near = difflib.get_close_matches(plugin, sorted(plugins), n=1, cutoff=0.75)
            if any(fnmatchcase(p, plugin) for p in plugins):
                problems.append(f"{where}: {what} {pattern!r} matches no tool")
            elif near and not any(c in plugin for c in "*?["):
                problems.append(f"{where}: {what} {pattern!r} matches no tool (did you mean plugin {near[0]!r}?)")
            else:
                inactive.append(f"{where}: {what} {pattern!r} is inactive: no plugin {plugin!r} is selected")

        for key in ("allow", "deny", "confirm"):
            for i, pattern in enumerate(getattr(self, key)):
                judge(pattern, self.where(f"{key}[{i}]"), f"{key} pattern")
        for pattern in self.flows:
            judge(pattern, self.where(f"flows[{pattern}]"), "flows pattern")
        for rule in self.arguments:
            judge(rule.tool, f"{self.source}, line {rule.line}", "arguments rule for tool")
        if problems:
            known = ", ".join(sorted(names)) or "none"
            raise PolicyError("; ".join(problems) + f" (tools: {known})")
        return inactive


def load_policy(path: str | Path | None = None, *, project_file: Path | None = None) -> Policy:
    """The policy from an explicit file, else the [policy] table of plugdeck.toml, else defaults."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"policy file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        data = parse_toml(text, path, error=PolicyError)
        table = data.get("policy", data)  # a policy file may have a [policy] table or be one
        prefix = "policy" if "policy" in data else ""
        return policy_from(table, text, str(path), prefix)
    project_file = project_file or Path.cwd() / "plugdeck.toml"
    if project_file.is_file():
        text = project_file.read_text(encoding="utf-8")
        data = parse_toml(text, project_file, error=PolicyError)
        if "policy" in data:
            return policy_from(data["policy"], text, str(project_file), "policy")
    return Policy()


def policy_from(table: dict[str, Any], text: str = "", source: str = "policy", prefix: str = "policy") -> Policy:
    locate = _Locator(text, prefix)
    problems: list[str] = []

    def check(section: str, data: dict[str, Any], known: dict[str, Any], index: int | None = None) -> None:
        for key, value in data.items():
            line = locate(section, key, index)
            if key not in known:
                problems.append(f"{source}, line {line}: unknown setting {key!r} (known: {', '.join(known)})")
            elif not isinstance(value, known[key]) or (isinstance(value, bool) and known[key] in (int, (int, float))):
                expected = known[key].__name__ if isinstance(known[key], type) else "number"
                problems.append(f"{source}, line {line}: {key} must be a {expected}, not {value!r}")

    check("", table, TOP_KEYS)
    policy = Policy(source=source)
    for key in ("allow", "deny", "confirm"):
        value = table.get(key, [])
        if isinstance(value, list):
            for i, pattern in enumerate(value):
                policy.lines[f"{key}[{i}]"] = locate("", key)
                if not isinstance(pattern, str):
                    problems.append(f"{source}, line {locate('', key)}: {key} entries must be strings, not {pattern!r}")
            setattr(policy, key, [p for p in value if isinstance(p, str)])
    if isinstance(table.get("confirm_writes"), bool):
        policy.confirm_writes = table["confirm_writes"]
    flows = table.get("flows", {})
    if isinstance(flows, dict):
        for pattern, action in flows.items():
            line = locate("flows", f'"{pattern}"') or locate("", "flows")
            policy.lines[f"flows[{pattern}]"] = line
            if action not in FLOW_ACTIONS:
                problems.append(f"{source}, line {line}: flows {pattern!r} must be one of {', '.join(FLOW_ACTIONS)}, "
                                f"not {action!r}")
            else:
                policy.flows[pattern] = action
    spotlight = table.get("spotlight", "off")
    if isinstance(spotlight, str):
        if spotlight not in SPOTLIGHT_MODES:
            problems.append(f"{source}, line {locate('', 'spotlight')}: spotlight must be one of "
                            f"{', '.join(SPOTLIGHT_MODES)}, not {spotlight!r}")
        else:
            policy.spotlight = spotlight
    budgets = table.get("budgets", {})
    if isinstance(budgets, dict):
        check("budgets", budgets, BUDGET_KEYS)
        limits: dict[str, float] = {}
        for key, value in budgets.items():
            if key in BUDGET_KEYS and _is_number(value, BUDGET_KEYS[key]):
                if value <= 0:
                    problems.append(f"{source}, line {locate('budgets', key)}: {key} must be more than 0")
                else:
                    limits[key] = value
        policy.limits = Limits.from_dict(limits)
    answers = table.get("answers", {})
    if isinstance(answers, dict):
        check("answers", answers, ANSWER_KEYS)
        policy.grounded = answers.get("grounded", False) is True
        numbers = answers.get("numbers", "off")
        if numbers not in NUMBER_MODES:
            problems.append(f"{source}, line {locate('answers', 'numbers')}: numbers must be one of "
                            f"{', '.join(NUMBER_MODES)}, not {numbers!r}")
        else:
            policy.numbers = numbers
    rules = table.get("arguments", [])
    if isinstance(rules, list):
        for i, rule in enumerate(rules):
            parsed = _argument_rule(rule, i, source, locate, check, problems)
            if parsed:
                policy.arguments.append(parsed)
    if problems:
        raise PolicyError("; ".join(problems))
    return policy


def _is_number(value: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)  # True is an int to Python, not to a policy


def _argument_rule(rule: Any, index: int, source: str, locate: _Locator, check: Callable[..., None],
                   problems: list[str]) -> ArgumentRule | None:
    line = locate.table("arguments", index)
    if not isinstance(rule, dict):
        problems.append(f"{source}, line {line}: each [[policy.arguments]] entry must be a table")
        return None
    before = len(problems)
    check("arguments", rule, RULE_KEYS, index)
    for required in ("tool", "path"):
        if required not in rule:
            problems.append(f"{source}, line {line}: an arguments rule needs {required!r}")
    if not {"min", "max", "values", "pattern", "hosts"} & rule.keys():
        problems.append(f"{source}, line {line}: an arguments rule needs a constraint: min, max, values, pattern or hosts")
    action = rule.get("action", "deny")
    if action not in ("deny", "confirm"):
        problems.append(f"{source}, line {locate('arguments', 'action', index)}: action must be deny or confirm")
    pattern = None
    if isinstance(rule.get("pattern"), str):
        try:
            pattern = re.compile(rule["pattern"])
        except re.error as exc:
            problems.append(f"{source}, line {locate('arguments', 'pattern', index)}: bad pattern "
                            f"{rule['pattern']!r}: {exc}")
    if len(problems) > before:
        return None
    return ArgumentRule(tool=rule["tool"], path=rule["path"], line=line, action=action, reason=rule.get("reason", ""),
                        min=rule.get("min"), max=rule.get("max"), values=rule.get("values"), pattern=pattern,
                        hosts=rule.get("hosts"))


class _Locator:
    """Find the line of a key in the TOML text (tomllib keeps no positions)."""

    def __init__(self, text: str, prefix: str):
        self.lines = text.splitlines()
        self.prefix = prefix

    def _header(self, section: str) -> str:
        return ".".join(p for p in (self.prefix, section) if p)

    def table(self, section: str, index: int) -> int:
        header = self._header(section)
        seen = -1
        for number, line in enumerate(self.lines, 1):
            if re.fullmatch(rf"\s*\[\[\s*{re.escape(header)}\s*\]\]\s*(#.*)?", line):
                seen += 1
                if seen == index:
                    return number
        return 0

    def __call__(self, section: str, key: str, index: int | None = None) -> int:
        start = self.table(section, index) if index is not None else 0
        header = self._header(section)
        current = None if start else ""
        for number, line in enumerate(self.lines, 1):
            if number < start:
                continue
            heading = re.fullmatch(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?", line)
            if heading:
                if current is not None and number > start and start:
                    return start  # the key is not in this entry's lines: point at the entry
                current = heading.group(1)
                continue
            inline = re.match(rf"\s*(?:{re.escape(section)}\.)?{re.escape(key)}\s*=", line)
            if inline and (current == header or (not header and current in ("", None))):
                return number
        return start
