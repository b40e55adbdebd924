"""The command line that starts a plugin's runner inside bubblewrap.

    env -i  prlimit --as --cpu --nproc --fsize --nofile --  bwrap ...  [setpriv --reuid U]  python -I -m
        plugdeck.plugins.sandbox.runner ENTRYPOINT

- `env -i`: bwrap itself starts with an empty environment. Its PID-1 reaper would otherwise show that
  environment in /proc/1/environ inside the sandbox (security-requirements §3); `--as-pid-1` also
  removes the reaper, and `--clearenv` empties the runner's own environment. No secret is ever in argv.
- bwrap: new PID, network (no interfaces but a down loopback), IPC, UTS and cgroup namespaces; a
  read-only view of /usr, the Python it needs and the plugin's environment (sys.path); a private
  size-capped tmpfs at /tmp as scratch (read-only when the plugin gets no scratch); no home, no
  PLUGDECK_HOME, no /etc, except the read-only `mounts` the platform names (a store package's own
  files, a knowledge base the operator granted); `--die-with-parent`, so killing bwrap kills the whole tree.
- The plugin's real UID is never root: RLIMIT_NPROC is not enforced for root. Started by root,
  bwrap runs privileged (no user namespace), keeps only CAP_SETUID/CAP_SETGID, and `setpriv` drops to
  the plugin's own unprivileged UID with no capabilities and no_new_privs before Python starts.
  Started by anyone else, bwrap makes a user namespace and drops every capability; the UID is then
  the operator's own (the operator's processes count against RLIMIT_NPROC: see the README).
"""

from __future__ import annotations

import os
import shutil
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserError
from .limits import Limits

EGRESS_SOCKET = "/run/plugdeck/egress.sock"  # where the platform's egress proxy appears inside
UID_BASE, UID_SPAN = 200_000, 100_000  # one unprivileged UID per plugin, so NPROC is counted per plugin
MB = 1024 * 1024
SERVER_ENV_DROPPED = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")  # the MCP SDK's defaults for a server


class SandboxUnavailable(UserError, RuntimeError):
    """bubblewrap, prlimit or setpriv is missing, or the kernel refuses what the sandbox needs."""


@dataclass(frozen=True)
class Mount:
    """A folder of this machine shown read-only inside the sandbox; chosen by the platform, never by a plugin."""

    source: str  # here
    target: str  # inside the sandbox
    importable: bool = False  # put on the runner's import path (a store package's lib/)


@dataclass
class Launch:
    """What one sandboxed runner is started with."""

    name: str  # the plugin's name
    entry_point: str  # module:attribute
    limits: Limits
    egress_socket: str | None = None  # the proxy's socket on this side; None: no network at all
    paths: list[str] = field(default_factory=list)  # read-only binds beyond /usr and Python itself
    mode: str = "serve"  # serve (MCP over stdio) | describe (print the manifest) | self-test
    sdk: bool = False  # serve with the MCP SDK's server rather than the runner's own (for comparison)
    mounts: list[Mount] = field(default_factory=list)
    scratch: bool = True  # False: /tmp is an empty read-only folder
    # An MCP server's own command, run (under confine.py's seccomp filter) instead of the runner. Its
    # environment is the one the MCP client gives it (its mapped secrets), less the client's defaults.
    server: list[str] | None = None

    @property
    def uid(self) -> int:
        return UID_BASE + zlib.crc32(self.name.encode()) % UID_SPAN


def tool_path(name: str) -> str:
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not found:
        raise SandboxUnavailable(f"{name} is not installed (Debian: apt-get install -y "
                                 f"{'bubblewrap' if name == 'bwrap' else 'util-linux'})")
    return found


