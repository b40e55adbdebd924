"""A store Python package runs in the sandbox, with the permissions consented to at install as its policy:
its one declared host is reached through the egress proxy and nothing else (not the host its own code
claims to need), a private file of the machine is not there, the granted knowledge base is read-only at
/kb, there is no scratch to write to, and `plugdeck tools call` runs it. Real registry and HTTP
servers on loopback, real bubblewrap."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from store_kit import RegistryThread, plugdeck

pytest.importorskip("tuf")

from plugdeck.plugins.sandbox.check import check_sandbox  # noqa: E402
from plugdeck.store import client, keys, lock  # noqa: E402
from plugdeck.store.publish import build, register, upload  # noqa: E402

if not check_sandbox().ok:
    pytest.skip(f"the sandbox does not work here: {check_sandbox().problem}", allow_module_level=True)

PROBE = '''"""Probes what its sandbox lets it do."""

import os

from plugdeck import Plugin, tool


@tool
def fetch(url: str) -> str:
    """Fetch a URL.

    Args:
        url: The URL.
    """
    from plugdeck.sandbox import http

    try:
        with http.client(timeout=10) as web:
            answer = web.get(url)
    except Exception as exc:
        return f"error {type(exc).__name__}: {exc}"
    return f"{answer.status_code} {answer.text}"


@tool
def peek(path: str) -> str:
    """Read a file or list a folder.

    Args:
        path: The path.
    """
    try:
        if os.path.isdir(path):
            return "folder " + " ".join(sorted(os.listdir(path)))
        with open(path, encoding="utf-8") as f:
            return "file " + f.read()
    except OSError as exc:
        return f"error {type(exc).__name__}"


@tool
def scribble(path: str) -> str:
    """Try to write a file.

    Args:
        path: The path.
    """
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write("x")
        return "written"
    except OSError as exc:
        return f"error {type(exc).__name__}"


# The code claims more than the manifest declares: the platform must go by the consented manifest.
plugin = Plugin(name="probe", version="1.0.0", description="Probes its sandbox.", tools=[fetch, peek, scribble],
                needs={"network": ["127.0.0.1:{other}"]})
'''


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {self.server.server_address[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from plugdeck.plugins.scaffold import scaffold

    base = tmp_path_factory.mktemp("store-sandboxed")
    declared, other = _server(), _server()
    declared_port, other_port = declared.server_address[1], other.server_address[1]
    folder = scaffold("probe", base)
    (folder / "plugdeck_probe" / "__init__.py").write_text(PROBE.replace("{other}", str(other_port)), encoding="utf-8")
    with open(folder / "pyproject.toml", "a", encoding="utf-8") as out:
        out.write(f'\n[tool.plugdeck.permissions]\nnetwork = ["127.0.0.1:{declared_port}"]\nfilesystem = "kb"\n'
                  "[tool.plugdeck.permissions.limits]\nmemory_mb = 900\ntimeout = 20\n")
    home, user = base / "home", base / "user"
    (user / ".ssh").mkdir(parents=True)
    (user / ".ssh" / "id_rsa").write_text("PRIVATE-KEY-CANARY")
    kb = home / "kb" / "handbook"
    kb.mkdir(parents=True)
    (kb / "notes.txt").write_text("kb canary")
    # The operator: this plugin may reach the private (loopback) origin it declared, and reads `handbook`.
    (home / "sandbox.toml").write_text('[plugins.probe]\nallow_private = true\nknowledge = "handbook"\n'
                                       "[ceiling]\nwall_s = 15\n")
    with RegistryThread(base / "registry") as reg:
        signer = keys.generate(base / "acme.pem")
        upload(reg.url, build(folder, "acme"), signer, register(reg.url, "acme", signer))
        client.add_store(home, "team", reg.url, client.fetch_first_root(reg.url))
        client.install(home, "acme/probe", store="team", consent=lambda fetched, findings: True)
    env = {**os.environ, "PLUGDECK_HOME": str(home), "HOME": str(user), "XDG_CONFIG_HOME": str(user / ".config")}
    env.pop("PLUGDECK_UNSANDBOXED_PLUGINS", None)
    yield {"env": env, "home": home, "user": user, "declared": declared_port, "other": other_port}
    declared.shutdown()
    other.shutdown()


def call(world, tool: str, **arguments) -> str:
    done = plugdeck(world["env"], "tools", "call", f"probe.{tool}", json.dumps(arguments))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def plugin(world):
    """The plugin as a run loads it, in this process (the lock check, then the sandbox)."""
    import asyncio

    from plugdeck.store.runtime import build_plugin

    before = os.environ.get("PLUGDECK_HOME")
    os.environ["PLUGDECK_HOME"] = str(world["home"])  # as a run has it: the launcher keeps it out of the sandbox
    try:
        built = build_plugin("probe", {"package": "acme/probe"}, world["home"])
        yield built
        asyncio.run(built.close())
    finally:
        if before is None:
            os.environ.pop("PLUGDECK_HOME", None)
        else:
            os.environ["PLUGDECK_HOME"] = before


def test_the_declared_host_is_reached_through_the_proxy(world):
    assert call(world, "fetch", url=f"http://127.0.0.1:{world['declared']}/") == f"200 hello from {world['declared']}"


def test_a_host_only_the_code_claims_is_refused(world):
    answer = call(world, "fetch", url=f"http://127.0.0.1:{world['other']}/")
    assert answer.startswith("403 ") and "hello" not in answer


def test_the_machines_private_files_are_not_there(world):
    assert call(world, "peek", path=str(world["user"] / ".ssh" / "id_rsa")) == "error FileNotFoundError"
    assert call(world, "peek", path=str(world["home"] / "plugdeck.lock")) == "error FileNotFoundError"


def test_the_granted_knowledge_base_is_mounted_read_only(world):
    assert call(world, "peek", path="/kb") == "folder notes.txt"
    assert call(world, "peek", path="/kb/notes.txt") == "file kb canary"
    assert call(world, "scribble", path="/kb/new.txt").startswith("error ")
    assert call(world, "scribble", path="/tmp/new.txt").startswith("error ")  # filesystem "kb": no scratch


def test_the_consented_permissions_are_the_sandboxs_policy(plugin, world):
    runtime = plugin.runtime
    assert runtime.network == [f"127.0.0.1:{world['declared']}"]
    assert runtime.limits.memory_mb == 900  # as declared
    assert runtime.limits.wall_s == 15  # declared 20, cut to the operator's ceiling
    assert plugin.source.endswith("(sandboxed)")
    assert sorted(t.name for t in plugin.tools) == ["fetch", "peek", "scribble"]


def test_the_egress_is_recorded(plugin, world):
    import asyncio

    tool = next(t for t in plugin.tools if t.name.endswith("fetch"))

    async def go():
        try:
            return await tool.call({"url": f"http://127.0.0.1:{world['other']}/x?token=1"})
        finally:
            await plugin.close()

    assert asyncio.run(go()).startswith("403 ")
    refused = [e for e in plugin.runtime.events if e["kind"] == "egress"]
    assert refused and not refused[-1]["allowed"] and "token" not in refused[-1]["url"]


def test_without_a_granted_knowledge_base_it_does_not_load(world, tmp_path):
    from plugdeck.store.runtime import build_plugin

    settings = world["home"] / "sandbox.toml"
    original = settings.read_text()
    settings.write_text('[plugins.probe]\nallow_private = true\n')
    try:
        with pytest.raises(lock.LockError, match='knowledge = "NAME"'):
            build_plugin("probe", {"package": "acme/probe"}, world["home"])
    finally:
        settings.write_text(original)


VAULT = '''"""Uses a brokered secret and its scratch."""

import hashlib

from plugdeck import Plugin, tool


@tool
def unlock() -> str:
    """Use the vault token."""
    from plugdeck.sandbox import secret

    token = secret("VAULT_TOKEN")
    return f"token {token} sha256 {hashlib.sha256(token.encode()).hexdigest()}"


@tool
def jot(text: str) -> str:
    """Keep a note in scratch and read it back.

    Args:
        text: The note.
    """
    with open("/tmp/note.txt", "w", encoding="utf-8") as f:
        f.write(text)
    with open("/tmp/note.txt", encoding="utf-8") as f:
        return "kept " + f.read()


plugin = Plugin(name="vault", version="1.0.0", description="Secret and scratch.", tools=[unlock, jot])
'''


def test_a_secret_comes_through_the_broker_redacted_and_scratch_is_writable(tmp_path):
    import hashlib

    from plugdeck.plugins.scaffold import scaffold

    folder = scaffold("vault", tmp_path)
    (folder / "plugdeck_vault" / "__init__.py").write_text(VAULT, encoding="utf-8")
    with open(folder / "pyproject.toml", "a", encoding="utf-8") as out:
        out.write('\n[tool.plugdeck.permissions]\nsecrets = ["VAULT_TOKEN"]\nfilesystem = "scratch"\n')
    home = tmp_path / "home"
    home.mkdir()
    # The operator maps the declared secret to a variable of plugdeck's own environment.
    (home / "sandbox.toml").write_text('[plugins.vault]\nsecrets = { VAULT_TOKEN = "TEAM_VAULT_TOKEN" }\n')
    with RegistryThread(tmp_path / "registry") as reg:
        signer = keys.generate(tmp_path / "acme.pem")
        upload(reg.url, build(folder, "acme"), signer, register(reg.url, "acme", signer))
        client.add_store(home, "team", reg.url, client.fetch_first_root(reg.url))
        client.install(home, "acme/vault", store="team", consent=lambda fetched, findings: True)
    token = "vault-" + "k3y" * 8
    env = {**os.environ, "PLUGDECK_HOME": str(home), "HOME": str(tmp_path / "user"),
           "XDG_CONFIG_HOME": str(tmp_path / "user" / ".config"), "TEAM_VAULT_TOKEN": token}
    env.pop("PLUGDECK_UNSANDBOXED_PLUGINS", None)
    done = plugdeck(env, "tools", "call", "vault.unlock", "{}")
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256(token.encode()).hexdigest() in done.stdout  # it arrived...
    assert token not in done.stdout and token not in done.stderr  # ...and was redacted from the output
    kept = plugdeck(env, "tools", "call", "vault.jot", '{"text": "remember"}')
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == "kept remember"
    unmapped = {**env}
    unmapped.pop("TEAM_VAULT_TOKEN")
    missing = plugdeck(unmapped, "tools", "call", "vault.unlock", "{}")
    assert missing.returncode != 0 and "TEAM_VAULT_TOKEN" in (missing.stdout + missing.stderr)
