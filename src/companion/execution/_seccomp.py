"""The seccomp filter every sandboxed child loads: built once with libseccomp, shipped as raw BPF.

Default allow, with a deny list that fails with EPERM (so the user's code gets a clear
`PermissionError`): no new processes, no program execution, no sockets, no signals to others, no
tracing, no namespace or mount changes, no kernel attack surface (bpf, io_uring, userfaultfd,
keyctl, perf, modules). Syscalls of other architectures kill the process (libseccomp's default).
"""

from __future__ import annotations

import errno
import tempfile
from typing import Any

__all__ = ["DENIED_SYSCALLS", "build_filter_bpf", "build_limits_bpf"]

DENIED_SYSCALLS = (
    # processes and programs
    "fork vfork execve execveat "
    # network (every socket family, so no TCP, UDP, raw or unix sockets)
    "socket socketpair connect bind listen accept accept4 "
    # signals and introspection of other processes
    "kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo pidfd_open pidfd_send_signal pidfd_getfd "
    "ptrace process_vm_readv process_vm_writev kcmp process_madvise "
    # namespaces, mounts and identity
    "unshare setns mount umount2 pivot_root chroot fsopen fsmount fspick open_tree move_mount "
    "mount_setattr setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid "
    "capset personality "
    # kernel attack surface
    "bpf io_uring_setup io_uring_enter io_uring_register userfaultfd perf_event_open keyctl add_key "
    "request_key kexec_load kexec_file_load init_module finit_module delete_module "
    "open_by_handle_at name_to_handle_at fanotify_init memfd_secret "
    # host state
    "setrlimit sethostname setdomainname settimeofday clock_settime clock_adjtime adjtimex "
    "swapon swapoff reboot acct quotactl syslog iopl ioperm mknod mknodat seccomp vhangup"
).split()

_CLONE_THREAD = 0x00010000


def build_filter_bpf(*, allow_exec: bool = False, lock_limits: bool = True) -> bytes:
    """The filter as a BPF program (raw `struct sock_filter` array).

    `allow_exec` keeps `execve` for the Node.js launcher, which must exec node once; Landlock then
    allows executing nothing but node and the dynamic loader. `lock_limits=False` leaves out the
    rlimit rules: a zygote's child loads that filter while it waits for a request (attaching costs
    ~100 µs), sets the request's limits, then stacks `build_limits_bpf()` before user code runs.
    """
    import pyseccomp as seccomp

    deny = seccomp.ERRNO(errno.EPERM)
    program = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        if allow_exec and name in {"execve", "execveat"}:
            continue
        if not lock_limits and name == "setrlimit":
            continue
        try:
            program.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):
            continue  # not a syscall on this architecture
    # clone3 passes its flags in memory a filter cannot read; glibc falls back to clone on ENOSYS.
    program.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # clone is allowed for threads only: a clone without CLONE_THREAD is a new process.
    program.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD, 0))
    if lock_limits:
        _deny_limit_changes(program, deny)
    return _export(program)


def build_limits_bpf() -> bytes:
    """The small filter that forbids changing rlimits, stacked on `build_filter_bpf(lock_limits=False)`."""
    import pyseccomp as seccomp

    program = seccomp.SyscallFilter(seccomp.ALLOW)
    _deny_limit_changes(program, seccomp.ERRNO(errno.EPERM))
    return _export(program)


def _deny_limit_changes(program: Any, deny: Any) -> None:
    import pyseccomp as seccomp

    program.add_rule(deny, "setrlimit")
    # prlimit64 may read limits but never set them.
    program.add_rule(deny, "prlimit64", seccomp.Arg(2, seccomp.NE, 0))


def _export(program: Any) -> bytes:
    with tempfile.TemporaryFile() as handle:
        program.export_bpf(handle)
        handle.seek(0)
        bpf = handle.read()
    if not bpf or len(bpf) % 8:
        raise RuntimeError(f"libseccomp exported a malformed program ({len(bpf)} bytes)")
    return bpf
