"""Extension points (plugdeck.extensions): a pip-installed package adds a plugin, a model backend, a
command, an embedder, a rules skill and a tool-call hook; broken ones are named and skipped."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_dist import install_fake_distribution
from plugdeck import extensions
from plugdeck.extensions import ToolCallInfo, after_tool_call, before_tool_call, register_hooks
from plugdeck.tools import ToolError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugdeck-echo"
CLI = [sys.executable, "-m", "plugdeck.cli.main"]


@pytest.fixture(scope="module")
def echo_site(tmp_path_factory):
    """examples/plugdeck-echo installed by pip into a folder of its own (the shared environment stays as
    it was); built from a copy, so the example's folder gets no build files."""
    root = tmp_path_factory.mktemp("echo")
    shutil.copytree(EXAMPLE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(root / "site"), str(root / "src")], check=True, capture_output=True, timeout=300)
    return root / "site"


@pytest.fixture
def cli_env(tmp_path, echo_site):
    (tmp_path / "plugdeck.toml").write_text('[policy]\nallow = ["echo.*"]\n')  # a third-party tool needs an OK
    # In process, not in the sandbox: a sandboxed tool does not carry its capabilities across yet (so the
    # rules skill could not find echo.reverse), and what is tested here is the extension points.
    return {**os.environ, "PYTHONPATH": str(echo_site), "PLUGDECK_HOME": str(tmp_path / "home"),
            "PLUGDECK_UNSANDBOXED_PLUGINS": "1"}


def plugdeck(*args, env, cwd):
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_package_adds_a_command(cli_env, tmp_path):
    helped = plugdeck("--help", env=cli_env, cwd=tmp_path)
    assert helped.returncode == 0 and "Say things back (from the plugdeck-echo package)" in helped.stdout
    said = plugdeck("echo", "say", "hello there", "--times", "2", env=cli_env, cwd=tmp_path)
    assert said.returncode == 0 and said.stdout == "hello there\nhello there\n", said.stderr
    without = plugdeck("--help", env={**cli_env, "PYTHONPATH": ""}, cwd=tmp_path)
    assert without.returncode == 0 and "plugdeck-echo" not in without.stdout


def test_a_package_adds_a_model_backend(cli_env, tmp_path):
    asked = plugdeck("ask", "--model", "echo:hi", "Are you there?", env=cli_env, cwd=tmp_path)
    assert asked.returncode == 0 and asked.stdout.startswith("hi! You asked: Are you there?"), asked.stderr
    # An unknown prefix is still read as a profile name, with the usual message.
    unknown = plugdeck("ask", "--model", "nope:hi", "Are you there?", env=cli_env, cwd=tmp_path)
    assert unknown.returncode == 1 and "no model profile named 'nope:hi'" in unknown.stderr


def test_a_package_adds_a_rules_skill_and_a_tool(cli_env, tmp_path):
    question = "reverse the word plugdeck"
    before = plugdeck("ask", question, env={**cli_env, "PYTHONPATH": ""}, cwd=tmp_path)
    assert before.returncode == 3 and "can't answer that offline" in before.stdout
    answered = plugdeck("ask", question, env=cli_env, cwd=tmp_path)
    assert answered.returncode == 0 and answered.stdout.startswith("'plugdeck' reversed is 'kcedgulp'"), answered.stderr
    assert "echo.reverse" in answered.stderr
    # The built-in skills still come first, and the package's skill does not take their questions.
    sums = plugdeck("ask", "What is 17.5% of 2,340, plus 12?", env=cli_env, cwd=tmp_path)
    assert sums.returncode == 0 and sums.stdout.startswith("421.5"), sums.stderr


def test_a_package_hook_refuses_a_tool_call(cli_env, tmp_path):
    refused = plugdeck("ask", "reverse the word secret", env=cli_env, cwd=tmp_path)
    assert refused.returncode == 3 and "the echo guard does not reverse 'secret'" in refused.stdout
    assert "refused_by_hook" in refused.stderr and "terces" not in refused.stdout
    allowed = plugdeck("ask", "reverse the word secret", env={**cli_env, "PLUGDECK_ECHO_GUARD": "other"}, cwd=tmp_path)
    assert allowed.returncode == 0 and "'terces'" in allowed.stdout, allowed.stderr


