"""The seccomp filter every sandboxed child loads: built once with libseccomp, shipped as raw BPF.

An allow list (default deny with EPERM, so user code gets a clear `PermissionError`): only the
syscalls the interpreters need, and for the calls that do several things (`clone`, `fcntl`, `ioctl`,
`prctl`, `socketpair`, scheduling and limits) only the harmless variants. A syscall added to the
kernel later is denied without anyone listing it (a deny list missed `open_tree_attr` and
`listmount`). Syscalls of other architectures and x32 kill the process (libseccomp's default).

What stays out, and why: new processes and programs, sockets (`socketpair` of AF_UNIX only, so
asyncio's self-pipe works), signals to anything but the caller's own threads (`kill`, `tgkill`, and
`F_SETOWN`/`F_SETSIG`/`FIOSETOWN`, which make the kernel signal a chosen pid), tracing, namespaces
and mounts, identity changes, SysV IPC and POSIX queues (they outlive the run and are not counted by
RLIMIT_AS), `memfd_create`, `mlock`, inotify/fanotify, scheduling and priority of other processes,
and the kernel's attack surface (bpf, io_uring, userfaultfd, keyctl, perf, modules).
"""

from __future__ import annotations

import errno
import tempfile
from typing import Any

__all__ = ["ALLOWED_SYSCALLS", "build_filter_bpf", "build_limits_bpf"]

ALLOWED_SYSCALLS = (
    # reading and writing open files, pipes and the socketpair
    "read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek close "
    "close_range dup dup2 dup3 pipe pipe2 sendfile copy_file_range splice tee fsync fdatasync "
    "sync_file_range ftruncate fallocate flock readahead fadvise64 "
    "sendmsg recvmsg sendto recvfrom sendmmsg recvmmsg shutdown getsockopt setsockopt "
    "getsockname getpeername "
    # paths (Landlock decides which; metadata of the sandbox's own files only)
    "open openat openat2 creat stat fstat lstat newfstatat statx access faccessat faccessat2 "
    "readlink readlinkat getdents getdents64 getcwd chdir fchdir mkdir mkdirat rmdir rename "
    "renameat renameat2 link linkat unlink unlinkat symlink symlinkat chmod fchmod fchmodat "
    "fchmodat2 umask utime utimes utimensat futimesat truncate statfs fstatfs getxattr "
    "lgetxattr fgetxattr listxattr llistxattr flistxattr "
    # memory
    "brk mmap munmap mremap mprotect madvise msync mincore membarrier "
    # threads, time and waiting
    "exit exit_group wait4 waitid set_tid_address set_robust_list get_robust_list rseq futex "
    "futex_waitv arch_prctl sched_yield sched_getaffinity sched_getparam sched_getscheduler "
    "sched_get_priority_max sched_get_priority_min sched_rr_get_interval getpriority getcpu "
    "clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday time "
    "select pselect6 poll ppoll epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait "
    "epoll_pwait2 eventfd eventfd2 timerfd_create timerfd_settime timerfd_gettime "
    # signals to itself
    "rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigsuspend rt_sigtimedwait "
    "sigaltstack pause alarm getitimer setitimer timer_create timer_settime timer_gettime "
    "timer_getoverrun timer_delete signalfd signalfd4 restart_syscall "
    # identity and limits, read only
    "getpid gettid getppid getpgrp getpgid getsid getuid geteuid getgid getegid getresuid "
    "getresgid getgroups capget getrlimit getrusage times sysinfo uname getrandom"
).split()

_CLONE_THREAD = 0x00010000
# A thread may not be cloned into new namespaces (seen: threads with CLONE_NEWUTS/NEWIPC/NEWNET).
_CLONE_NAMESPACES = (
    0x00000080  # CLONE_NEWTIME
    | 0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
# fcntl commands that only read or act on the caller's own descriptors. Left out: F_SETOWN (8),
# F_SETSIG (10), F_SETOWN_EX (15), F_SETLEASE (1024), F_NOTIFY (1026): each makes the kernel
# send a signal to a process of the caller's choosing.
_FCNTL_COMMANDS = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    9,
    11,
    16,
    36,
    37,
    38,
    1025,
    1030,
    1031,
    1032,
    1033,
    1034,
)
# ioctl requests the runtimes make: TCGETS and TIOCGWINSZ (isatty, terminal size; ENOTTY here),
# FIONREAD, FIONBIO, FIONCLEX, FIOCLEX. FIOSETOWN/SIOCSPGRP (F_SETOWN by another name) stay out.
_IOCTL_REQUESTS = (0x5401, 0x5413, 0x541B, 0x5421, 0x5450, 0x5451)
# prctl options: PDEATHSIG (1, 2), GET_DUMPABLE (3), GET_KEEPCAPS (7), GET_NAME (16),
# GET/SET_SECCOMP (21, 22: stacking a filter only narrows), CAPBSET_READ (23), GET_TIMERSLACK (30),
# SET/GET_NO_NEW_PRIVS (38, 39), GET_THP_DISABLE (42), GET_SPECULATION_CTRL (52). Not SET_NAME:
# no runtime uses it, and a snippet renamed itself "postgres: walwriter" in the host's `ps`.
_PRCTL_OPTIONS = (1, 2, 3, 7, 16, 21, 22, 23, 30, 38, 39, 42, 52)
_AF_UNIX = 1
_PRIO_PROCESS = 0
_IOCTL_REQUEST_MASK = 0xFFFFFFFF  # the request is a 32-bit int: ignore what the upper half holds


