"""The real `plugdeck` command, run in a subprocess as a user would."""

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


def plugdeck(cli_env, *args, cwd=None, input=None):
    return subprocess.run([*PLUGDECK, *args], env=cli_env, cwd=cwd, input=input, capture_output=True, text=True, timeout=60)


def test_quick_start_answers_offline_and_shows_steps(cli_env, tmp_path):
    result = plugdeck(cli_env, "ask", "What is 17.5% of 2,340, plus 12?", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "421.5"
    assert "→ calculator.calculate" in result.stderr and '"expression": "17.5% of 2,340 + 12"' in result.stderr
    assert "← 421.5" in result.stderr
    assert "--base-url" in result.stderr  # one line on how to connect a real LLM


def test_ask_json_and_runs_commands(cli_env, tmp_path):
    result = plugdeck(cli_env, "ask", "--json", "what is 2^10 - 24", cwd=tmp_path)
    data = json.loads(result.stdout)
    assert data["status"] == "ok" and data["answer"] == "1000"
    listed = json.loads(plugdeck(cli_env, "runs", "--json", cwd=tmp_path).stdout)
    assert listed[0]["id"] == data["run_id"] and listed[0]["tool_calls"] == 1
    tree = plugdeck(cli_env, "runs", "show", data["run_id"][:12], cwd=tmp_path)
    assert tree.returncode == 0
    assert "calculator.calculate" in tree.stdout and "answer 1000" in tree.stdout and "ms" in tree.stdout
    shown = json.loads(plugdeck(cli_env, "runs", "show", data["run_id"], "--json", cwd=tmp_path).stdout)
    assert [e["type"] for e in shown["events"]][-1] == "run_finished"
    plain = plugdeck(cli_env, "runs", cwd=tmp_path)
    assert data["run_id"] in plain.stdout


def test_rules_model_says_what_it_cannot_do(cli_env, tmp_path):
    result = plugdeck(cli_env, "ask", "Who wrote Hamlet?", cwd=tmp_path)
    assert result.returncode == 3  # no answer
    assert "can't answer that offline" in result.stdout and "--base-url" in result.stdout
    assert "→" not in result.stderr  # no tool was called


def test_calculator_errors_reach_the_answer_not_a_traceback(cli_env, tmp_path):
    result = plugdeck(cli_env, "ask", "what is 1/0 + 2", cwd=tmp_path)
    assert result.returncode == 3  # no answer
    assert "could not get an answer" in result.stdout and "zero" in result.stdout
    assert "Traceback" not in result.stderr


def test_plugins_lists_tools_with_schemas(cli_env):
    data = json.loads(plugdeck(cli_env, "plugins", "--json").stdout)
    calc = next(p for p in data if p["name"] == "calculator")
    tool = calc["tools"][0]
    assert tool["name"] == "calculate" and tool["parameters"]["required"] == ["expression"]
    assert "calculator.calculate" in plugdeck(cli_env, "plugins").stdout


def test_tools_call_validates_like_the_agent(cli_env):
    ok = plugdeck(cli_env, "tools", "call", "calculator.calculate", '{"expression": "(1+2)*3"}', "--json")
    assert json.loads(ok.stdout)["result"] == "9"
    bad = plugdeck(cli_env, "tools", "call", "calculator.calculate", '{"expression": 5}')
    assert bad.returncode == 1 and "invalid_arguments" in bad.stderr and "Traceback" not in bad.stderr
    broken = plugdeck(cli_env, "tools", "call", "calculator.calculate", '{"expression": ')
    assert broken.returncode == 1 and "not valid JSON" in broken.stderr
    missing = plugdeck(cli_env, "tools", "call", "nope.tool", "{}")
    assert missing.returncode == 1 and "no plugin named 'nope'" in missing.stderr
    limit = plugdeck(cli_env, "tools", "call", "calculator.calculate", '{"expression": "9**9**9"}')
    assert limit.returncode == 1 and "too large" in limit.stderr


def test_errors_are_one_line_and_debug_shows_the_traceback(cli_env, tmp_path):
    result = plugdeck(cli_env, "ask", "--model", "missing-profile", "hi", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no model profile named 'missing-profile'")
    assert len(result.stderr.strip().splitlines()) == 1
    debug = plugdeck(cli_env, "--debug", "ask", "--model", "missing-profile", "hi", cwd=tmp_path)
    assert "Traceback" in debug.stderr


def test_config_file_profiles_and_precedence(cli_env, tmp_path):
    (tmp_path / "plugdeck.toml").write_text(
        'model = "local"\n[models.local]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "qwen2.5-7b-instruct"\n'
        'api_key_env = "MY_LLM_KEY"\ninput_price = 0.5\n'
    )
    listed = json.loads(plugdeck({**cli_env, "MY_LLM_KEY": "sk-secret"}, "models", "--json", cwd=tmp_path).stdout)
    local = next(m for m in listed if m["name"] == "local")
    assert local["default"] and local["api_key_set"] and "sk-secret" not in json.dumps(listed)
    # The environment beats the file: PLUGDECK_MODEL=rules answers offline again.
    offline = plugdeck({**cli_env, "PLUGDECK_MODEL": "rules"}, "ask", "what is 6*7", cwd=tmp_path)
    assert offline.stdout.strip() == "42"
    (tmp_path / "plugdeck.toml").write_text('modle = "typo"\n')
    typo = plugdeck(cli_env, "ask", "what is 6*7", cwd=tmp_path)
    assert typo.returncode == 1 and "unknown setting(s) modle" in typo.stderr


def test_chat_keeps_history_until_exit(cli_env, tmp_path):
    from mock_openai import MockOpenAI

    # A model that sees what it is sent: the second question must arrive with the first turn before it.
    with MockOpenAI(["Five.", "Ten."], default="(the chat went on after /exit)") as mock:
        result = plugdeck(cli_env, "chat", "--base-url", mock.base_url, "--model", "mock-model", "--planner", "loop",
                          cwd=tmp_path, input="what is 2+3\nand doubled?\n/exit\nwhat is 7*7\n")
        sent = [[(m["role"], m.get("content")) for m in body["messages"] if m["role"] != "system"]
                for body in mock.requests]
    assert result.returncode == 0, result.stderr
    assert result.stdout.replace("you> ", "").split() == ["Five.", "Ten."]
    assert sent[0] == [("user", "what is 2+3")]
    assert sent[1] == [("user", "what is 2+3"), ("assistant", "Five."), ("user", "and doubled?")]
    assert len(sent) == 2  # nothing after /exit reached the model
    runs = json.loads(plugdeck(cli_env, "runs", "--json", cwd=tmp_path).stdout)
    assert len(runs) == 2


def test_help_and_version(cli_env):
    assert "ask" in plugdeck(cli_env, "--help").stdout
    assert plugdeck(cli_env, "--version").stdout.startswith("plugdeck ")


def test_ask_with_an_openai_compatible_server(cli_env, tmp_path):
    from mock_openai import MockOpenAI

    turns = [
        {"text": "", "tool_calls": [{"name": "calculate", "arguments": {"expression": "3% of 1,999"}}]},
        {"text": "3% of 1,999 is 59.97."},
    ]
    with MockOpenAI(turns, models=["qwen2.5-7b-instruct"]) as mock:
        result = plugdeck(cli_env, "ask", "--base-url", mock.base_url, "--model", "qwen2.5-7b-instruct",
                          "What is 3% of 1,999?", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "3% of 1,999 is 59.97."
        assert "← 59.97" in result.stderr
        first, second = mock.requests
        assert first["model"] == "qwen2.5-7b-instruct" and first["stream"] is True
        assert first["tools"][0]["function"]["name"] == "calculate"
        tool_message = second["messages"][-1]
        assert tool_message["role"] == "tool" and '"result": "59.97"' in tool_message["content"]
        check = plugdeck(cli_env, "models", "check", mock.base_url, "--json")
        report = json.loads(check.stdout)
        assert report["reachable"] and report["models"] == ["qwen2.5-7b-instruct"]
    # The server is gone now: a clear one-line error, and the failed run is still recorded.
    down = plugdeck(cli_env, "ask", "--base-url", mock.base_url, "--model", "qwen2.5-7b-instruct", "hi", cwd=tmp_path)
    assert down.returncode == 1 and "could not connect" in down.stderr and "Traceback" not in down.stderr
    runs = json.loads(plugdeck(cli_env, "runs", "--json", "--status", "error").stdout)
    assert runs and runs[0]["question"] == "hi"


def test_terminal_prints_the_refusal_of_the_number_check_not_the_draft(cli_env, tmp_path):
    """numbers = "refuse": the answer with an untraced number never reaches the screen (item 14)."""
    from mock_openai import MockOpenAI

    (tmp_path / "plugdeck.toml").write_text('[policy.answers]\nnumbers = "refuse"\n')
    draft = "The total for your order is 455.22 euros."
    with MockOpenAI([draft, draft]) as mock:
        shown = plugdeck(cli_env, "ask", "--base-url", mock.base_url, "--model", "m", "What is my total?", cwd=tmp_path)
        as_json = json.loads(plugdeck(cli_env, "ask", "--json", "--base-url", mock.base_url, "--model", "m",
                                      "What is my total?", cwd=tmp_path).stdout)
    assert "I can't give this answer" in as_json["answer"] and draft not in as_json["answer"]
    assert "I can't give this answer" in shown.stdout and shown.returncode == 3
    assert draft not in shown.stdout + shown.stderr
    assert "455.22 euros" not in shown.stdout + shown.stderr


# ---- item 18: exit codes, one error line, Ctrl-C, factorial, --help, the pizzeria's port ---------------------


@pytest.mark.parametrize("question, status, shown", [
    ("what is 2^10 - 24", 0, "1000"),
    ("10!", 0, "3628800"),
    ("9**9**9", 3, "too large"),
    ("Who wrote Hamlet?", 3, "can't answer that offline"),
])
def test_exit_status_says_whether_there_is_an_answer(cli_env, tmp_path, question, status, shown):
    result = plugdeck(cli_env, "ask", question, cwd=tmp_path)
    assert result.returncode == status, result.stderr
    assert shown in result.stdout
    as_json = plugdeck(cli_env, "ask", "--json", question, cwd=tmp_path)
    assert as_json.returncode == status


def test_a_tool_the_policy_denies_exits_4(cli_env, tmp_path):
    (tmp_path / "plugdeck.toml").write_text('[policy]\ndeny = ["calculator.*"]\n')
    result = plugdeck(cli_env, "ask", "what is 2+2", cwd=tmp_path)
    assert result.returncode == 4, result.stderr


def test_help_documents_exit_codes_and_shows_no_python_types(cli_env):
    import typer
    from typer.testing import CliRunner

    from plugdeck.cli.main import app

    assert "Exit status: 0 answered" in plugdeck(cli_env, "--help").stdout
    assert "130 cancelled" in plugdeck(cli_env, "ask", "--help").stdout
    paths = []

    def walk(command, path):
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    assert len(paths) > 20
    pages = {}
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        pages[" ".join(path)] = result.output
        usage = next(line for line in result.output.splitlines() if "Usage:" in line)
        assert not re.search(r"<(bool|str|int|float|list\[)", result.output) and "{" not in usage, (path, result.output)
        assert "(default:  in" not in result.output, (path, result.output)  # "[policy]" eaten as markup
    flags = pages["ask"]
    assert re.search(r"--json\s+Print JSON", flags) and re.search(r"--plugin\s+-p\s+TEXT", flags)
    assert re.search(r"--max-steps\s+INTEGER", flags) and "QUESTION" in flags


def test_a_connection_error_is_printed_once(cli_env, tmp_path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there
    result = plugdeck(cli_env, "ask", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m", "hi", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("could not connect") == 1, result.stderr


def test_ctrl_c_stops_the_run_says_so_and_records_it(cli_env, tmp_path):
    from mock_openai import MockOpenAI

    with MockOpenAI([{"fault": "hang"}]) as mock:
        process = subprocess.Popen([*PLUGDECK, "ask", "--base-url", mock.base_url, "--model", "m", "hi"], env=cli_env,
                                   cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not mock.requests:  # the model has been asked: the run is under way
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    run_id = re.search(r"cancelled: run (\w+) was stopped and recorded as cancelled", err).group(1)
    assert "Traceback" not in err and "Exception" not in err
    assert json.loads(plugdeck(cli_env, "runs", "show", run_id, "--json", cwd=tmp_path).stdout)["status"] == "cancelled"


def test_the_pizzeria_says_its_port_is_taken(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(ROOT / "examples/pizzeria/server.py"), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip() == (f"error: 127.0.0.1:{port} is already in use: stop what listens there, or pick "
                                     "another port with --port (0 picks a free one)")


def test_ctrl_c_at_the_chat_prompt_ends_the_chat_without_waiting_for_enter(cli_env, tmp_path):
    process = subprocess.Popen([*PLUGDECK, "chat"], env=cli_env, cwd=tmp_path, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdin.write("what is 6*7\n")
    process.stdin.flush()
    assert process.stdout.readline().strip().endswith("42")
    while "model call(s)" not in (line := process.stderr.readline()):  # the turn is over: the chat waits at its prompt
        assert line, "the chat ended early"
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)  # stdin stays open (communicate() would close it): only Ctrl-C can end the wait
    finally:
        process.kill()
        process.stdin.close()
    err = process.stderr.read()
    assert process.returncode == 0, err
    assert "Traceback" not in err
