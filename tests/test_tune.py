"""`plugdeck tune`: a LoRA fine-tune, on CPU, of a tiny random-weight chat model (tests/models/tiny_hf.py)
on an export of real stored runs: the loss goes down, only the assistant's tokens are learned, and
the adapter loads through `hf:PATH?adapter=DIR` and changes what the model says."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

pytest.importorskip("peft")
pytest.importorskip("transformers")

from cli_env import cli_environment  # noqa: E402
from models.tiny_hf import build_tiny_model  # noqa: E402

from plugdeck import Agent, RunStore, ScriptedModel, tool  # noqa: E402
from plugdeck.models.base import ModelResponse  # noqa: E402
from plugdeck.models.local_hf import LocalModelError, hf_backend  # noqa: E402
from plugdeck.ops import export  # noqa: E402
from plugdeck.ops.tune import TuneError, TuneSettings, encode, load_examples, tune  # noqa: E402


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Runs recorded by an agent, exported as openai JSONL, and a LoRA adapter trained on them."""
    tmp = tmp_path_factory.mktemp("tune")
    model_dir = build_tiny_model(tmp / "tiny")
    with RunStore(str(tmp / "runs.db")) as store:
        for a, b in ((1, 2), (20, 22)):
            turns = [{"tool_calls": [{"name": "add", "arguments": {"a": a, "b": b}}]}, f"The answer is {a + b}."]
            Agent(ScriptedModel(turns), tools=[add], sinks=[store.record]).run_sync(f"What is {a} plus {b}?")
        store.flush()
        records, _ = export.build_records(store, "openai", export.Selection(), export.redactor())
    train = tmp / "train.jsonl"
    train.write_text("".join(json.dumps(r["record"]) + "\n" for r in records))
    report = tune(model_dir, train, tmp / "adapter", TuneSettings(epochs=5, lr=1e-2, device="cpu"))
    return model_dir, train, tmp / "adapter", report


def test_the_loss_goes_down_and_the_adapter_is_saved(trained):
    _, _, adapter, report = trained
    assert report.examples == 2 and report.device == "cpu" and len(report.losses) == 10
    # A random 64-wide model's tied embeddings bound how sure it can get: the loss falls by some tenths.
    assert report.epoch_losses[-1] < report.epoch_losses[0] - 0.3, report.epoch_losses
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "plugdeck_tune.json").read_text())["epoch_losses"] == report.epoch_losses


def test_only_the_assistant_turns_are_learned(trained):
    model_dir, train, _, _ = trained
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids, labels = encode(tokenizer, load_examples(train)[0], 4096)
    learned = tokenizer.decode([t for t, label in zip(ids, labels) if label != -100])
    assert '"name": "add"' in learned and "The answer is 3." in learned and learned.count("<|im_end|>") == 2
    assert "What is 1 plus 2?" not in learned and "<tool_response>" not in learned and "# Tools" not in learned


def test_the_adapter_loads_and_changes_the_outputs(trained):
    model_dir, train, adapter, _ = trained
    import torch

    base = hf_backend(f"{model_dir}?constrain=off&max_new_tokens=24")
    tuned = hf_backend(f"{model_dir}?constrain=off&max_new_tokens=24&adapter={adapter}")
    example = load_examples(train)[0]
    base_model, tokenizer, _ = base.load()
    ids, labels = encode(tokenizer, example, 4096)
    with torch.no_grad():
        before = base_model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
        after = tuned.load()[0](input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
    assert after < before - 0.3  # the merged adapter is the trained one, not a no-op

    async def answer(model):
        reply = None
        async for item in model.stream(example["messages"][:2], []):
            reply = item
        assert isinstance(reply, ModelResponse)
        return reply.text

    assert asyncio.run(answer(base)) != asyncio.run(answer(tuned))
    with pytest.raises(LocalModelError, match="not a LoRA adapter folder"):
        hf_backend(f"{model_dir}?adapter={train.parent}")


def test_bad_exports_and_models_are_clear_errors(trained, tmp_path):
    model_dir, train, _, _ = trained
    broken = tmp_path / "broken.jsonl"
    broken.write_text(train.read_text().splitlines()[0] + "\n" + '{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(TuneError, match="line 2: no assistant message to learn from"):
        load_examples(broken)
    env = cli_environment(tmp_path)
    done = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", "tune", str(train), "--model", str(model_dir)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--model must be a local model as hf:PATH" in done.stderr
