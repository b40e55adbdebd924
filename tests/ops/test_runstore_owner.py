"""Run ids by prefix, per caller (issue 11, item 9): a key resolves a prefix among its own runs only,
so the answer never tells it that another key's runs exist; the operator (no key) resolves among all.
On SQLite and PostgreSQL alike."""

import os

import pytest

from plugdeck import Agent, RunStore, ScriptedModel


def _run(store: RunStore, key: str | None, question: str) -> str:
    return Agent(ScriptedModel(["ok"]), sinks=[store.record]).run_sync(question, api_key_id=key).id


def _shared_prefix(*ids: str) -> str:
    return os.path.commonprefix(list(ids))


def test_a_key_resolves_run_ids_among_its_own_runs_only(store_target):
    with RunStore(store_target) as store:
        a1, a2 = _run(store, "key_a", "a first"), _run(store, "key_a", "a second")
        b1 = _run(store, "key_b", "b only")
        mine = _run(store, None, "the operator's")
        store.flush()
        prefix = _shared_prefix(a1, a2, b1, mine)
        assert len(prefix) >= 6  # time-ordered ids made a moment apart share their start

        # The operator sees every run: the shared prefix is ambiguous.
        with pytest.raises(KeyError, match="more than one run starts with"):
            store.get_run(prefix)
        # Key B has one run: the same prefix is its run, whatever others exist.
        assert store.get_run(prefix, api_key_id="key_b")["id"] == b1
        # Key A has two: ambiguous among its own, and only its own are counted.
        with pytest.raises(KeyError, match="more than one run starts with"):
            store.get_run(prefix, api_key_id="key_a")
        assert store.get_run(a2, api_key_id="key_a")["question"] == "a second"

        # Another key's run, by full id or by any prefix of it, answers exactly like a run that does not exist.
        def refusal(run_id: str, key: str) -> str:
            with pytest.raises(KeyError) as caught:
                store.get_run(run_id, api_key_id=key)
            return caught.value.args[0].replace(repr(run_id), "ID")

        missing = "f" * len(a1)
        everyone = [a1, a2, b1, mine]
        for other, key in ((a1, "key_b"), (a2, "key_b"), (b1, "key_a"), (mine, "key_a"), (mine, "key_b")):
            unique = max(len(_shared_prefix(other, run)) for run in everyone if run != other) + 1
            for cut in (len(other), len(other) - 4, unique):
                assert refusal(other[:cut], key) == refusal(missing[:cut], key) == "no run with id ID"
        assert store.get_run(a1)["question"] == "a first"  # the operator reads any run
        assert store.get_run(mine[:len(prefix) + 8])["id"] == mine
