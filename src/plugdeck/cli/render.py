"""How runs look in a terminal: live steps while a run streams, and a tree of a stored run."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

PREVIEW = 160  # characters of arguments/results shown inline


def consoles() -> tuple[Console, Console]:
    """stdout for answers and data, stderr for steps; plain text (no wrapping) when piped."""
    out = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    for console in (out, err):
        if not console.is_terminal:
            console.width = 400  # a pipe has no width: never crop or wrap tables and trees
    return out, err


def preview(value: Any, limit: int = PREVIEW) -> str:
    if isinstance(value, dict) and set(value) >= {"result", "exact"}:  # calculator results read better bare
        text = str(value["result"]) + (f" (≈ {value['decimal']})" if value.get("decimal") else "")
    elif isinstance(value, dict) and isinstance(value.get("passages"), list):  # knowledge search results
        text = f"{len(value['passages'])} passage(s): " + "; ".join(
            f"{p.get('citation', '')} {p.get('source', '')}" for p in value["passages"] if isinstance(p, dict))
    else:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


class LiveSteps:
    """Prints each step of a streaming run as it happens."""

    def __init__(self, out: Console, err: Console):
        self.out, self.err = out, err
        self.text_open = False
        self.thinking = False  # a reasoning model's thinking is being shown, dimmed, on stderr
        self.drafting = False  # the answer is being written, to be shown once its checks are done
        self.streamed: dict[int, str] = {}  # answer text shown as it streamed, by step
        self.last_step: int | None = None
        self.errors_shown: set[str] = set()  # so that the run's error is not printed a second time

    def __call__(self, event: Any) -> None:
        kind = event.type
        if kind == "text_delta":
            if event.channel == "draft" and not self.drafting:
                self.drafting = True
                self.err.print("[dim]checking the answer…[/]")
            if event.channel == "reasoning":  # never the answer: dimmed, beside the steps
                if self.text_open:
                    self._end_text()
                self.err.print(event.text, end="", style="dim", markup=False)
                self.thinking = True
                return
            self._end_thinking()
            if event.channel != "text":
                return  # a plan is shown as its tool calls; a draft only once it has been checked
            self.out.print(event.text, end="", markup=False)
            self.text_open = True
            self.streamed[event.step] = self.streamed.get(event.step, "") + event.text
            self.last_step = event.step
            return
        self._end_text()
        if kind == "answer":
            if self.streamed.get(self.last_step) != event.text:
                self.out.print(event.text, markup=False)  # the checked answer (a draft was never shown)
        elif kind == "tool_started":
            self.err.print(f"[cyan]→ {escape(event.tool)}[/] {escape(preview(event.arguments))}")
        elif kind == "tool_finished":
            if event.error:
                self.err.print(f"[red]← error ({escape(event.error['kind'])}):[/] {escape(preview(event.error['message']))}"
                               f" [dim]{ms(event.latency)}[/]")
            else:
                self.err.print(f"[green]←[/] {escape(preview(event.result))} [dim]{ms(event.latency)}[/]")
        elif kind == "model_called" and event.error:
            self.err.print(f"[red]model error:[/] {escape(event.error)}")
            self.errors_shown.add(event.error)
        elif kind == "planner":
            self.err.print(f"[yellow]planner:[/] {escape(event.message)}")

    def _end_thinking(self) -> None:
        if self.thinking:
            self.err.print()
            self.thinking = False

    def _end_text(self) -> None:
        self._end_thinking()
        if self.text_open:
            self.out.print()
            self.text_open = False

    def close(self) -> None:
        """The run stopped early (Ctrl-C): end a line of streamed text."""
        self._end_text()

    def finish(self, event: Any) -> None:
        self._end_text()
        tokens = f" · tokens {event.prompt_tokens}→{event.completion_tokens}" if event.prompt_tokens else ""
        status = "" if event.status == "ok" else f"[red]{event.status}[/] · "
        self.err.print(f"[dim]{status}run {event.run_id} · {event.model_calls} model call(s) · "
                       f"{event.tool_calls} tool call(s) · {ms(event.duration)}{tokens}[/]")
        if event.error and event.error not in self.errors_shown:
            self.err.print(f"[red]error:[/] {escape(event.error)}")


# The answer checks' verdicts that replace the answer with a refusal (see policy.numbers, knowledge.grounding).
_REFUSING_CHECKS = {"numbers": lambda d: d.get("mode") == "refuse",
                    "grounding": lambda d: d.get("decision") in ("no_passages", "unsupported")}


def exit_status(run: Any) -> int:
    """What `plugdeck ask` exits with (see EXIT_CODES in cli.main): 0 answered, 1 failed, 3 no answer,
    4 an action did not get a person's OK, 130 cancelled."""
    if run.status == "cancelled":
        return 130
    if run.status != "ok":
        return 1
    events = run.events
    if any(e.type == "confirmation_answered" and not e.approved for e in events) or any(
            e.type == "policy_decision" and e.decision == "deny" for e in events):
        return 4
    answered = [e for e in events if e.type == "model_called" and not e.error and not e.tool_calls]
    if answered and answered[-1].finish_reason in ("refusal", "content_filter"):
        return 3
    if any(e.type == "answer_checked" and not e.passed and _REFUSING_CHECKS.get(e.check, lambda d: False)(e.details)
           for e in events):
        return 3
    return 0


