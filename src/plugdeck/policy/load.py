"""Read a policy from TOML (`[policy]` in plugdeck.toml, or a file named by --policy).

    [policy]
    allow = ["calculator.*", "shop.*"]      # globs over plugin.tool; deny wins
    deny = ["shop.run_query"]
    confirm = ["pizzeria.place_order"]      # always ask a person
    confirm_writes = true                   # tools with effect "write" need a person's OK

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

Mistakes (unknown keys, wrong types, bad patterns, globs that match no tool) are refused when
the policy is loaded, with the line they are on.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

TOP_KEYS = {"allow": list, "deny": list, "confirm": list, "confirm_writes": bool, "budgets": dict, "answers": dict,
            "arguments": list}
BUDGET_KEYS = {"max_steps": int, "max_tool_calls": int, "max_tokens": int, "max_cost": (int, float),
               "max_seconds": (int, float)}
ANSWER_KEYS = {"grounded": bool, "numbers": str}
RULE_KEYS = {"tool": str, "path": str, "min": (int, float), "max": (int, float), "values": list, "pattern": str,
             "hosts": list, "action": str, "reason": str}
NUMBER_MODES = ("off", "flag", "refuse")


class PolicyError(ValueError):
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
    pattern: re.Pattern | None = None
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
    budgets: dict[str, float] = field(default_factory=dict)
    grounded: bool = False
    numbers: str = "off"
    arguments: list[ArgumentRule] = field(default_factory=list)
    source: str = "defaults"
    lines: dict[str, int] = field(default_factory=dict, repr=False)  # "allow[0]" -> line number

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.source}, line {line}" if line else self.source

    def validate_tools(self, names: list[str]) -> None:
        """Every glob must match a tool that exists: a typo must not silently allow or deny nothing."""
        problems = []
        for key in ("allow", "deny", "confirm"):
            for i, pattern in enumerate(getattr(self, key)):
                if not any(fnmatchcase(name, pattern) for name in names):
                    problems.append(f"{self.where(f'{key}[{i}]')}: {key} pattern {pattern!r} matches no tool")
        for rule in self.arguments:
            if not any(fnmatchcase(name, rule.tool) for name in names):
                problems.append(f"{self.source}, line {rule.line}: arguments rule names unknown tool {rule.tool!r}")
        if problems:
            known = ", ".join(sorted(names)) or "none"
            raise PolicyError("; ".join(problems) + f" (tools: {known})")


def load_policy(path: str | Path | None = None, *, project_file: Path | None = None) -> Policy:
    """The policy from an explicit file, else the [policy] table of plugdeck.toml, else defaults."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"policy file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        data = _parse(text, path)
        table = data.get("policy", data)  # a policy file may have a [policy] table or be one
        prefix = "policy" if "policy" in data else ""
        return policy_from(table, text, str(path), prefix)
    project_file = project_file or Path.cwd() / "plugdeck.toml"
    if project_file.is_file():
        text = project_file.read_text(encoding="utf-8")
        data = _parse(text, project_file)
        if "policy" in data:
            return policy_from(data["policy"], text, str(project_file), "policy")
    return Policy()


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: {exc}") from None


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
    budgets = table.get("budgets", {})
    if isinstance(budgets, dict):
        check("budgets", budgets, BUDGET_KEYS)
        for key, value in budgets.items():
            if key in BUDGET_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
                if value <= 0:
                    problems.append(f"{source}, line {locate('budgets', key)}: {key} must be more than 0")
                policy.budgets[key] = value
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


def _argument_rule(rule: Any, index: int, source: str, locate, check, problems: list[str]) -> ArgumentRule | None:
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
