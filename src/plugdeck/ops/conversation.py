"""Carrying a stored conversation on: its earlier turns as the next run's history, with their provenance.

A continued run sees each earlier turn that has an answer as a question and its answer. What those
turns read goes along as the history's label (a plugdeck Conversation), so the policy judges the new
run as if that content had entered in it: an answer written after reading an untrusted web page still
counts as untrusted content three turns later (see plugdeck.policy.provenance). A turn started by
someone else (another API key of the server) was written by a client: it counts as client-sent history.
"""

from __future__ import annotations

from typing import Any

from ..events import event_from_dict
from ..policy.provenance import CLIENT_HISTORY, Context, Conversation, context_of

PROVENANCE_EVENTS = ("run_started", "provenance", "tool_finished")  # what context_of reads


def history_of(runs: list[dict[str, Any]], *, api_key_id: str | None = None) -> Conversation:
    """The history for a run that continues `runs` (RunStore.conversation: oldest first, with events),
    run by `api_key_id` (None: the command line)."""
    messages: list[dict[str, Any]] = []
    sources = []
    for run in runs:
        if run["status"] != "ok" or not run["answer"]:
            continue  # a turn that failed or still waits gave no answer to carry on from
        messages += [{"role": "user", "content": run["question"]}, {"role": "assistant", "content": run["answer"]}]
        sources += context_of(event_from_dict(e) for e in run["events"] if e.get("type") in PROVENANCE_EVENTS).sources
        if run["api_key_id"] != api_key_id:
            sources.append(CLIENT_HISTORY)
    return Conversation(messages, Context(list(dict.fromkeys(sources))))
