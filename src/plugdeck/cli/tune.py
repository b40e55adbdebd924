"""`plugdeck tune EXPORT --model hf:PATH`: a LoRA fine-tune on runs exported with `runs export --format openai`.

    plugdeck runs export --format openai --out train.jsonl
    plugdeck tune train.jsonl --model hf:/models/qwen2.5-0.5b-instruct --out qwen-tuned --epochs 3
    plugdeck ask --model 'hf:/models/qwen2.5-0.5b-instruct?adapter=qwen-tuned' "..."
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer


def tune_command(
    export: Annotated[str, typer.Argument(help="An openai export (plugdeck runs export --format openai).")],
    model: Annotated[str, typer.Option("--model", "-m", help="The local model to adapt: hf:PATH (a Hugging Face "
                                       "model folder).")],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for the adapter (default: "
                                               "MODEL-lora beside the export).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the examples.")] = 3,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 2e-4,
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank.")] = 8,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per example; longer ones are cut.")] = 2048,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA, MPS, else CPU), cpu, cuda or mps.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed for the adapter's start and the examples' order.")] = 0,
) -> None:
    """Fine-tune a local model's LoRA adapter on exported runs (loss on the assistant's turns only)."""
    from pathlib import Path

    from ..ops.tune import TuneError, TuneSettings, tune

    path, _, options = model.removeprefix("hf:").partition("?")
    if not model.startswith("hf:") or options:
        raise TuneError(f"--model must be a local model as hf:PATH (without settings), not {model!r}")
    target = Path(out) if out else Path(export).resolve().parent / f"{Path(path).name}-lora"
    settings = TuneSettings(epochs=epochs, lr=lr, rank=rank, max_length=max_length, device=device, seed=seed)

    def progress(epoch: int, step: int, loss: float) -> None:
        print(f"epoch {epoch} step {step}: loss {loss:.4f}", file=sys.stderr)

    report = tune(path, export, target, settings, on_step=progress)
    first, last = report.epoch_losses[0], report.epoch_losses[-1]
    print(f"trained on {report.examples} example(s) on {report.device}: mean loss {first:.4f} in the first epoch, "
          f"{last:.4f} in the last")
    print(f"adapter saved to {target}; use it with --model 'hf:{path}?adapter={target}'")


app_commands = {"tune": tune_command}
