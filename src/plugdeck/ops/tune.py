"""`plugdeck tune`: a LoRA fine-tune of a local transformers model on an OpenAI-format export.

Each record is written out with the model's own chat template, tools included (as `hf:` models are
prompted, models/local_hf.py), and the loss counts only the assistant's tokens: the answers and tool
calls, each with the end of its turn, never the system prompt, the question or the tool results.
Those tokens are found by rendering the conversation up to each assistant turn: the text the turn
adds to the prompt is the assistant's. A template that rewrites earlier turns (so a shorter
conversation is not the start of a longer one) cannot be split this way and is refused.

Only the LoRA weights (peft, all linear layers) train; the adapter is saved to the output folder,
and `--model 'hf:PATH?adapter=DIR'` loads it. The device is chosen as it is found (CUDA, then Apple's
MPS, then the CPU): the same command runs on a laptop and on a GPU.
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .export_formats import openai_problems

REPORT_FILE = "plugdeck_tune.json"


class TuneError(UserError, ValueError):
    """The fine-tune cannot start or go on; the message says what to change."""


@dataclass
class TuneSettings:
    epochs: int = 3
    lr: float = 2e-4
    rank: int = 8  # LoRA rank
    alpha: int = 16
    max_length: int = 2048  # tokens per example; longer ones are cut
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    seed: int = 0

    def check(self) -> None:
        if self.epochs < 1 or self.lr <= 0 or self.rank < 1 or self.max_length < 16:
            raise TuneError("--epochs and --rank must be at least 1, --lr above 0, --max-length at least 16")


@dataclass
class TuneReport:
    model: str
    adapter: str
    examples: int
    device: str
    settings: dict[str, Any]
    losses: list[float] = field(default_factory=list)  # one per optimizer step
    epoch_losses: list[float] = field(default_factory=list)  # the mean of each epoch


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """The records of an `openai` export, each checked as the export checks it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TuneError(f"cannot read the export {path}: {exc}") from None
    examples, bad = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            bad.append(f"line {number}: not JSON ({exc})")
            continue
        problems = openai_problems(record)
        if problems:
            bad.append(f"line {number}: {'; '.join(problems)}")
        else:
            examples.append(record)
    if bad:
        raise TuneError(f"{path} is not an openai export (plugdeck runs export --format openai):\n  "
                        + "\n  ".join(bad[:20]))
    if not examples:
        raise TuneError(f"{path} holds no examples")
    return examples


def encode(tokenizer: Any, record: dict[str, Any], max_length: int) -> tuple[list[int], list[int]]:
    """(token ids, labels): labels are -100 except on the assistant's own tokens."""
    from ..models.local_hf import template_messages

    messages = template_messages(record["messages"])
    tools = record.get("tools") or None

    def render(upto: int, prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages[:upto], tools=tools, tokenize=False,
                                             add_generation_prompt=prompt)

    full = render(len(messages), False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = render(i, True), render(i + 1, False)
        if not (full.startswith(before) and full.startswith(through) and len(through) > len(before)):
            raise TuneError("this model's chat template rewrites earlier turns as a conversation grows, so the "
                            "assistant's tokens cannot be told apart; fine-tune it with a trainer that knows "
                            "its template")
        spans.append((len(before), len(through)))
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"][:max_length]
    labels = [token if any(start < end_ and end > start_ for start_, end_ in spans) else -100
              for token, (start, end) in zip(ids, encoded["offset_mapping"])]
    return ids, labels


def pick_device(wanted: str = "auto") -> str:
    import torch

    if wanted != "auto":
        return wanted
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def tune(model_path: str | Path, export_path: str | Path, out: str | Path, settings: TuneSettings | None = None,
         on_step: Callable[[int, int, float], None] | None = None) -> TuneReport:
    """Train a LoRA adapter on the export; save it (and a report) in `out`. `on_step(epoch, step, loss)`."""
    from ..extras import require

    settings = settings or TuneSettings()
    settings.check()
    require("tune", "plugdeck tune")
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never reach for a hub
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_path, out = Path(model_path).expanduser(), Path(out).expanduser()
    examples = load_examples(export_path)
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise TuneError(f"could not load the model in {model_path}: {exc}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise TuneError(f"the tokenizer in {model_path} has no chat template; use a chat (instruct) model")
    batches = [encode(tokenizer, record, settings.max_length) for record in examples]
    batches = [b for b in batches if any(label != -100 for label in b[1])]
    if not batches:
        raise TuneError(f"no example keeps an assistant token within --max-length {settings.max_length}")
    lora = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x: not the user's business
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(model, lora).to(device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr)
    report = TuneReport(model=str(model_path), adapter=str(out), examples=len(batches), device=device,
                        settings=asdict(settings))
    order = random.Random(settings.seed)
    for epoch in range(1, settings.epochs + 1):
        order.shuffle(batches)
        epoch_losses = []
        for step, (ids, labels) in enumerate(batches, 1):
            inputs = torch.tensor([ids], device=device)
            loss = model(input_ids=inputs, labels=torch.tensor([labels], device=device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_losses.append(float(loss.detach()))
            if on_step:
                on_step(epoch, step, epoch_losses[-1])
        report.losses += epoch_losses
        report.epoch_losses.append(sum(epoch_losses) / len(epoch_losses))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    (out / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return report
