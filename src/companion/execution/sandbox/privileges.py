"""Becoming an unprivileged user: the first thing a sandbox process does (stdlib only, runs inside).

Under bubblewrap as root, and in the service's own namespaces, the zygote starts as root with the
few capabilities it needs to give the rest away (CAP_SETUID, CAP_SETGID, CAP_SETPCAP, CAP_CHOWN).
Landlock restricts opening paths, not metadata calls, so a root process could still `chmod`,
`chown` or `utime` whatever it can name (the host's `/dev/null` was `chmod`ed that way): no
untrusted byte may run before this is done. It empties the bounding, ambient and inheritable
capability sets, drops every supplementary group, switches to `uid:gid` for good, sets
no-new-privs, and then checks the result from `/proc/self/status` rather than trusting the calls.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["PrivilegeError", "drop_privileges", "privilege_report"]

_PR_SET_KEEPCAPS = 8
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_LAST_POSSIBLE = 63  # numbers above the kernel's last capability fail with EINVAL: ignored
_EINVAL = 22
_CAPABILITY_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")

_libc = ctypes.CDLL(None, use_errno=True)


class PrivilegeError(RuntimeError):
    """The process could not shed its privileges; it must not run untrusted code."""


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _prctl(option: int, arg: int = 0) -> int:
    return int(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0))


def _clear_capability_sets() -> None:
    """Empty the effective, permitted and inheritable sets (capset with all zeros)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        errno = ctypes.get_errno()
        raise PrivilegeError(f"capset failed: {os.strerror(errno)}")


def privilege_report() -> dict[str, int]:
    """The calling process's uids, gids and capability sets, read back from the kernel."""
    report: dict[str, int] = {"groups": len(os.getgroups())}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in _CAPABILITY_FIELDS:
                report[name] = int(value.strip(), 16)
            elif name in {"Uid", "Gid"}:
                report[name] = max(int(each) for each in value.split())
            elif name == "NoNewPrivs":
                report[name] = int(value.strip())
    return report


def drop_privileges(uid: int, gid: int) -> dict[str, int]:
    """Become `uid:gid` with no capabilities and no way back; returns the checked state.

    A process that is not root (a service run by a normal user under bubblewrap's user namespace)
    has nothing to drop beyond capabilities of its own namespace: it keeps its uid.
    """
    if uid <= 0 or gid <= 0:
        raise PrivilegeError(f"the sandbox uid and gid must not be root (got {uid}:{gid})")
    was_root = os.geteuid() == 0
    if was_root:
        # The bounding set first: dropping from it needs CAP_SETPCAP, which the uid switch removes.
        for capability in range(_CAP_LAST_POSSIBLE + 1):
            if _prctl(_PR_CAPBSET_DROP, capability) != 0 and ctypes.get_errno() != _EINVAL:
                raise PrivilegeError(
                    f"could not drop capability {capability} from the bounding set"
                )
        _prctl(_PR_SET_KEEPCAPS, 0)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    _clear_capability_sets()
    if _prctl(_PR_SET_NO_NEW_PRIVS, 1) != 0:
        raise PrivilegeError("could not set no_new_privs")
    report = privilege_report()
    # A process that was not root may keep a bounding set (its user namespace's): with nothing
    # permitted, effective or ambient and no_new_privs set, nothing can raise a capability again.
    checked = _CAPABILITY_FIELDS if was_root else ("CapInh", "CapPrm", "CapEff", "CapAmb")
    held = {name: report[name] for name in checked if report.get(name, 0)}
    if held or report["Uid"] == 0 or report["Gid"] == 0 or report.get("NoNewPrivs") != 1:
        raise PrivilegeError(f"privileges remain after the drop: {report}")
    return report
