"""The source of a hostile third-party plugin (installed into a temporary site by the tests): each tool
tries one thing a plugin must not do, and reports what happened instead of crashing."""

SOURCE = r'''
import base64
import errno
import os
import socket
import subprocess
import time

from plugdeck import Plugin, tool
from plugdeck.sandbox import http, secret


def _err(exc):
    return "ERR:" + (errno.errorcode.get(exc.errno, "") if getattr(exc, "errno", None) else type(exc).__name__)


@tool
def add(a: int, b: int) -> int:
    """The legitimate tool: add two numbers."""
    return a + b


@tool
def read_file(path: str) -> str:
    """Read a file."""
    try:
        with open(path, "rb") as f:
            return f.read(200).decode("utf-8", "replace")
    except OSError as exc:
        return _err(exc)


@tool
def listing(path: str) -> str:
    """List a folder."""
    try:
        return ",".join(sorted(os.listdir(path)))
    except OSError as exc:
        return _err(exc)


@tool
def environment() -> dict:
    """Everything the process can learn of environments: its own and every /proc/*/environ and cmdline."""
    seen = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for part in ("environ", "cmdline"):
                try:
                    with open(f"/proc/{pid}/{part}", "rb") as f:
                        seen[f"{pid}/{part}"] = f.read().decode("utf-8", "replace")
                except OSError as exc:
                    seen[f"{pid}/{part}"] = _err(exc)
    return {"environ": dict(os.environ), "proc": seen, "uid": os.getuid(), "pids": len(seen) // 2}


@tool
def connect(host: str, port: int) -> str:
    """Open a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return "connected"
    except OSError as exc:
        return _err(exc)


@tool
def fetch(url: str, token: bool = False) -> dict:
    """GET a URL through the platform's proxy, with the plugin's secret if asked."""
    headers = {"Authorization": "Bearer " + secret("TOKEN")} if token else {}
    try:
        with http.client(timeout=10) as web:
            answer = web.get(url, headers=headers)
    except Exception as exc:
        return {"status": None, "error": f"{type(exc).__name__}: {exc}"}
    return {"status": answer.status_code, "body": answer.text[:500]}


@tool
def echo_secret() -> dict:
    """Give the secret back, plainly and encoded: the platform must blank both."""
    value = secret("TOKEN")
    return {"plain": value, "b64": base64.b64encode(value.encode()).decode(), "hex": value.encode().hex()}


@tool
def write(path: str) -> str:
    """Write a file."""
    try:
        with open(path, "w") as f:
            f.write("written by the plugin")
        return "written"
    except OSError as exc:
        return _err(exc)


@tool
def fork_bomb(count: int) -> dict:
    """Fork `count` sleeping children."""
    forked, error = 0, None
    for _ in range(count):
        try:
            pid = os.fork()
        except OSError as exc:
            error = _err(exc)
            break
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        forked += 1
    return {"forked": forked, "error": error}


@tool
def allocate(megabytes: int) -> int:
    """Allocate memory."""
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


@tool(timeout=3)
def spin() -> str:
    """Spin the CPU forever."""
    while True:
        pass


@tool(timeout=60)
def burn_cpu() -> str:
    """Spin the CPU past the plugin's CPU-seconds limit (its wall time is longer)."""
    while True:
        pass


@tool
def kernel_doors() -> dict:
    """Knock on the kernel's doors a sandbox escape needs."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def attempt(result):
        return "ok" if result == 0 or result > 0 else errno.errorcode.get(ctypes.get_errno(), "?")

    tried = {
        "unshare_user": attempt(libc.unshare(0x10000000)),
        "unshare_net": attempt(libc.unshare(0x40000000)),
        "ptrace_traceme": attempt(libc.ptrace(0, 0, 0, 0)),
        "mount_tmpfs": attempt(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
        "keyctl": attempt(libc.syscall(250, 0, 0, 0, 0, 0)),
        "bpf": attempt(libc.syscall(321, 0, 0, 0)),
        "userfaultfd": attempt(libc.syscall(323, 0)),
    }
    for family, name in ((socket.AF_NETLINK, "netlink"), (socket.AF_INET, "inet"), (socket.AF_PACKET, "packet")):
        try:
            socket.socket(family, socket.SOCK_RAW if family != socket.AF_INET else socket.SOCK_STREAM).close()
            tried[f"socket_{name}"] = "ok"
        except OSError as exc:
            tried[f"socket_{name}"] = _err(exc)
    return tried


@tool
def daemon() -> int:
    """Leave a process behind, detached."""
    child = subprocess.Popen(["/usr/bin/sleep", "1000"], start_new_session=True)
    return child.pid


plugin = Plugin(
    name="hostile", version="6.6.6", description="Tries everything",
    tools=[add, read_file, listing, environment, connect, fetch, echo_secret, write, fork_bomb, allocate, spin,
           burn_cpu, daemon, kernel_doors],
    needs={"network": NETWORK, "secrets": ["TOKEN"], "scratch": "session",
           "limits": {"memory_mb": 768, "cpu_s": 10, "processes": 32, "file_size_mb": 1, "wall_s": 30}},
)
'''


def source(network: list[str]) -> str:
    return SOURCE.replace("NETWORK", repr(network))
