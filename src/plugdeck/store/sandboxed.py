"""A store Python package run in the sandbox, its consented permissions as the sandbox's policy.

The lock check has passed (runtime.py) before anything here runs. Then:

- the runner describes the package inside the sandbox (importing it runs its code), and the tools it
  defines must be the ones consented to at install (their digests in plugdeck.lock);
- the permissions in the lock (what the person saw and consented to), never the `needs` the code
  declares about itself, become the sandbox's: network hosts -> the egress proxy's allowlist; secrets
  -> the broker, mapped by the operator in sandbox.toml; filesystem none | scratch | kb -> a read-only
  empty /tmp | a private scratch /tmp | a read-only empty /tmp plus the knowledge base the operator
  granted mounted read-only at /kb; limits -> rlimits and the wall clock, cut to the operator's ceiling;
- the package's own files (PLUGDECK_HOME is never shown to a plugin) are mounted read-only at
  /run/plugdeck/package and put on the runner's import path.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from pathlib import Path
from typing import Any

from ..plugins.base import Plugin
from . import lock

PACKAGE_MOUNT = "/run/plugdeck/package"
KB_MOUNT = "/kb"


def sandbox_needs(permissions: dict[str, Any]) -> dict[str, Any]:
    """The store manifest's permissions as the sandbox's `needs` (limits before the ceiling cuts them)."""
    asked = permissions.get("limits") or {}
    limits: dict[str, int] = {}
    if asked.get("memory_mb"):
        limits["memory_mb"] = int(asked["memory_mb"])
    if asked.get("cpu_seconds"):
        limits["cpu_s"] = max(1, math.ceil(asked["cpu_seconds"]))
    if asked.get("timeout"):
        limits["wall_s"] = max(1, math.ceil(asked["timeout"]))
    return {"network": list(permissions.get("network") or []), "secrets": list(permissions.get("secrets") or []),
            "limits": limits, "scratch": "session"}


def mounts_for(home: Path, plugin: str, permissions: dict[str, Any], folder: Path, settings: Any) -> tuple[list, bool]:
    """(read-only mounts, whether /tmp is writable scratch) for the package's filesystem permission."""
    from ..plugins.sandbox.launch import Mount

    mounts = [Mount(str(folder / "lib"), PACKAGE_MOUNT, importable=True)]
    filesystem = permissions.get("filesystem", "none")
    if filesystem == "kb":
        granted = settings.grant(plugin).knowledge
        if not granted:
            raise lock.LockError(f"the store plugin {plugin!r} declares a knowledge base (filesystem = 'kb'); name the "
                                 f"one it may read in {Path(home) / 'sandbox.toml'}: [plugins.{plugin}] "
                                 'knowledge = "NAME"')
        from ..plugins.knowledge.base import check_name, knowledge_home

        kb = knowledge_home(home) / check_name(granted)
        if not kb.is_dir():
            raise lock.LockError(f"the knowledge base {granted!r} granted to {plugin!r} does not exist ({kb})")
        mounts.append(Mount(str(kb), KB_MOUNT))
    return mounts, filesystem == "scratch"


def describe_in_sandbox(entry: dict[str, Any], mounts: list, settings: Any) -> dict[str, Any]:
    """The runner's description of the package (its code imported inside the sandbox only), kept on disk
    by the locked files' hashes: the files were just checked against the lock, so the same hashes mean
    the same code (and the runner, plugdeck's version, the same description)."""
    import sys

    from .. import __version__
    from ..plugins.sandbox import manifests
    from ..plugins.sandbox.launch import Launch, command
    from ..plugins.sandbox.limits import Limits
    from ..plugins.sandbox.plugin import SandboxError

    key = hashlib.sha256(json.dumps(["store", __version__, sys.executable, entry["entry_point"], entry["plugin"],
                                     entry["files"]], sort_keys=True).encode()).hexdigest()
    kept = manifests.cached(key)
    if kept is not None:
        return kept
    name = entry["plugin"]
    limits = Limits().within(settings.ceiling)
    argv = command(Launch(name=name, entry_point=entry["entry_point"], limits=limits, mode="describe",
                          mounts=mounts, scratch=False))
    try:
        done = subprocess.run(argv, env={}, capture_output=True, text=True, timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"store plugin {name!r} did not load within {limits.wall_s} s in its sandbox") from None
    if done.returncode != 0:
        from ..redaction import redact

        tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or f"exit status {done.returncode}"
        raise SandboxError(f"store plugin {name!r} failed to load in its sandbox: {redact(tail)}")
    try:
        described = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SandboxError(f"store plugin {name!r} printed something other than its manifest while loading") from None
    manifests.keep(key, described)
    return described


def sandboxed_store_plugin(home: Path, package: str, entry: dict[str, Any], folder: Path) -> Plugin:
    """The Plugin whose tools call the package's runner in its sandbox, under the consented permissions."""
    from ..plugins.sandbox.plugin import SandboxRuntime, _tool
    from ..plugins.sandbox.settings import SandboxSettings
    from .runtime import check_tools

    settings = SandboxSettings.load(home)
    name = entry["plugin"]
    permissions = entry.get("permissions") or {}
    mounts, scratch = mounts_for(home, name, permissions, folder, settings)
    described = describe_in_sandbox(entry, mounts, settings)
    check_tools(described.get("tools") or [], entry["tools"], package)
    # The consented permissions replace whatever the code says it needs; traits the runner described
    # (untrusted, private, capabilities) are kept, as for any sandboxed plugin.
    manifest = {**described, "name": name, "needs": sandbox_needs(permissions)}
    runtime = SandboxRuntime(name, entry["entry_point"], manifest, settings=settings, mounts=mounts, scratch=scratch)
    plugin = Plugin(name=name, tools=[_tool(runtime, d) for d in manifest.get("tools", [])],
                    version=entry["version"], description=str(described.get("description") or ""),
                    author=str(described.get("author") or ""), source=f"store {entry['store']}: {package}",
                    needs={**manifest["needs"], "filesystem": permissions.get("filesystem", "none"),
                           "sandbox": {"limits": runtime.limits.as_dict()}},
                    close=runtime.close)
    plugin.runtime = runtime  # for tests and the run log's hook
    return plugin
