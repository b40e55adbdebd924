"""The CLI asks a person before a write action: in a terminal it prompts, in scripts only --yes approves."""

import json
import os
import pty
import select
import subprocess
import sys

import pytest
from fake_dist import install_fake_distribution
from mock_openai import MockOpenAI

NOTES = '''
    import json, os
    from plugdeck import Plugin, tool

    @tool(effect="write")
    def save_note(title: str, text: str) -> dict:
        """Save a note to the notebook file."""
        with open(os.environ["NOTEBOOK"], "a") as f:
            f.write(json.dumps({"title": title, "text": text}) + "\\n")
        return {"saved": title}

    plugin = Plugin(name="notes", tools=[save_note])
'''


@pytest.fixture
def setup(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site, "plugdeck_notes", {"notes": "plugdeck_notes:plugin"}, {"plugdeck_notes": NOTES})
    (tmp_path / "plugdeck.toml").write_text('[policy]\nallow = ["notes.*"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGDECK_")}
    env.update(PYTHONPATH=str(site), PLUGDECK_HOME=str(tmp_path / "data"), HOME=str(tmp_path),
               NOTEBOOK=str(tmp_path / "notebook.jsonl"),
               PLUGDECK_UNSANDBOXED_PLUGINS="1")  # in process: the notes plugin writes where NOTEBOOK says
    return tmp_path, env


def turns():
    return [{"tool_calls": [{"name": "save_note", "arguments": {"title": "milk", "text": "buy oat milk"}}]},
            {"text": "Saved."}]


def ask(env, cwd, url, *extra):
    return [sys.executable, "-m", "plugdeck.cli.main", "ask", "--base-url", url, "--model", "m", *extra,
            "Note: buy oat milk"]


def saved(tmp_path):
    path = tmp_path / "notebook.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_scripts_need_yes(setup):
    tmp_path, env = setup
    with MockOpenAI(turns() + turns()) as mock:
        refused = subprocess.run(ask(env, tmp_path, mock.base_url), env=env, cwd=tmp_path, capture_output=True,
                                 text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert "confirm notes.save_note" in refused.stderr and "title: milk" in refused.stderr
        assert "not approved" in refused.stderr and "--yes" in refused.stderr and saved(tmp_path) == []
        assert refused.returncode == 4
        approved = subprocess.run(ask(env, tmp_path, mock.base_url, "--yes"), env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert approved.returncode == 0 and "approved (--yes)" in approved.stderr
        assert saved(tmp_path) == [{"title": "milk", "text": "buy oat milk"}]


@pytest.mark.parametrize("answer, expected", [(b"y\n", 1), (b"n\n", 0)])
def test_a_terminal_is_asked(setup, answer, expected):
    tmp_path, env = setup
    with MockOpenAI(turns()) as mock:
        main, child = pty.openpty()
        proc = subprocess.Popen(ask(env, tmp_path, mock.base_url), env=env, cwd=tmp_path, stdin=child,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(child)
        seen = b""
        while b"Approve? [y/N]" not in seen:
            ready, _, _ = select.select([proc.stderr], [], [], 30)  # steps and the prompt go to stderr
            chunk = os.read(proc.stderr.fileno(), 1024) if ready else b""
            if not chunk:
                proc.kill()
                pytest.fail(f"the prompt never came; stderr so far: {seen!r}")
            seen += chunk
        assert b"title: milk" in seen
        os.write(main, answer)
        out, err = proc.communicate(timeout=60)
        os.close(main)
    assert proc.returncode == (0 if expected else 4), err  # 4: an action did not get the person's OK
    assert len(saved(tmp_path)) == expected
