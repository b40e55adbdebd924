"""R20: a third-party entry point is never imported in plugdeck's process: it is described and run by
the sandboxed runner. Where the sandbox does not work, it is refused with the reason (fail closed);
only the operator's PLUGDECK_UNSANDBOXED_PLUGINS=1 loads it in process, and that is logged."""

import logging
import sys

import pytest
from fake_dist import install_fake_distribution

from plugdeck import extensions
from plugdeck.plugins.loading import installed_plugins
from plugdeck.plugins.sandbox import check, launch
from plugdeck.plugins.sandbox.launch import SandboxUnavailable

WHO = '''
    import os
    from plugdeck import Plugin, tool

    @tool(capabilities=("identity",))
    def whoami() -> dict:
        """Who runs this code."""
        return {"uid": os.getuid(), "pid": os.getpid()}

    @tool
    def jot(text: str) -> str:
        """Write a note to /tmp."""
        try:
            with open("/tmp/note.txt", "w") as note:
                note.write(text)
        except OSError as exc:
            return f"ERR:{exc.strerror}"
        return open("/tmp/note.txt").read()

    plugin = Plugin(name="who", version="1.0.0", tools=[whoami, jot], needs=NEEDS)
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    def install(module, needs=None):
        folder = tmp_path / f"site_{module}"
        folder.mkdir()
        install_fake_distribution(folder, f"plugdeck_{module}", {"who": f"{module}:plugin"},
                                  {module: WHO.replace("NEEDS", repr(needs or {}))})
        monkeypatch.syspath_prepend(str(folder))
        extensions.refresh()
        return module

    monkeypatch.delenv(check.OVERRIDE, raising=False)
    yield install
    extensions.refresh()
    check._checked = None  # checked afresh when next needed (after monkeypatch has undone its changes)


def _loaded(name):
    plugins, problems = installed_plugins()
    return {p.name: p for p in plugins}.get(name), {p.name: p.message for p in problems}.get(name)


def test_the_sandbox_works_here():
    found = check.check_sandbox(again=True)
    assert found.ok, found.problem


async def test_a_third_party_plugin_is_never_imported_here_and_runs_in_the_sandbox(site):
    module = site("who_sandboxed")
    plugin, problem = _loaded("who")
    assert problem is None and plugin is not None
    assert module not in sys.modules  # described by the runner, inside the sandbox
    assert plugin.origin == "third-party" and "sandboxed" in plugin.source
    assert plugin.tool("whoami").capabilities == ("identity",)  # what a rules skill or router matches on
    try:
        seen = await plugin.tool("whoami").call({})
    finally:
        await plugin.close()
    assert seen["uid"] != 0 and seen["pid"] == 1  # an unprivileged UID, alone in its PID namespace
    assert module not in sys.modules


@pytest.mark.parametrize("needs, expected", [({}, "ERR:Read-only file system"),
                                             ({"scratch": "session"}, "hello")])
async def test_no_filesystem_unless_the_plugin_declares_scratch(site, needs, expected):
    site(f"who_scratch_{len(needs)}", needs)
    plugin, problem = _loaded("who")
    assert problem is None
    try:
        assert await plugin.tool("jot").call({"text": "hello"}) == expected
    finally:
        await plugin.close()


def test_a_plugin_asking_to_run_in_process_is_refused(site):
    site("who_inprocess", {"inprocess": True})
    plugin, problem = _loaded("who")
    assert plugin is None and "inprocess: true" in problem and "always run in the sandbox" in problem


def test_without_a_working_sandbox_third_party_plugins_are_refused_with_the_reason(site, monkeypatch, caplog):
    module = site("who_refused")

    def missing(name):
        raise SandboxUnavailable(f"{name} is not installed (Debian: apt-get install -y bubblewrap)")

    monkeypatch.setattr(launch, "tool_path", missing)
    assert not check.check_sandbox(again=True).ok
    plugin, problem = _loaded("who")
    assert plugin is None and "run only in the sandbox" in problem and "apt-get install -y bubblewrap" in problem
    assert module not in sys.modules
    # The operator's explicit override: in process, and said so in the log.
    monkeypatch.setenv(check.OVERRIDE, "1")
    with caplog.at_level(logging.WARNING, logger="plugdeck.sandbox"):
        plugin, problem = _loaded("who")
    assert problem is None and plugin is not None and module in sys.modules
    assert "unsandboxed" in caplog.text
    sys.modules.pop(module, None)


def test_a_pip_installed_plugins_manifest_is_kept_until_its_files_change(site, tmp_path, monkeypatch):
    """A CLI start does not start a sandbox per plugin: the manifest is kept by the package's files."""
    import subprocess

    from plugdeck.plugins.sandbox import plugin as sandboxed

    monkeypatch.setenv("PLUGDECK_HOME", str(tmp_path / "home"))
    module = site("who_cached")
    folder = tmp_path / f"site_{module}"
    info = next(folder.glob("*.dist-info"))
    (info / "RECORD").write_text(f"{module}.py,,\n{info.name}/METADATA,,\n")  # what pip writes
    starts = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: starts.append(1) or real_run(*a, **k))

    def load():
        sandboxed._described.clear()  # a new process
        plugin, problem = _loaded("who")
        assert problem is None, problem
        return plugin

    check.check_sandbox()
    starts.clear()
    load()
    load()
    assert len(starts) == 1 and len(list((tmp_path / "home" / "cache" / "sandbox").iterdir())) == 1
    (folder / f"{module}.py").write_text((folder / f"{module}.py").read_text() + "\n# upgraded\n")
    load()
    assert len(starts) == 2  # the package changed: described afresh
