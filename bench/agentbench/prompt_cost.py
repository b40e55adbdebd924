"""What describing tools in full costs the plan prompt, in tokens (agentbench's tokenizer).

    python -m bench.agentbench.prompt_cost

For agentbench's own tools and two real OpenAPI specs (Swagger Petstore, Spotify; read from
../shared/fixtures), three ways to tell a model about the same tools: argument names and types
only (what the plan prompt said before issue 11), the plan prompt's tool text now (every schema
part: plugdeck.agent.tool_text), and the native tool schemas a tool-calling agent sends (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench._report import report

from . import tokenizer, tools

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "openapi"
SPECS = {"petstore (19 operations)": "swagger-petstore3/openapi.yaml",
         "spotify (97 operations)": "spotify-sonallux/fixed-spotify-open-api.yml"}


def names_and_types(specs) -> str:
    """The plan prompt's tool list before issue 11: `- name(arg: type, ...): description`."""
    lines = []
    for spec in specs:
        params = ", ".join(f"{name}: {prop.get('type', 'any')}" for name, prop in
                           spec.parameters.get("properties", {}).items())
        lines.append(f"- {spec.name}({params}): {spec.description}")
    return "\n".join(lines)


def toolsets() -> dict[str, list]:
    from plugdeck import tool_from_schema
    from plugdeck.tools import Toolset

    found = {"agentbench (6 tools)": Toolset([tool_from_schema(t.name, t.description, t.parameters,
                                                               tools.make_callable(t)) for t in tools.TOOLS]).specs}
    for label, path in SPECS.items():
        if not (FIXTURES / path).exists():
            continue
        from plugdeck.plugins.openapi import guard_for, load_source, prepare

        guard = guard_for({})
        spec, _ = load_source(str(FIXTURES / path), guard)
        plugin = prepare("fixture", {"base_url": "https://api.example.com/v1"}, spec=spec, guard=guard).plugin()
        found[label] = Toolset(plugin.tools).specs
    return found


def main() -> None:
    from plugdeck.agent.tool_text import describe_tools

    rows = []
    for label, specs in toolsets().items():
        before = tokenizer.count(names_and_types(specs))
        now = tokenizer.count(describe_tools(specs))
        native = tokenizer.count(json.dumps([spec.openai() for spec in specs]))
        rows.append({"tools": label, "names_and_types": before, "whole_schema_text": now, "added": now - before,
                     "added_per_tool": (now - before) / len(specs), "native_json": native,
                     "text_vs_native": now / native})
    report("agentbench-prompt-cost", rows, ["tools", "names_and_types", "whole_schema_text", "added",
                                            "added_per_tool", "native_json", "text_vs_native"])


if __name__ == "__main__":
    main()
