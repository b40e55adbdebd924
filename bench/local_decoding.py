"""Constrained decoding's cost and effect on the local runtime (hf backend), on a tiny random model.

For each mode (no constraint; llguidance grammar from the tools' schemas) it runs N sampled
generations with `tool_choice = "required"` and reports: time per generated token and per generation,
the share of generations whose every tool call is schema-valid, and (constrained) the grammar's compile
time and its own cost per token (mask, masking, consuming; the figure to read as "added time").
The model is 2 layers, hidden 64, so the forward pass is cheap and the grammar's share is shown at
its largest; on a real model the added time per token is the same and the share far smaller.

    python bench/local_decoding.py [--smoke] [--generations N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))

from _report import report  # noqa: E402
from tiny_hf import build_tiny_model  # noqa: E402

TOOLS_SCHEMAS = {
    "pick": {"type": "object", "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 999},
        "loud": {"type": "boolean"}, "label": {"type": "string", "maxLength": 8}},
        "required": ["colour", "count"], "additionalProperties": False},
    "note": {"type": "object", "properties": {"text": {"type": "string", "maxLength": 12}},
             "required": ["text"], "additionalProperties": False},
}


async def run_mode(path: Path, constrain: bool, generations: int, max_new_tokens: int) -> dict:
    import jsonschema

    from plugdeck.models.base import ModelResponse
    from plugdeck.models.local_constraint import TokenConstraint, tool_call_grammar
    from plugdeck.models.local_hf import HFModel
    from plugdeck.tools import ToolSpec

    specs = [ToolSpec(name, name, schema) for name, schema in TOOLS_SCHEMAS.items()]
    model = HFModel(path, constrain=constrain, tool_choice="required", temperature=1.0, seed=11,
                    max_new_tokens=max_new_tokens)
    _, tokenizer, _ = model.load()
    compile_ms = step_ms = None
    if constrain:
        TokenConstraint(tokenizer, tool_call_grammar(specs, required=True))  # llguidance's tokenizer, built once
        started = time.perf_counter()
        TokenConstraint(tokenizer, tool_call_grammar(specs, required=True))
        compile_ms = (time.perf_counter() - started) * 1000
        step_ms = grammar_step_ms(tokenizer, tool_call_grammar(specs, required=True), generations)
    tokens = valid = 0
    started = time.perf_counter()
    for _ in range(generations):
        async for item in model.stream([{"role": "user", "content": "Pick something."}], specs):
            if isinstance(item, ModelResponse):
                tokens += item.completion_tokens
                ok = bool(item.tool_calls)
                for call in item.tool_calls:
                    try:
                        ok = ok and not call.error and call.name in TOOLS_SCHEMAS
                        jsonschema.validate(call.arguments, TOOLS_SCHEMAS.get(call.name, {}))
                    except jsonschema.ValidationError:
                        ok = False
                valid += ok
    elapsed = time.perf_counter() - started
    return {"mode": "llguidance" if constrain else "none", "generations": generations, "tokens": tokens,
            "ms_per_token": round(elapsed * 1000 / max(tokens, 1), 3), "valid_rate": round(valid / generations, 3),
            "ms_per_generation": round(elapsed * 1000 / generations, 2),
            "grammar_compile_ms": round(compile_ms, 2) if compile_ms is not None else None,
            "grammar_ms_per_token": round(step_ms, 4) if step_ms is not None else None}


def grammar_step_ms(tokenizer, grammar: str, walks: int) -> float:
    """The grammar's own cost per token, as the backend pays it (mask, masking the logits, consuming the
    token), on random walks through the grammar: end-to-end figures on a 2-core machine shared with other
    work are dominated by the forward pass and its noise."""
    import random

    import torch

    from plugdeck.models.local_constraint import TokenConstraint

    chooser, steps, spent = random.Random(5), 0, 0.0
    logits = torch.zeros(len(tokenizer))
    for _ in range(walks):
        constraint = TokenConstraint(tokenizer, grammar)
        for _ in range(120):
            started = time.perf_counter()
            allowed = torch.from_numpy(constraint.allowed())
            masked = torch.where(allowed[: len(logits)], logits, torch.full_like(logits, float("-inf")))
            choices = torch.nonzero(masked > float("-inf")).flatten().tolist()
            spent += time.perf_counter() - started
            token = chooser.choice(choices)
            started = time.perf_counter()
            constraint.consume(token)
            spent += time.perf_counter() - started
            steps += 1
            if constraint.finished or constraint.matcher.is_accepting():
                break
    return spent * 1000 / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="20 generations per mode")
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=120)
    args = parser.parse_args()
    generations = 20 if args.smoke else args.generations
    with tempfile.TemporaryDirectory() as folder:
        path = build_tiny_model(Path(folder) / "tiny")
        rows = [asyncio.run(run_mode(path, constrain, generations, args.max_new_tokens)) for constrain in (False, True)]
    added = rows[1]["grammar_ms_per_token"]
    report("local_decoding", rows, ["mode", "generations", "tokens", "ms_per_token", "ms_per_generation", "valid_rate",
                                    "grammar_compile_ms", "grammar_ms_per_token"], {"added_ms_per_token": added})
    print(f"constrained decoding added {added} ms per token", file=sys.stderr)


if __name__ == "__main__":
    main()
