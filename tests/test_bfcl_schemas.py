"""Every function doc in BFCL v3 converts to valid JSON Schema, and its ground-truth calls validate.

Data: ../shared/fixtures/bfcl/v3_core (Berkeley Function Calling Leaderboard, Apache-2.0).
"""

import json
from pathlib import Path

import jsonschema
import pytest

from plugdeck.tools import ToolError, Toolset, WIRE_NAME, tool_from_schema
from shared_fixtures import FIXTURES

BFCL = FIXTURES / "bfcl" / "v3_core"
# Ground-truth answers in BFCL v3 that contradict their own function doc (checked by hand):
# the test proves these, and only these, are rejected.
UPSTREAM_ERRORS = {
    "simple_307": "venue is documented as a string, the answer gives true",
    "simple_363": "the answer calls find_closest, the doc names restaurant_search.find_closest",
    "parallel_multiple_21": "x and y are arrays, the answer gives Python source text",
    "parallel_multiple_94": "elements are integers, the answer gives fruit names",
    "javascript_41": "the answer calls queue, the doc names queue_1",
}
SETS = ["simple", "multiple", "parallel", "parallel_multiple", "irrelevance", "java", "javascript"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load(name: str):
    entries = read_jsonl(BFCL / f"BFCL_v3_{name}.json")
    answers_path = BFCL / "possible_answer" / f"BFCL_v3_{name}.json"
    answers = {a["id"]: a["ground_truth"] for a in read_jsonl(answers_path)} if answers_path.exists() else {}
    return entries, answers


def pick(candidates):
    """One concrete value from BFCL's lists of acceptable values ('' means: may be left out)."""
    for value in candidates:
        if value == "":
            continue
        return concrete(value)
    return None


def concrete(value):
    if isinstance(value, dict):  # nested dicts list acceptable values per key too
        out = {}
        for key, options in value.items():
            chosen = pick(options) if isinstance(options, list) else concrete(options)
            if chosen is not None:
                out[key] = chosen
        return out
    if isinstance(value, list):
        return [concrete(v) for v in value]
    return value


@pytest.mark.parametrize("name", SETS)
def test_functions_convert_and_ground_truth_validates(name):
    entries, answers = load(name)
    functions = calls = 0
    rejected = {}
    for entry in entries:
        tools = {}
        for doc in entry["function"]:
            language = name if name in ("java", "javascript") else None
            t = tool_from_schema(doc["name"], doc.get("description", ""), doc["parameters"], lambda **kw: kw,
                                 language=language)
            jsonschema.Draft202012Validator.check_schema(t.parameters)
            tools[doc["name"]] = t
            functions += 1
        toolset = Toolset(list(tools.values()))
        assert all(WIRE_NAME.match(spec.name) for spec in toolset.specs)
        for call in answers.get(entry["id"], []):
            (fname, params), = call.items()
            arguments = {k: v for k, v in ((k, pick(opts)) for k, opts in params.items()) if v is not None}
            target = toolset.resolve(fname)
            try:
                if target is None:
                    raise ToolError(f"no tool {fname}")
                target.validate(arguments)
            except ToolError as exc:
                rejected[entry["id"]] = exc.message
                continue
            calls += 1
    assert rejected.keys() == {i for i in UPSTREAM_ERRORS if i.rsplit("_", 1)[0] == name}, rejected
    assert functions >= len(entries)
    if name != "irrelevance":
        assert calls >= len(entries) - len(rejected)


def test_a_wrong_call_is_rejected():
    entries, answers = load("simple")
    doc = entries[0]["function"][0]
    t = tool_from_schema(doc["name"], doc["description"], doc["parameters"], lambda **kw: kw)
    with pytest.raises(ToolError):
        t.validate({"base": "ten", "height": 5})