def build_filter_bpf(*, allow_exec: bool = False, lock_limits: bool = True) -> bytes:
    """The filter as a BPF program (raw `struct sock_filter` array).

    `allow_exec` keeps `execve` for the Node.js launcher, which must exec node once; Landlock then
    allows executing nothing but node and the dynamic loader. `lock_limits=False` keeps
    `setrlimit` on the caller itself: a zygote's child loads that filter while it waits for a
    request (attaching costs ~100 µs), sets the request's limits, then stacks `build_limits_bpf()`
    before user code runs.
    """
    import pyseccomp as seccomp

    program = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))
    allow = seccomp.ALLOW
    names = [*ALLOWED_SYSCALLS, *(["execve"] if allow_exec else [])]
    if not lock_limits:
        names.append("setrlimit")
    for name in names:
        _add(program, allow, name)
    # clone3 passes its flags in memory a filter cannot read; glibc falls back to clone on ENOSYS.
    _add(program, seccomp.ERRNO(errno.ENOSYS), "clone3")
    # clone makes threads only: CLONE_THREAD set and no namespace flag.
    mask = _CLONE_THREAD | _CLONE_NAMESPACES
    _add(program, allow, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, mask, _CLONE_THREAD))
    for command in _FCNTL_COMMANDS:
        _add(program, allow, "fcntl", seccomp.Arg(1, seccomp.EQ, command))
    for request in _IOCTL_REQUESTS:
        masked = seccomp.Arg(1, seccomp.MASKED_EQ, _IOCTL_REQUEST_MASK, request)
        _add(program, allow, "ioctl", masked)
    for option in _PRCTL_OPTIONS:
        _add(program, allow, "prctl", seccomp.Arg(0, seccomp.EQ, option))
    _add(program, allow, "socketpair", seccomp.Arg(0, seccomp.EQ, _AF_UNIX))
    # Priority and CPU placement of the caller only (pid 0), never of another process.
    self_only = seccomp.Arg(0, seccomp.EQ, _PRIO_PROCESS), seccomp.Arg(1, seccomp.EQ, 0)
    _add(program, allow, "setpriority", *self_only)
    _add(program, allow, "sched_setaffinity", seccomp.Arg(0, seccomp.EQ, 0))
    # prlimit64 on the caller: reading always; setting only until the limits filter is stacked.
    reading = seccomp.Arg(0, seccomp.EQ, 0), seccomp.Arg(2, seccomp.EQ, 0)
    _add(program, allow, "prlimit64", *reading)
    if not lock_limits:
        _add(program, allow, "prlimit64", seccomp.Arg(0, seccomp.EQ, 0))
    return _export(program)


def build_limits_bpf() -> bytes:
    """The small filter that forbids changing rlimits, stacked on `build_filter_bpf(lock_limits=False)`."""
    import pyseccomp as seccomp

    deny = seccomp.ERRNO(errno.EPERM)
    program = seccomp.SyscallFilter(seccomp.ALLOW)
    program.add_rule(deny, "setrlimit")
    # prlimit64 may read limits but never set them.
    program.add_rule(deny, "prlimit64", seccomp.Arg(2, seccomp.NE, 0))
    return _export(program)


def _add(program: Any, action: Any, name: str, *conditions: Any) -> None:
    try:
        program.add_rule(action, name, *conditions)
    except (OSError, ValueError, RuntimeError) as exc:
        # A name this architecture lacks (e.g. `open` on aarch64) is fine; anything else is a bug.
        import pyseccomp as seccomp

        try:
            seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        except (OSError, ValueError, RuntimeError):
            return
        raise RuntimeError(f"seccomp rule for {name} was refused: {exc}") from exc


def _export(program: Any) -> bytes:
    with tempfile.TemporaryFile() as handle:
        program.export_bpf(handle)
        handle.seek(0)
        bpf = handle.read()
    if not bpf or len(bpf) % 8:
        raise RuntimeError(f"libseccomp exported a malformed program ({len(bpf)} bytes)")
    return bpf