def test_a_package_adds_an_embedder_for_knowledge_bases(cli_env, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "office.txt").write_text("The office opens at nine in the morning. "
                                                  "Parking is free for visitors on weekends.\n")
    with (tmp_path / "plugdeck.toml").open("a") as config:
        config.write('[knowledge.embeddings]\nmodel = "echo:64"\n')
    added = plugdeck("kb", "add", "docs", "--name", "office", env=cli_env, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    shown = json.loads(plugdeck("kb", "show", "office", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert shown["embedder"] == {"id": "echo:hashed-words-64", "dimension": 64}
    asked = plugdeck("ask", "--kb", "office", "When does the office open?", env=cli_env, cwd=tmp_path)
    assert asked.returncode == 0 and asked.stdout.startswith("The office opens at nine in the morning. [1]"), \
        asked.stdout + asked.stderr


def test_only_what_is_used_is_imported(echo_site):
    """A built-in command reads no command extension; the rules model imports the package's skill, not
    its model backend; `plugdeck echo` imports the command then."""
    probe = """
import json, sys
from plugdeck.cli import main as cli
from plugdeck.models.rules import RulesModel

cli._add_installed_commands(["ask", "What is 2 + 2?"])
skills = [s.capability for s in RulesModel().skills]
seen = {m: m in sys.modules for m in ("plugdeck_echo.command", "plugdeck_echo.model", "plugdeck_echo.skill")}
cli._add_installed_commands(["echo", "say", "x"])
print(json.dumps({"skills": skills, "before": seen, "command_after": "plugdeck_echo.command" in sys.modules}))
"""
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(echo_site)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["skills"] == ["arithmetic", "text-reversal", "knowledge"]  # the catch-all last
    assert seen["before"] == {"plugdeck_echo.command": False, "plugdeck_echo.model": False, "plugdeck_echo.skill": True}
    assert seen["command_after"] is True


# ---- broken and conflicting extensions (a pip-free install) ------------------------------------------

@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    extensions.refresh()
    yield site
    extensions.refresh()


def test_a_broken_extension_is_named_and_skipped(site):
    install_fake_distribution(site, "plugdeck-cracked", {
        "plugdeck.models": {"cracked": "cracked_backend_mod:make"},
        "plugdeck.rules_skills": {"cracked": "cracked_skill_mod:skill", "arithmetic": "cracked_skill_mod:skill"},
    }, {"cracked_backend_mod": "raise ImportError('needs the cracked-sdk library')\n",
        "cracked_skill_mod": "def skill():\n    raise RuntimeError('no skill today')\n"}, group=None)
    from plugdeck.models.backends import backend_model
    from plugdeck.models.rules import default_skills

    with pytest.raises(extensions.ExtensionError, match="plugdeck-cracked.*needs the cracked-sdk library"):
        backend_model("cracked:v1")
    assert [s.capability for s in default_skills()] == ["arithmetic", "knowledge"]
    found = {(p.group, p.name): str(p) for p in extensions.problems()}
    assert "no skill today" in found["plugdeck.rules_skills", "cracked"]
    assert "already declared by plugdeck" in found["plugdeck.rules_skills", "arithmetic"]
    assert all("plugdeck-cracked" in text for text in found.values())


def test_a_command_that_fails_or_takes_a_built_in_name_is_skipped(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site, "plugdeck-rude", {"ask": "rude_cmd:hello", "hello": "rude_cmd:hello",
                                                      "boom": "rude_missing:app"}, {
        "rude_cmd": "def hello(name: str = 'you'):\n    '''Say hello.'''\n    print(f'hello {name}')\n",
    }, group="plugdeck.commands")
    env = {**os.environ, "PYTHONPATH": str(site), "PLUGDECK_HOME": str(tmp_path / "home")}
    helped = plugdeck("--help", env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "hello" in helped.stdout
    assert "'boom' from the package plugdeck-rude was skipped: ModuleNotFoundError" in helped.stderr
    assert "'ask' from the package plugdeck-rude was skipped: ValueError: 'ask' is a built-in command" in helped.stderr
    listed = {row["name"]: row for row in json.loads(plugdeck("plugins", "extensions", "--json", env=env, cwd=tmp_path).stdout)
              if row["package"] == "plugdeck-rude"}
    assert listed["hello"]["status"] == "ok" and listed["boom"]["status"].startswith("skipped: ModuleNotFoundError")
    assert listed["ask"]["status"] == "skipped: 'ask' is a built-in command"
    hello = plugdeck("hello", "--name", "Ada", env=env, cwd=tmp_path)
    assert hello.returncode == 0 and hello.stdout == "hello Ada\n", hello.stderr
    asked = plugdeck("ask", "What is 2 + 2?", env=env, cwd=tmp_path)  # the built-in is untouched, nothing warned
    assert asked.returncode == 0 and asked.stdout.startswith("4") and "skipped" not in asked.stderr


# ---- tool-call hooks ------------------------------------------------------------------------------

CALL = ToolCallInfo(run_id="r1", call_id="c1", tool="notes.write", arguments={"text": "hi"}, effect="write")


@pytest.fixture
def hooks():
    removers = []

    def add(obj):
        removers.append(register_hooks(obj))
        return removers[-1]

    yield add
    for remove in removers:
        remove()


class Recorder:
    def __init__(self, name, seen, replace=None):
        self.__name__, self.seen, self.replace = name, seen, replace

    def before_tool_call(self, call):
        self.seen.append(("before", self.__name__, call.tool))

    async def after_tool_call(self, call, result, error):
        await asyncio.sleep(0)
        self.seen.append(("after", self.__name__, result, error))
        return self.replace


async def test_hooks_run_in_order_sync_and_async_and_may_replace_the_result(hooks):
    seen = []
    hooks(Recorder("first", seen, replace={"redacted": True}))
    hooks(Recorder("second", seen))
    assert extensions.has_tool_hooks()
    await before_tool_call(CALL)
    result = await after_tool_call(CALL, {"secret": 1}, None)
    assert result == {"redacted": True}
    assert seen == [("before", "first", "notes.write"), ("before", "second", "notes.write"),
                    ("after", "first", {"secret": 1}, None), ("after", "second", {"redacted": True}, None)]


async def test_an_error_result_is_shown_to_hooks_but_passed_through(hooks):
    seen = []
    hooks(Recorder("first", seen, replace="something else"))
    error = {"kind": "timeout", "message": "too slow"}
    assert await after_tool_call(CALL, None, error) is None
    assert seen == [("after", "first", None, error)]


async def test_a_hook_refuses_and_a_broken_hook_refuses_too(hooks):
    seen = []

    class Refuser:
        async def before_tool_call(self, call):
            raise ToolError("notes are read-only today", "refused_by_hook")

    class Broken:
        def before_tool_call(self, call):
            raise KeyError("oops")

        def after_tool_call(self, call, result, error):
            raise KeyError("oops")

    remove = hooks(Refuser())
    hooks(Recorder("later", seen))
    with pytest.raises(ToolError, match="read-only today") as refused:
        await before_tool_call(CALL)
    assert refused.value.kind == "refused_by_hook" and seen == []  # hooks after a refusal are not asked
    remove()
    hooks(Broken())
    with pytest.raises(ToolError, match="Broken.*failed.*KeyError") as failed:
        await before_tool_call(CALL)
    assert failed.value.kind == "hook_failed"
    with pytest.raises(ToolError, match="withheld"):
        await after_tool_call(CALL, {"secret": 1}, None)


async def test_unregister_removes_only_that_hook():
    seen = []
    first = register_hooks(Recorder("first", seen))
    second = register_hooks(Recorder("second", seen))
    first()
    first()  # twice is harmless
    await before_tool_call(CALL)
    second()
    await before_tool_call(CALL)
    assert seen == [("before", "second", "notes.write")]


async def test_an_installed_hook_class_is_made_once(site):
    install_fake_distribution(site, "plugdeck-counter", {"counter": "counter_hook_mod:Counter"}, {
        "counter_hook_mod": """
            class Counter:
                made = 0
                calls = []

                def __init__(self):
                    Counter.made += 1

                def before_tool_call(self, call):
                    Counter.calls.append(call.call_id)
        """}, group="plugdeck.hooks")
    await before_tool_call(CALL)
    await before_tool_call(ToolCallInfo("r1", "c2", "notes.write", {}, "write"))
    counter = sys.modules["counter_hook_mod"].Counter
    assert counter.made == 1 and counter.calls == ["c1", "c2"]
    assert [(e.name, e.package) for e in extensions.declared(extensions.HOOKS)] == [("counter", "plugdeck-counter")]


async def test_an_installed_hook_that_does_not_load_refuses_every_call(site):
    install_fake_distribution(site, "plugdeck-guard", {"guard": "guard_hook_mod:Guard"},
                              {"guard_hook_mod": "raise ImportError('needs the policy-sdk library')\n"},
                              group="plugdeck.hooks")
    assert extensions.has_tool_hooks()
    with pytest.raises(ToolError, match="plugdeck-guard was skipped.*policy-sdk") as refused:
        await before_tool_call(CALL)
    assert refused.value.kind == "hook_failed"


def test_a_folder_added_to_sys_path_is_read(tmp_path, monkeypatch):
    assert "late" not in extensions.named(extensions.MODELS)  # read once, before the folder is there
    site = tmp_path / "late-site"
    site.mkdir()
    install_fake_distribution(site, "plugdeck-late", {"late": "late_backend_mod:make"},
                              {"late_backend_mod": "def make(name):\n    return name\n"}, group="plugdeck.models")
    monkeypatch.syspath_prepend(str(site))
    assert extensions.named(extensions.MODELS)["late"].package == "plugdeck-late"
    monkeypatch.undo()
    assert "late" not in extensions.named(extensions.MODELS)


def test_declaring_imports_nothing_until_asked(site):
    install_fake_distribution(site, "plugdeck-lazy", {"lazy": "lazy_backend_mod:make"},
                              {"lazy_backend_mod": "raise ImportError('imported too early')\n"}, group="plugdeck.models")
    found = [(e.name, e.target, e.package, e.builtin) for e in extensions.declared(extensions.MODELS)]
    assert ("lazy", "lazy_backend_mod:make", "plugdeck-lazy", False) in found
    assert "lazy_backend_mod" not in sys.modules and extensions.problems() == []
    assert extensions.get(extensions.MODELS, "lazy") is None
    assert [p.package for p in extensions.problems()] == ["plugdeck-lazy"]
