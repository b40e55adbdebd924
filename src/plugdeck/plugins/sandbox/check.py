"""The start-up self-test: does the sandbox hold on this machine? (R18: fail closed.)

It starts the runner in `--self-test` mode under the real launch command, with a canary value in the
environment it is started from, and checks what the runner saw: an unprivileged UID with no
capabilities and no_new_privs, no network, an environment holding nothing of plugdeck's, and the
canary in no process's /proc/*/environ. Run once per process; the answer is kept.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
from dataclasses import dataclass

from .launch import Launch, SandboxUnavailable, command
from .limits import Limits
from .runner import NO_SECCOMP

log = logging.getLogger("plugdeck.sandbox")

ALLOWED_ENV = {"HOME", "TMPDIR", "PATH", "PYTHONDONTWRITEBYTECODE", "PWD", "LC_CTYPE"}  # PEP 538 sets LC_CTYPE
OVERRIDE = "PLUGDECK_UNSANDBOXED_PLUGINS"  # =1: run third-party plugins in process, logged (operator only)


@dataclass(frozen=True)
class SandboxCheck:
    ok: bool
    problem: str = ""


_checked: SandboxCheck | None = None


def check_sandbox(*, again: bool = False) -> SandboxCheck:
    global _checked
    if _checked is None or again:
        _checked = _run_check()
    return _checked


def _run_check() -> SandboxCheck:
    canary = "plugdeck-canary-" + secrets.token_hex(8)
    try:
        argv = command(Launch(name="self-test", entry_point="-", limits=Limits(), mode="self-test"))
        done = subprocess.run(argv, env={"PLUGDECK_SANDBOX_CANARY": canary}, capture_output=True, text=True,
                              timeout=30)
    except SandboxUnavailable as exc:
        return SandboxCheck(False, str(exc))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SandboxCheck(False, f"the sandbox did not start: {exc}")
    if done.returncode == NO_SECCOMP:
        return SandboxCheck(False, done.stderr.strip().splitlines()[-1])
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return SandboxCheck(False, f"bubblewrap failed (exit {done.returncode}): {tail}. Unprivileged user "
                                   "namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, AppArmor)")
    try:
        seen = json.loads(done.stdout)
    except json.JSONDecodeError:
        return SandboxCheck(False, f"the sandbox's self-test printed no report: {done.stdout[:200]!r}")
    problems = []
    if seen["uid"] == 0 or seen["euid"] == 0:
        problems.append("the plugin ran as root")
    if int(seen["cap_eff"] or "0", 16) or int(seen["cap_bnd"] or "0", 16):
        problems.append(f"the plugin kept capabilities (effective {seen['cap_eff']}, bounding {seen['cap_bnd']})")
    if seen["no_new_privs"] != "1" and seen["uid"] != 0:
        problems.append("no_new_privs is not set")
    if seen["seccomp"] != "2":
        problems.append("no seccomp filter is loaded")
    if seen["unshare"] == "allowed":
        problems.append("the plugin could make a user namespace")
    for where in ("net_loopback", "net_outside"):
        if seen[where] == "connected":
            problems.append(f"the plugin reached the network ({where})")
    extra = set(seen["env"]) - ALLOWED_ENV
    if extra:
        problems.append(f"the plugin's environment holds {sorted(extra)}")
    if any(canary in text for text in seen["environs"].values()):
        problems.append("plugdeck's environment shows through /proc/*/environ")
    if isinstance(seen["root_home"], list) and seen["root_home"]:
        problems.append(f"/root's contents are visible: {seen['root_home']}")
    if problems:
        return SandboxCheck(False, "the sandbox self-test failed: " + "; ".join(problems))
    return SandboxCheck(True)


def require_sandbox() -> None:
    """Raise SandboxUnavailable, with what to do, when third-party code cannot run sandboxed here."""
    found = check_sandbox()
    if not found.ok:
        raise SandboxUnavailable(
            f"third-party plugins run only in the sandbox, and it does not work here: {found.problem}. Install "
            f"bubblewrap (apt-get install -y bubblewrap) and allow unprivileged user namespaces, or, knowing "
            f"the plugin's code runs with all of plugdeck's rights, set {OVERRIDE}=1")


def override_set() -> bool:
    import os

    if os.environ.get(OVERRIDE) == "1":
        log.warning("%s=1: third-party plugins run inside plugdeck's process, unsandboxed, with its rights, "
                    "files and secrets", OVERRIDE)
        return True
    return False
