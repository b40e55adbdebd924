"""`python -m plugdeck.plugins.sandbox.confine -- COMMAND [ARG...]`: inside the sandbox, load the seccomp
allowlist, then become COMMAND (execve). For an MCP server added with `plugins add mcp --sandbox`:
it is not a Python plugin the runner could load, so the filter is put in place here and survives the
exec (no_new_privs is set by the launch), and the server runs under it from its first instruction.
"""

from __future__ import annotations

import os
import shutil
import sys

from .runner import NO_SECCOMP


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m plugdeck.plugins.sandbox.confine -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0])  # found before the filter closes in
    if program is None:
        print(f"{argv[0]}: no such command inside the sandbox (PATH={os.environ.get('PATH', '')})", file=sys.stderr)
        return 127
    from .seccomp import SeccompUnavailable, install

    try:
        install()
    except SeccompUnavailable as exc:
        print(f"no seccomp filter: {exc}", file=sys.stderr)
        return NO_SECCOMP
    try:
        os.execv(program, argv)
    except OSError as exc:
        print(f"{program}: {exc.strerror}", file=sys.stderr)
        return 126


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