def command(launch: Launch) -> list[str]:
    limits = launch.limits
    python = sys.executable
    prlimit = [tool_path("prlimit"), f"--as={limits.memory_mb * MB}", f"--cpu={limits.cpu_s}",
               f"--nproc={limits.processes}", f"--fsize={limits.file_size_mb * MB}", f"--nofile={limits.open_files}"]
    bwrap = [
        tool_path("bwrap"), "--die-with-parent", "--new-session", "--as-pid-1",
        *(["--clearenv"] if not launch.server else
          [arg for var in SERVER_ENV_DROPPED for arg in ("--unsetenv", var)]),
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr",
        *[arg for link in ("bin", "lib", "lib64", "sbin") if os.path.islink(f"/{link}")
          for arg in ("--symlink", os.readlink(f"/{link}"), f"/{link}")],
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(limits.scratch_mb * MB), "--perms", "1777", "--tmpfs", "/tmp",
        "--dir", "/run/plugdeck",
        # The dynamic linker's index, nothing else of /etc: ctypes finds libseccomp through it.
        *(["--perms", "0711", "--dir", "/etc", "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
          if os.path.exists("/etc/ld.so.cache") else []),
    ]
    made: set[Path] = set()
    for path in python_paths(launch.paths):
        # The folders on the way are made traversable, not listable (bwrap would make them 0700 as the
        # sandbox's root: the plugin's UID could not reach Python under pyenv's /root/.pyenv, say).
        for folder in reversed(Path(path).parents[:-1]):
            if folder not in made and folder != Path("/tmp"):
                bwrap += ["--perms", "0711", "--dir", str(folder)]
                made.add(folder)
        bwrap += ["--ro-bind", path, path]
    if launch.egress_socket:
        bwrap += ["--ro-bind", launch.egress_socket, EGRESS_SOCKET]
    for mount in launch.mounts:
        bwrap += ["--ro-bind", mount.source, mount.target]
    if not launch.scratch:
        bwrap += ["--remount-ro", "/tmp"]
    bwrap += ["--remount-ro", "/", "--chdir", "/tmp",
              "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
              "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    if os.geteuid() == 0:
        uid = str(launch.uid)
        bwrap += ["--cap-drop", "ALL", *[arg for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
                                         for arg in ("--cap-add", cap)], "--"]
        bwrap += [tool_path("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                  "--bounding-set=-all", "--no-new-privs", "--"]
    else:
        bwrap += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--"]
    if launch.server:
        # No `env -i` here: the server's secrets come in the environment (bwrap's --as-pid-1 leaves no
        # process of bwrap's inside to show it; the MCP client's defaults were unset above).
        confine = [python, "-I", "-m", "plugdeck.plugins.sandbox.confine", "--", *launch.server]
        return [*prlimit, "--", *bwrap, *confine]
    runner = [python, "-I", "-m", "plugdeck.plugins.sandbox.runner", f"--{launch.mode}", "--name", launch.name]
    for path in [*(m.target for m in launch.mounts if m.importable), *sys_path_for_runner(launch.paths)]:
        runner += ["--path", path]
    if launch.egress_socket:
        runner += ["--egress", EGRESS_SOCKET]
    if launch.sdk:
        runner += ["--sdk"]
    return ["/usr/bin/env", "-i", *prlimit, "--", *bwrap, *runner, launch.entry_point]


def _private_places() -> list[Path]:
    """Never shown to a plugin, nor inside them: the home folder and PLUGDECK_HOME (run store, keys)."""
    home = os.environ.get("PLUGDECK_HOME") or Path.home() / ".local" / "share" / "plugdeck"
    return [Path.home().resolve(), Path(home).expanduser().resolve()]


def _safe(path: Path) -> bool:
    """Neither the root, nor a folder that is or holds the home, PLUGDECK_HOME or the working folder (a
    project's plugdeck.toml and data), nor anything inside PLUGDECK_HOME. A folder inside the home is
    bound only when it is on the import path itself (pip --user's ~/.local/lib/pythonX/site-packages)."""
    if path == Path("/") or not path.is_dir():
        return False
    private = _private_places()
    for place in [*private, Path.cwd().resolve()]:
        if path == place or path in place.parents:
            return False
    return private[1] not in path.parents


def sys_path_for_runner(extra: list[str]) -> list[str]:
    """The import path the runner gets: this process's, less what a plugin must not see."""
    seen: list[str] = []
    for entry in [*extra, *sys.path]:
        if not entry:
            continue
        path = Path(entry).resolve()
        if str(path) not in seen and _safe(path):
            seen.append(str(path))
    return seen


def python_paths(extra: list[str]) -> list[str]:
    """Read-only binds: the interpreter (venv and base, which may live in a home, like pyenv's),
    plugdeck itself and the safe part of the import path, cut to their outermost folders; /usr is
    bound whole."""
    import plugdeck

    interpreter = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix),
                   Path(os.path.realpath(sys.executable)).parent.parent]
    wanted = {p.resolve() for p in interpreter if p.resolve() not in _private_places()}
    wanted.add(Path(plugdeck.__file__).resolve().parent.parent)
    wanted |= {Path(p) for p in sys_path_for_runner(extra)}
    roots: list[Path] = []
    for path in sorted(wanted, key=lambda p: len(p.parts)):
        inside = [Path("/usr"), *roots]
        if path.is_dir() and not any(r == path or r in path.parents for r in inside):
            roots.append(path)
    return [str(p) for p in roots]
