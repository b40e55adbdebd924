"""`plugdeck ask` as llm users type it, in a subprocess against a mock OpenAI server on loopback: a piped
question (alone, or before the one given), `-s/--system`, `-c` and `--cid` to continue a conversation,
and the `runs` commands that list, show and search conversations."""

from __future__ import annotations

import json
import subprocess
import sys

from mock_openai import MockOpenAI

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

    listed = json.loads(plugdeck(cli_env, tmp_path, "runs", "--cid", data["run_id"], "--json").stdout)
    assert len(listed) == 3 and {r["conversation_id"] for r in listed} == {data["run_id"]}
    assert listed[-1]["id"] == data["run_id"]
    shown = plugdeck(cli_env, tmp_path, "runs", "show", listed[0]["id"])
    assert f"conversation {data['run_id']}" in shown.stdout

    found = json.loads(plugdeck(cli_env, tmp_path, "runs", "search", "lyon", "--json").stdout)
    assert [r["question"] for r in found] == ["And Lyon?"]
    table = plugdeck(cli_env, tmp_path, "runs", "search", "france")  # answers too, newest first
    assert table.returncode == 0 and table.stdout.index("And Lyon?") < table.stdout.index("Paris is a city")
    nothing = plugdeck(cli_env, tmp_path, "runs", "search", "berlin")
    assert "no run has 'berlin' in its question or answer" in nothing.stdout


def test_a_question_piped_alone_and_the_mistakes_people_make(cli_env, tmp_path):
    answered = plugdeck(cli_env, tmp_path, "ask", input="what is 6*7\n")
    assert answered.returncode == 0 and answered.stdout.strip() == "42"

    empty = plugdeck(cli_env, tmp_path, "ask", input="  \n")
    assert empty.returncode == 1 and "give a question" in empty.stderr and "Traceback" not in empty.stderr
    unknown = plugdeck(cli_env, tmp_path, "ask", "--cid", "nope", "what is 1+1")
    assert unknown.returncode == 1 and "no conversation with id 'nope'" in unknown.stderr


def test_continue_with_nothing_stored_yet_says_so(cli_env, tmp_path):
    result = plugdeck(cli_env, tmp_path, "ask", "-c", "what is 1+1")
    assert result.returncode == 1 and "no conversation to continue yet" in result.stderr
