"""`plugdeck ask` as llm users type it, in a subprocess against a mock OpenAI server on loopback: a piped
question (alone, or before the one given), `-s/--system`, `-c` and `--cid` to continue a conversation,
and the `runs` commands that list, show and search conversations (those in this process: they start
nothing, and a new interpreter per command would make the file slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mock_openai import MockOpenAI
from plugdeck import Agent, RunStore, ScriptedModel
from plugdeck.errors import UserError

PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]


def plugdeck(env, cwd, *args, input=""):
    return subprocess.run([*PLUGDECK, *args], env=env, cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=60)


def test_piped_text_system_prompt_and_continued_conversations(cli_env, tmp_path):
    with MockOpenAI(["France.", "Also France.", "Sure."]) as mock:
        model = ["--base-url", mock.base_url, "--model", "mock-model", "--planner", "loop"]
        first = plugdeck(cli_env, tmp_path, "ask", *model, "-s", "Answer in one word.", "--json", "Where is Paris?",
                         input="Paris is a city on the Seine.\n")
        assert first.returncode == 0, first.stderr
        data = json.loads(first.stdout)
        assert data["answer"] == "France." and data["conversation_id"] == data["run_id"]
        sent = mock.requests[0]["messages"]
        assert sent[-1] == {"role": "user", "content": "Paris is a city on the Seine.\n Where is Paris?"}
        assert sent[0]["role"] == "system" and sent[0]["content"].endswith("Answer in one word.")

        again = plugdeck(cli_env, tmp_path, "ask", *model, "-c", "And Lyon?")
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == "Also France."
        assert f"continuing conversation {data['run_id']} (1 earlier turn(s))" in again.stderr
        sent = mock.requests[1]["messages"]
        assert [(m["role"], m["content"]) for m in sent[1:]] == [
            ("user", "Paris is a city on the Seine.\n Where is Paris?"), ("assistant", "France."),
            ("user", "And Lyon?")]
        assert "Answer in one word." not in sent[0]["content"]  # -s was for that run only

        # --cid carries a given conversation on, here from `chat`.
        chat = plugdeck(cli_env, tmp_path, "chat", *model, "--cid", data["run_id"][:14], input="Thanks\n/exit\n")
        assert chat.returncode == 0, chat.stderr
        assert [m["content"] for m in mock.requests[2]["messages"][1:]] == [
            "Paris is a city on the Seine.\n Where is Paris?", "France.", "And Lyon?", "Also France.", "Thanks"]



def test_runs_commands_list_show_and_search_conversations(in_process):
    agent = Agent(ScriptedModel(["France.", "Also France.", "Berlin."]), sinks=[in_process.store.record])
    first = agent.run_sync("Paris is a city on the Seine.\n Where is Paris?")
    second = agent.run_sync("And Lyon?", conversation_id=first.id)
    agent.run_sync("Where is Berlin?")
    in_process.store.flush()

    listed = json.loads(in_process("runs", "--cid", first.id[:14], "--json"))
    assert [r["id"] for r in listed] == [second.id, first.id] and {r["conversation_id"] for r in listed} == {first.id}
    assert f"conversation {first.id}" in in_process("runs", "show", second.id)
    table = in_process("runs")
    rows = {line.split()[0]: line.split()[3] for line in table.splitlines()[1:] if line.strip()}
    assert rows[second.id] == first.id and rows[first.id] == "new"  # a continued run names its conversation
    assert "Paris is a city on the Seine. Where is Paris?" in table  # a piped question's lines, on one row

    found = json.loads(in_process("runs", "search", "lyon", "--json"))
    assert [r["question"] for r in found] == ["And Lyon?"]
    france = in_process("runs", "search", "france")  # answers too, newest first
    assert france.index("And Lyon?") < france.index("Paris is a city")
    assert "no run has 'rome' in its question or answer" in in_process("runs", "search", "rome")


def test_a_question_piped_alone_and_the_mistakes_people_make(in_process):
    assert "there is no conversation to continue yet" in in_process("ask", "-c", "what is 1+1", fails=True)
    assert in_process("ask", input="what is 6*7\n").strip() == "42"
    assert "give a question" in in_process("ask", input="  \n", fails=True)
    assert "no conversation with id 'nope'" in in_process("ask", "--cid", "nope", "what is 1+1", fails=True)


class InProcess:
    """`plugdeck ...` run in this process (typer's runner): quicker than a new interpreter per command."""

    def __init__(self, tmp_path):
        self.store = RunStore(tmp_path / "data" / "runs.db")

    def __call__(self, *args: str, input: str = "", fails: bool = False) -> str:
        from typer.testing import CliRunner

        from plugdeck.cli.main import app

        result = CliRunner().invoke(app, list(args), input=input)
        if fails:
            assert result.exit_code == 1 and isinstance(result.exception, UserError), result.output
            return str(result.exception)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout


@pytest.fixture
def in_process(cli_env, tmp_path, monkeypatch):
    for name in [n for n in os.environ if n not in cli_env]:
        monkeypatch.delenv(name)
    for name, value in cli_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    runner = InProcess(tmp_path)
    yield runner
    runner.store.close()