def token_counts(call: dict[str, Any]) -> str:
    """A model call's tokens: "tokens 1200→80 (cached 1024, reasoning 40)", "~" before estimated counts
    (the server sent none), and "price unknown" when no price is known for the model."""
    mark = "~" if call.get("estimated") else ""
    text = f"tokens {mark}{call['prompt_tokens']}→{mark}{call['completion_tokens']}"
    details = [f"{name} {call[key]}" for name, key in (("cached", "cached_tokens"), ("reasoning", "reasoning_tokens"))
               if call.get(key)]
    if details:
        text += f" ({', '.join(details)})"
    if call.get("estimated"):
        text += " estimated"
    if call.get("priced") is False and not call.get("error"):
        text += " · price unknown"
    return text


def run_tree(run: dict[str, Any]) -> Tree:
    """A stored run as a tree: each model call with the tool calls it asked for, and timings."""
    status_style = "green" if run["status"] == "ok" else "red"
    mark = "~" if any(e["type"] == "model_called" and e.get("estimated") for e in run["events"]) else ""
    tree = Tree(f"[bold]run {run['id']}[/] [{status_style}]{run['status']}[/] · {escape(run['model'])} · "
                f"{ms(run['duration'])} · tokens {mark}{run['prompt_tokens']}→{mark}{run['completion_tokens']}")
    tree.add(f"[bold]question[/] {escape(run['question'])}")
    steps: dict[int, Tree] = {}
    parsed: dict[str, int] = {}  # tool calls by how they were read: native, recovered, failed
    for event in run["events"]:
        kind = event["type"]
        at = f"[dim]@{ms(event['t'])}[/]"
        if kind == "model_called":
            label = (f"step {event['step']} · model {escape(event['model'])} · {ms(event['latency'])} "
                     f"(first token {ms(event['ttft'])}) · {token_counts(event)} {at}")
            node = steps[event["step"]] = tree.add(label)
            if event.get("error"):
                node.add(f"[red]error[/] {escape(event['error'])}")
            elif event.get("text") and event.get("tool_calls"):
                node.add(f"[dim]said[/] {escape(preview(event['text']))}")
        elif kind == "reasoning":
            steps.get(event["step"], tree).add(f"[dim]thought {escape(preview(event['text']))}[/]")
        elif kind == "tool_calls_parsed":
            parsed[event["outcome"]] = parsed.get(event["outcome"], 0) + event["calls"]
            if event["outcome"] != "native":
                note = f"[yellow]{event['outcome']}[/]" if event["outcome"] == "failed" else event["outcome"]
                errors = "".join(f"; {escape(e)}" for e in event.get("errors") or [])
                steps.get(event["step"], tree).add(f"[dim]tool calls read from text ({escape(event['format'])}):[/] "
                                                   f"{event['calls']} {note}{errors}")
        elif kind == "tool_finished":
            parent = steps.get(event["step"], tree)
            outcome = (f"[red]error ({escape(event['error']['kind'])})[/] {escape(preview(event['error']['message']))}"
                       if event.get("error") else escape(preview(event["result"])))
            parent.add(f"[cyan]{escape(event['tool'])}[/] {escape(preview(event['arguments']))} → {outcome} "
                       f"· {ms(event['latency'])} {at}")
        elif kind == "sandbox":  # what a sandboxed plugin's call did there: egress, kills
            parent = steps[max(steps)] if steps else tree  # under the step whose call it was
            details = " ".join(f"{k}={v}" for k, v in event["details"].items() if k != "at" and v not in ("", None))
            parent.add(f"[magenta]sandbox {escape(event['kind'])}[/] {escape(event['tool'])} {escape(details)} {at}")
        elif kind == "provenance":  # why later calls may need an OK: what the history brought in
            tree.add(f"[yellow]history ({escape(event['history'])})[/] {escape(event['reason'])}")
        elif kind == "policy_decision" and event["decision"] != "allow":
            tree.add(f"[yellow]policy {escape(event['decision'])}[/] {escape(event.get('tool') or '')}: "
                     f"{escape(event['rule'])}" + (f" · {escape(event['reason'])}" if event.get("reason") else ""))
        elif kind == "answer":
            tree.add(f"[bold]answer[/] {escape(event['text'])}")
    if set(parsed) - {"native"}:
        tree.add("[dim]tool calls:[/] " + " · ".join(f"{n} {how}" for how, n in parsed.items()))
    if run.get("error"):
        tree.add(f"[red]error[/] {escape(run['error'])}")
    return tree
