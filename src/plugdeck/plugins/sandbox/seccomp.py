"""The runner's seccomp allowlist (R18), loaded before the plugin's code is imported.

An allowlist, not a denylist: a system call not named here fails with EPERM. What CPython, asyncio,
the MCP SDK and ordinary plugin code use (files, memory, threads, pipes, Unix sockets to the egress
proxy, fork/exec of helpers, clocks, signals) is allowed; what a sandbox escape or a kernel exploit
wants is not: ptrace, bpf, mount, unshare, setns, keyctl, userfaultfd, perf_event_open, io_uring, module
loading, process_vm_*, open_by_handle_at, and so on. Arguments are filtered where a call is dual-use:

- socket(): AF_UNIX only (the sandbox has no network, and netlink/packet sockets are kernel surface);
- clone(): no namespace flags (glibc's fork and thread creation use clone; a denylist on fork misses
  that, security-requirements §3); clone3 answers ENOSYS, so glibc falls back to clone, whose flags can
  be checked (clone3 passes them in memory, out of seccomp's sight);
- ioctl(): not TIOCSTI (typing into a terminal); bwrap's --new-session covers it too.

Uses pyseccomp (ctypes over the system's libseccomp2), from the `sandbox` extra.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager

from ...errors import UserError

ALLOWED = """
read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek close close_range
open openat openat2 creat stat fstat lstat newfstatat statx statfs fstatfs access faccessat faccessat2
readlink readlinkat getdents getdents64 getcwd chdir fchdir mkdir mkdirat rmdir unlink unlinkat rename
renameat renameat2 link linkat symlink symlinkat chmod fchmod fchmodat chown fchown fchownat lchown umask
truncate ftruncate fsync fdatasync sync_file_range flock fcntl dup dup2 dup3 pipe pipe2 utime utimes
utimensat futimesat sendfile copy_file_range splice tee fadvise64 fallocate memfd_create mknod mknodat
inotify_init1 inotify_add_watch inotify_rm_watch
mmap munmap mprotect mremap msync madvise mincore brk mlock munlock get_mempolicy membarrier
rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend rt_sigpending rt_sigtimedwait rt_sigqueueinfo
sigaltstack signalfd signalfd4 kill tgkill tkill pause alarm
select pselect6 poll ppoll epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2
eventfd eventfd2 timerfd_create timerfd_settime timerfd_gettime
nanosleep clock_nanosleep clock_gettime clock_getres gettimeofday time times getitimer setitimer
futex futex_waitv set_robust_list get_robust_list set_tid_address rseq sched_yield sched_getaffinity
sched_setaffinity sched_getparam sched_getscheduler sched_get_priority_max sched_get_priority_min
getpriority setpriority
fork vfork execve execveat wait4 waitid exit exit_group
getpid getppid gettid getpgrp getpgid setpgid getsid setsid getuid geteuid getgid getegid getgroups
getresuid getresgid uname sysinfo getrusage getrlimit prlimit64 arch_prctl prctl capget
getrandom
connect accept accept4 bind listen sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown
getsockname getpeername socketpair setsockopt getsockopt
ioctl
"""

CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
AF_UNIX = 1
TIOCSTI = 0x5412


class SeccompUnavailable(UserError, RuntimeError):
    """This machine cannot install the seccomp filter (no libseccomp, or the kernel refuses it)."""


@contextmanager
def _libraries_found_without_tmp():
    """pyseccomp looks libc and libseccomp up with ctypes.util.find_library as it is imported, whose
    fallbacks write to a temporary file: inside a sandbox with no writable /tmp (the default) that fails.
    Look in the usual library folders first."""
    import ctypes.util
    import glob

    real = ctypes.util.find_library
    known = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}

    def find(name: str) -> str | None:
        soname = known.get(name)
        if soname is not None:
            for folder in ("/lib/*-linux-gnu", "/usr/lib/*-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"):
                hits = glob.glob(f"{folder}/{soname}")
                if hits:
                    return hits[0]
        return real(name)

    ctypes.util.find_library = find
    try:
        yield
    finally:
        ctypes.util.find_library = real


def install() -> None:
    """Load the allowlist into this process (and so every thread and child it makes from now on)."""
    try:
        with _libraries_found_without_tmp():
            import pyseccomp as sc
    except ImportError:
        raise SeccompUnavailable("pyseccomp is not installed (pip install 'plugdeck[sandbox]')") from None
    except (RuntimeError, OSError) as exc:  # it looks libseccomp up as it is imported
        raise SeccompUnavailable(f"{exc} (Debian: apt-get install -y libseccomp2)") from None
    try:
        rules = sc.SyscallFilter(defaction=sc.ERRNO(errno.EPERM))
    except Exception as exc:  # libseccomp2 missing or too old
        raise SeccompUnavailable(f"libseccomp could not be used: {exc}") from None
    for name in ALLOWED.split():
        if name in ("ioctl",):
            continue
        try:
            rules.add_rule(sc.ALLOW, name)
        except Exception:  # a call this architecture does not have (open, stat on arm64, ...)
            continue
    rules.add_rule(sc.ALLOW, "socket", sc.Arg(0, sc.EQ, AF_UNIX))
    rules.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_NAMESPACES, 0))
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    rules.add_rule(sc.ALLOW, "ioctl", sc.Arg(1, sc.NE, TIOCSTI))
    rules.load()
