"""`plugdeck ask --kb`: answers from the person's documents, with citations, offline or with an LLM."""

import json
import subprocess
import sys

import pytest
from cli_env import cli_environment
from mock_openai import MockOpenAI

CLI = [sys.executable, "-m", "plugdeck.cli.main"]


@pytest.fixture(scope="module")
def handbook(tmp_path_factory):
    root = tmp_path_factory.mktemp("kb")
    docs = root / "handbook"
    docs.mkdir()
    (docs / "leave.md").write_text(
        "# Leave policy\n\n## Vacation\n\nNew employees get 25 days of paid vacation per year.\n"
        "Unused days can be carried over to the next year, up to 5 days.\n\n"
        "## Sick leave\n\nEmployees can take up to 10 paid sick days per year.\n")
    (docs / "travel.md").write_text("# Travel\n\nMeals are reimbursed up to 40 EUR per day.\n")
    env = cli_environment(root)
    added = subprocess.run([*CLI, "kb", "add", str(docs)], env=env, cwd=root, capture_output=True, text=True, timeout=180)
    assert added.returncode == 0, added.stderr
    return root, env


def test_offline_answer_cites_the_document(handbook):
    root, env = handbook
    result = subprocess.run([*CLI, "ask", "--kb", "handbook", "How many vacation days do new employees get?"],
                            env=env, cwd=root, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "25 days of paid vacation" in result.stdout and "[1]" in result.stdout
    assert 'handbook/leave.md, "Vacation"' in result.stdout.replace("Leave policy > ", "")
    assert "→ handbook.search_knowledge" in result.stderr


def test_llm_answer_is_grounded_and_the_decision_recorded(handbook):
    root, env = handbook
    turns = [{"tool_calls": [{"name": "search_knowledge", "arguments": {"query": "vacation days new employees"}}]},
             {"text": "New employees get 25 days of paid vacation per year [1]. They also get a company car [1]."}]
    with MockOpenAI(turns) as mock:
        result = subprocess.run([*CLI, "ask", "--kb", "handbook", "--base-url", mock.base_url, "--model", "m",
                                 "--json", "How many vacation days do new employees get?"],
                                env=env, cwd=root, capture_output=True, text=True, timeout=180)
    data = json.loads(result.stdout)
    assert "25 days" in data["answer"] and "company car" not in data["answer"]
    checked = next(e for e in data["events"] if e["type"] == "answer_checked")
    assert checked["check"] == "grounding" and not checked["passed"] and "company car" in checked["original"]


# ---- item 14: the terminal shows the checked answer, never the draft the checks changed -------------------

SEARCH_THEN_CAR = [{"tool_calls": [{"name": "search_knowledge", "arguments": {"query": "vacation days new employees"}}]},
                   {"text": "New employees get 25 days of paid vacation per year [1]. They also get a company car [1]."}]


@pytest.mark.parametrize("flags", [["--kb", "handbook"], ["--kb", "handbook", "--grounded"]], ids=["kb", "grounded"])
def test_terminal_prints_the_grounded_answer_not_the_draft(handbook, flags):
    root, env = handbook
    with MockOpenAI(SEARCH_THEN_CAR) as mock:
        result = subprocess.run([*CLI, "ask", *flags, "--base-url", mock.base_url, "--model", "m",
                                 "How many vacation days do new employees get?"],
                                env=env, cwd=root, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "25 days of paid vacation" in result.stdout
    assert "company car" not in result.stdout + result.stderr  # the sentence the grounding check removed
    assert "checking the answer" in result.stderr


def test_chat_prints_the_grounded_answer_not_the_draft(handbook):
    root, env = handbook
    with MockOpenAI(SEARCH_THEN_CAR) as mock:
        result = subprocess.run([*CLI, "chat", "--kb", "handbook", "--base-url", mock.base_url, "--model", "m"],
                                input="How many vacation days do new employees get?\n/exit\n",
                                env=env, cwd=root, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "25 days of paid vacation" in result.stdout
    assert "company car" not in result.stdout + result.stderr


def test_ctrl_c_while_searching_stops_the_run_and_records_it(handbook):
    """Ctrl-C during the search (the embedding model loads in a thread that cannot be stopped): the run is
    recorded as cancelled and the command says so and exits 130 without waiting for that thread (item 18)."""
    import re
    import signal

    root, env = handbook
    process = subprocess.Popen([*CLI, "ask", "--kb", "handbook", "How many vacation days do new employees get?"],
                               env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    while "→ handbook.search_knowledge" not in (line := process.stderr.readline()):
        assert line, "the search never started"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    run_id = re.search(r"cancelled: run (\w+) was stopped and recorded as cancelled", err).group(1)
    shown = subprocess.run([*CLI, "runs", "show", run_id, "--json"], env=env, cwd=root, capture_output=True,
                           text=True, timeout=60)
    assert json.loads(shown.stdout)["status"] == "cancelled"
