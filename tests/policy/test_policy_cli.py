"""Issue 11 item 15, through the CLI: a policy naming plugins that are not selected still lets
`ask -p calculator` run (those patterns are inactive), a typo for a selected plugin is still refused,
and `policy check` knows every tool a stored run used, knowledge bases named with --kb included."""

from __future__ import annotations

import json
import subprocess
import sys

CLI = [sys.executable, "-m", "plugdeck.cli.main"]


def plugdeck(cli_env, cwd, *args, timeout=240):
    return subprocess.run([*CLI, *args], env=cli_env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_patterns_for_plugins_not_selected_are_inactive(cli_env, tmp_path):
    (tmp_path / "plugdeck.toml").write_text(
        '[policy]\nconfirm = ["pizzeria.place_order"]\nallow = ["calculator.*", "weather.*"]\n'
        'flows = {"mail.*" = "deny"}\n[[policy.arguments]]\ntool = "pizzeria.place_order"\n'
        'path = "items[].quantity"\nmax = 10\n')
    result = plugdeck(cli_env, tmp_path, "ask", "-p", "calculator", "what is 6 * 7")
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout


def test_a_typo_for_a_selected_plugin_is_still_refused(cli_env, tmp_path):
    (tmp_path / "plugdeck.toml").write_text('[policy]\ndeny = ["calculator.calculat"]\n')
    result = plugdeck(cli_env, tmp_path, "ask", "-p", "calculator", "what is 6 * 7")
    assert result.returncode == 1
    assert "plugdeck.toml, line 2: deny pattern 'calculator.calculat' matches no tool" in result.stderr
    (tmp_path / "plugdeck.toml").write_text('[policy]\nconfirm = ["calculater.*"]\n')
    result = plugdeck(cli_env, tmp_path, "ask", "-p", "calculator", "what is 6 * 7")
    assert result.returncode == 1 and "did you mean plugin 'calculator'" in result.stderr


def test_policy_check_knows_the_tools_of_knowledge_runs(cli_env, tmp_path):
    docs = tmp_path / "handbook"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nNew employees get 25 days of paid vacation per year.\n")
    added = plugdeck(cli_env, tmp_path, "kb", "add", str(docs))
    assert added.returncode == 0, added.stderr
    asked = plugdeck(cli_env, tmp_path, "ask", "--kb", "handbook", "How many vacation days do new employees get?")
    assert asked.returncode == 0 and "25 days" in asked.stdout, asked.stderr
    same = plugdeck(cli_env, tmp_path, "policy", "check", "--json")
    report = json.loads(same.stdout)
    assert report["calls"] >= 1 and report["changes"] == []  # not "allow -> unknown tool"
    (tmp_path / "strict.toml").write_text('[policy]\nconfirm = ["handbook.*"]\n')
    stricter = json.loads(plugdeck(cli_env, tmp_path, "policy", "check", "--policy", "strict.toml", "--json").stdout)
    # Checked against the plugins loaded now (the calculator), the pattern is inactive; the runs that used
    # the knowledge base are judged by it all the same.
    assert stricter["inactive"] == ["strict.toml, line 2: confirm pattern 'handbook.*' is inactive: "
                                    "no plugin 'handbook' is selected"]
    change = stricter["changes"][0]
    assert (change["tool"], change["before"], change["after"]) == ("handbook.search_knowledge", "allow", "confirm")
