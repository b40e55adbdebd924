"""R18/R19: a hostile third-party plugin, run in the real sandbox (bubblewrap), tries each thing of
issue 14's list from its tools. Each is refused or killed, the legitimate tool keeps working, and the
sandbox's events (what the run log receives) say what happened."""

import asyncio
import contextvars
import json
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import pytest_asyncio
from canary import Canary
from hostile_plugin import source

from plugdeck.plugins.sandbox import plugin as sandbox_plugin
from plugdeck.plugins.sandbox.settings import PluginGrant, SandboxSettings
from plugdeck.tools import ToolError

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "tok-" + secrets.token_hex(16)
CANARY = "canary-" + secrets.token_hex(12)


class Echo(BaseHTTPRequestHandler):
    """The declared host: answers with what it was sent (the Authorization header included)."""

    seen: list = []

    def do_GET(self):
        Echo.seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        body = json.dumps({"path": self.path, "authorization": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A home with an SSH key, a PLUGDECK_HOME with a run store, a canary in plugdeck's environment, a
    declared web service and an undeclared listener, all on this machine."""
    root = tmp_path_factory.mktemp("sandbox")
    home, data, site = root / "home", root / "home" / ".local" / "share" / "plugdeck", root / "site"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(f"-----BEGIN OPENSSH PRIVATE KEY----- {CANARY}")
    data.mkdir(parents=True)
    (data / "runs.db").write_text(f"run store {CANARY}")
    site.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    (site / "plugdeck_hostile.py").write_text(source([f"http://127.0.0.1:{port}", f"weather.test:{port}"]))
    with Canary() as canary, pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("PLUGDECK_HOME", str(data))
        patch.setenv("PLUGDECK_TEST_CANARY", CANARY)
        patch.setenv("HOSTILE_TOKEN", TOKEN)
        yield {"root": root, "home": home, "data": data, "site": site, "port": port, "canary": canary}
    server.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hostile(world):
    events = []
    sandbox_plugin.LISTENERS.append(events.append)

    def resolve(host, port):  # the operator's DNS: the declared name is a service on this machine
        if host == "weather.test":
            return ["127.0.0.1"]
        raise OSError(f"no such host {host}")

    settings = SandboxSettings(plugins={"hostile": PluginGrant(secrets={"TOKEN": "HOSTILE_TOKEN"}, allow_private=True)})
    plugin = sandbox_plugin.sandboxed_plugin("plugdeck_hostile:plugin", "hostile", settings=settings,
                                             paths=[str(world["site"])], resolver=resolve)
    plugin.events = events
    yield plugin
    await plugin.close()
    sandbox_plugin.LISTENERS.remove(events.append)
    assert not _processes_of(plugin.runtime), "a process of the plugin outlived its sandbox"


def _processes_of(runtime) -> list[int]:
    """Host processes running as the plugin's own UID."""
    from plugdeck.plugins.sandbox.launch import Launch

    uid = Launch(name=runtime.name, entry_point="", limits=runtime.limits).uid
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if any(line.split()[1:2] == [str(uid)] for line in status.splitlines() if line.startswith("Uid:")):
            found.append(int(pid))
    return found


async def call(plugin, tool, **arguments):
    return await plugin.tool(tool).call(arguments)


async def test_the_legitimate_tool_works_and_the_plugin_is_described_from_inside(hostile):
    assert await call(hostile, "add", a=2, b=3) == 5
    assert hostile.version == "6.6.6" and "sandboxed" in hostile.source
    assert hostile.needs["sandbox"]["limits"]["processes"] == 32


async def test_it_cannot_read_the_home_the_run_store_or_system_secrets(hostile, world):
    for path in (world["home"] / ".ssh" / "id_rsa", world["data"] / "runs.db", "/etc/shadow", "/etc/passwd",
                 "/root/.ssh/id_rsa"):
        assert (await call(hostile, "read_file", path=str(path))).startswith("ERR:"), path
    assert (await call(hostile, "listing", path=str(world["home"]))).startswith("ERR:")
    top = (await call(hostile, "listing", path="/")).split(",")
    assert "home" not in top
    # The checkout holding plugdeck's source is on the way to a bound folder: traversable, not listable
    # (wherever it lies: /work/main here, elsewhere in CI).
    checkout = Path(__file__).resolve().parents[2]
    assert await call(hostile, "listing", path=str(checkout)) == "ERR:EACCES"
    assert await call(hostile, "listing", path="/etc") == "ERR:EACCES"  # only the linker's index is there


async def test_it_sees_no_environment_of_plugdecks(hostile):
    seen = await call(hostile, "environment")
    assert seen["uid"] != 0 and seen["pids"] == 1  # its own PID namespace, alone in it
    # The sandbox's own few (bwrap's --setenv, the runner's PYDANTIC_DISABLE_PLUGINS), nothing of plugdeck's
    assert set(seen["environ"]) <= {"HOME", "TMPDIR", "PATH", "PYTHONDONTWRITEBYTECODE", "PWD", "LC_CTYPE",
                                    "PYDANTIC_DISABLE_PLUGINS"}
    everything = json.dumps(seen)
    assert CANARY not in everything and TOKEN not in everything  # /proc/1/environ and cmdline included
    assert "HOSTILE_TOKEN" not in everything


async def test_it_has_no_network_of_its_own(hostile, world):
    # No interface but a down loopback, and the seccomp allowlist refuses any socket but AF_UNIX (EPERM).
    assert await call(hostile, "connect", host="127.0.0.1", port=world["canary"].port) == "ERR:EPERM"
    assert await call(hostile, "connect", host="192.0.2.1", port=80) == "ERR:EPERM"
    assert world["canary"].connections == 0


async def test_the_kernels_doors_stay_shut(hostile):
    """The seccomp allowlist (and no capabilities): what an escape would use fails with EPERM."""
    tried = await call(hostile, "kernel_doors")
    assert tried == dict.fromkeys(tried, "EPERM") | {k: "ERR:EPERM" for k in tried if k.startswith("socket_")}, tried
    assert len(tried) == 10


async def test_a_declared_host_is_reached_through_the_proxy_and_recorded(hostile, world):
    hostile.events.clear()
    direct = await call(hostile, "fetch", url=f"http://127.0.0.1:{world['port']}/forecast?city=Oslo")
    by_name = await call(hostile, "fetch", url=f"http://weather.test:{world['port']}/today")
    assert direct["status"] == 200 and json.loads(direct["body"])["path"] == "/forecast?city=Oslo"
    assert by_name["status"] == 200
    egress = [e for e in hostile.events if e["kind"] == "egress"]
    assert [(e["allowed"], e["status"]) for e in egress] == [(True, 200), (True, 200)]
    assert egress[0]["url"] == f"http://127.0.0.1:{world['port']}/forecast" and egress[0]["received"] > 0


@pytest.mark.parametrize("url, why", [
    ("http://api.example.com/steal", "not among the hosts"),
    ("http://127.0.0.1:{canary}/", "not among the hosts"),
    ("http://0x7f.1:{canary}/", "not among the hosts"),
    ("http://169.254.169.254/latest/meta-data/", "not among the hosts"),
])
async def test_undeclared_hosts_are_refused_and_reported(hostile, world, url, why):
    hostile.events.clear()
    url = url.format(canary=world["canary"].port)
    answer = await call(hostile, "fetch", url=url)
    assert answer["status"] == 403 and why in answer["body"], answer
    [record] = [e for e in hostile.events if e["kind"] == "egress"]
    assert record["allowed"] is False and why in record["reason"]
    assert world["canary"].connections == 0


async def test_each_event_reaches_the_listeners_inside_the_call_that_caused_it(hostile, world):
    """What the run log hooks: a listener runs in the calling task's context, so a run can file the
    event (an egress request made by the plugin, processes killed after the call) under itself."""
    run = contextvars.ContextVar("run", default=None)
    seen = []

    def listener(event):
        seen.append((event["kind"], event.get("tool"), run.get()))

    sandbox_plugin.LISTENERS.append(listener)
    try:
        run.set("run-1")
        await call(hostile, "fetch", url=f"http://127.0.0.1:{world['canary'].port}/")
        run.set("run-2")
        await call(hostile, "daemon")
    finally:
        sandbox_plugin.LISTENERS.remove(listener)
    assert seen == [("egress", "fetch", "run-1"), ("killed_leftovers", "daemon", "run-2")]


async def test_its_secret_arrives_per_call_and_is_blanked_from_its_output(hostile, world):
    Echo.seen.clear()
    answer = await call(hostile, "fetch", url=f"http://127.0.0.1:{world['port']}/private", token=True)
    assert Echo.seen[-1]["authorization"] == f"Bearer {TOKEN}"  # the service got the real secret
    assert answer["status"] == 200 and TOKEN not in json.dumps(answer) and "[redacted]" in answer["body"]
    echoed = await call(hostile, "echo_secret")
    assert set(echoed.values()) == {"[redacted]"}


async def test_it_writes_only_to_its_scratch(hostile, world):
    for path in ("/usr/evil", f"{world['site']}/evil.py", "/evil", "/work/evil"):
        assert (await call(hostile, "write", path=path)).startswith("ERR:"), path
    assert not (world["site"] / "evil.py").exists()
    assert await call(hostile, "write", path="/tmp/notes.txt") == "written"


async def test_a_fork_bomb_stops_at_the_process_limit_and_its_children_are_killed(hostile):
    hostile.events.clear()
    bomb = await call(hostile, "fork_bomb", count=1000)
    assert bomb["forked"] < 32 and bomb["error"] == "ERR:EAGAIN"
    assert [e["processes"] for e in hostile.events if e["kind"] == "killed_leftovers"] == [bomb["forked"]]
    assert await call(hostile, "add", a=1, b=1) == 2


async def test_a_4_gb_allocation_fails_inside_and_the_plugin_keeps_serving(hostile):
    with pytest.raises(ToolError) as refused:
        await call(hostile, "allocate", megabytes=4096)
    assert "memory_limit" in refused.value.message
    assert await call(hostile, "add", a=2, b=2) == 4


async def test_a_daemon_does_not_outlive_its_call(hostile):
    hostile.events.clear()
    await call(hostile, "daemon")
    assert [e["processes"] for e in hostile.events if e["kind"] == "killed_leftovers"] == [1]
    assert not any(Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/usr/bin/sleep")
                   for pid in _processes_of(hostile.runtime))


async def test_a_spinning_tool_is_killed_at_its_time_limit_then_the_sandbox_restarts(hostile):
    hostile.events.clear()
    with pytest.raises(ToolError) as killed:
        await call(hostile, "spin")
    assert killed.value.kind == "timeout" and "killed" in killed.value.message
    assert [e["reason"] for e in hostile.events if e["kind"] == "killed"] == ["wall-clock limit"]
    assert await call(hostile, "add", a=3, b=4) == 7


async def test_a_tool_past_the_cpu_limit_is_killed_by_the_kernel(hostile):
    hostile.events.clear()
    with pytest.raises(ToolError) as stopped:
        await call(hostile, "burn_cpu")
    assert stopped.value.kind == "sandbox_stopped" and "CPU 10 s" in stopped.value.message
    assert [e["kind"] for e in hostile.events] == ["stopped"]
    await asyncio.sleep(0.6)  # the MCP client's first restart backoff
    assert await call(hostile, "add", a=5, b=5) == 10


async def test_the_run_records_what_its_calls_did_in_the_sandbox(hostile, world, tmp_path):
    """Each sandbox event of a call an agent made becomes a SandboxNoted event of that run, filed under
    the call (egress allowed and refused with bytes, leftovers killed), kept by the run store and shown
    by `plugdeck runs show`."""
    from rich.console import Console

    from plugdeck import Agent, RunStore, ScriptedModel
    from plugdeck.cli.render import run_tree
    from plugdeck.events import SandboxNoted, event_from_dict

    turns = [{"tool_calls": [{"name": "fetch", "arguments": {"url": f"http://127.0.0.1:{world['port']}/run"}},
                             {"name": "fetch", "arguments": {"url": "http://api.example.com/steal"}}]},
             {"tool_calls": [{"name": "daemon", "arguments": {}}]},
             "done"]
    with RunStore(tmp_path / "runs.db") as store:
        run = await Agent(ScriptedModel(turns), [hostile], sinks=[store.record]).run("go")
        store.flush()  # the store writes from its own thread
        stored = store.get_run(run.id)
    assert run.status == "ok", run.error
    calls = {e.call_id: e.arguments for e in run.events if e.type == "tool_started"}
    noted = [e for e in stored["events"] if e["type"] == "sandbox"]
    # The two fetches ran concurrently (one model turn): their notes may come in either order.
    assert sorted((e["kind"], e["tool"], str(e["details"].get("allowed"))) for e in noted) == [
        ("egress", "hostile.fetch", "False"), ("egress", "hostile.fetch", "True"),
        ("killed_leftovers", "hostile.daemon", "None")]
    [allowed] = [e for e in noted if e["details"].get("allowed") is True]
    [refused] = [e for e in noted if e["details"].get("allowed") is False]
    [leftovers] = [e for e in noted if e["kind"] == "killed_leftovers"]
    assert calls[allowed["call_id"]]["url"].endswith("/run") and allowed["details"]["received"] > 0
    assert calls[refused["call_id"]]["url"] == "http://api.example.com/steal"
    assert "not among the hosts" in refused["details"]["reason"] and leftovers["details"]["processes"] == 1
    assert all(isinstance(event_from_dict(e), SandboxNoted) for e in noted)  # read back (resume, replay)
    console = Console(width=200, record=True)
    console.print(run_tree(stored))
    shown = console.export_text()
    assert "sandbox egress hostile.fetch" in shown and "allowed=False" in shown
    assert "sandbox killed_leftovers hostile.daemon" in shown and "processes=1" in shown
