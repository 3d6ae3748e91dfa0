"""The sandbox's own namespaces, for a root service on a host without bubblewrap (stdlib only).

`python -I -S -c BOOT SPEC COMMAND...`: the same isolation bubblewrap gives the zygote, built with
raw syscalls, then `COMMAND` exec'd inside it (the zygote or the Node.js launcher, exactly as
under bubblewrap). Steps, mirroring bubblewrap:

1. `unshare` mount, pid, network, IPC, UTS and cgroup namespaces (as root no user namespace is
   needed), then fork: the child is pid 1 of the new pid namespace, and dies with this process.
2. pid 1 makes every mount private, mounts a small tmpfs as the new root and fills it from SPEC:
   read-only binds of `/usr`, the interpreter and the sandbox library, a minimal read-only `/dev`
   of five device nodes, a fresh `/proc`, and a size-bounded tmpfs for `/tmp`; then `pivot_root`,
   the old root detached, the new root made read-only.
3. pid 1 forks `COMMAND` with a clean environment and reaps every process that ends up in the
   namespace until `COMMAND` exits, then exits with its status (so the service sees it).

The command still starts as root in these namespaces: it drops to the sandbox user itself
(`privileges.drop_privileges`) before it runs anything untrusted.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import stat
import sys
from typing import Any

from .filesystem import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount,
)
from .protocol import FD_CEILING

__all__ = ["main"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = 155  # x86_64; aarch64 is 41
_PR_SET_PDEATHSIG = 1
_ROOT_TMPFS = "size=1m,mode=0755"
_EXIT_SETUP_FAILED = 71

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _pivot_root_number() -> int:
    return 41 if os.uname().machine == "aarch64" else _SYS_PIVOT_ROOT


def _unshare() -> None:
    flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
    if _libc.unshare(flags | _CLONE_NEWCGROUP) != 0:
        _check(_libc.unshare(flags), "unshare")  # a kernel without cgroup namespaces


def _mountpoint(path: str, like: str) -> None:
    """An empty directory or file at `path` to mount `like` on."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    if stat.S_ISDIR(os.stat(like).st_mode):
        os.makedirs(path, mode=0o755, exist_ok=True)
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def _bind_read_only(source: str, target: str, device: bool = False) -> None:
    _mountpoint(target, source)
    mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (0 if device else MS_NODEV)
    mount(None, target, None, flags)


def _build_root(root: str, spec: dict[str, Any]) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, _ROOT_TMPFS)
    for source, target in spec["read_only"]:
        if os.path.exists(source):
            _bind_read_only(source, root + target)
    for target, link in spec["symlinks"]:
        os.symlink(target, root + link)
    dev = root + "/dev"
    os.mkdir(dev, 0o755)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name in spec["devices"]:
        _bind_read_only(f"/dev/{name}", f"{dev}/{name}", device=True)
    mount(None, dev, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    os.mkdir(root + "/proc", 0o555)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    scratch = root + spec["scratch"]
    os.makedirs(scratch, 0o755, exist_ok=True)
    size = int(spec["scratch_bytes"])
    mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=0755")
    os.chdir(root)
    _check(_libc.syscall(_pivot_root_number(), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", _MNT_DETACH), "detach the old root")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, _ROOT_TMPFS)
    _check(_libc.sethostname(b"sandbox", 7), "sethostname")


def _init(command: list[str], env: dict[str, str]) -> int:
    """pid 1: run `command`, reap everything, return its exit status."""
    child = os.fork()
    if child == 0:
        try:
            os.execve(command[0], command, env)  # noqa: S606 - our own fixed command
        finally:
            os._exit(_EXIT_SETUP_FAILED)
    # pid 1 keeps no copy of the service's socket (fd 0), so the service sees EOF when the
    # command exits; stderr stays for the error above.
    os.closerange(0, 2)
    os.closerange(3, FD_CEILING)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return _EXIT_SETUP_FAILED
        if pid == child:
            return _exit_status(status)


def _exit_status(wait_status: int) -> int:
    """An exit code for a wait status, 128 + the signal for a killed process (as a shell does)."""
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


def main() -> None:
    """argv: SPEC (JSON: root, read_only, symlinks, devices, scratch, scratch_bytes, env), then
    COMMAND."""
    spec = json.loads(sys.argv[1])
    command = sys.argv[2:]
    _unshare()
    pid = os.fork()
    if pid == 0:
        code = _EXIT_SETUP_FAILED
        try:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            # A session of its own, as bubblewrap's --new-session gives: no terminal of the
            # service's, and its own scheduler autogroup rather than a share of the service's.
            os.setsid()
            _build_root(spec["root"], spec)
            code = _init(command, spec["env"])
        except BaseException as exc:  # the service reads this from stderr
            sys.stderr.write(f"sandbox namespaces: {type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.closerange(0, 2)  # the service's socket: only the command may hold it
    os.closerange(3, FD_CEILING)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(_exit_status(status))
