"""Run a command as the container runtime would run the service: its capabilities, no new privileges, and
the seccomp profile of `deploy/docker/seccomp.json` loaded with libseccomp as Docker and containerd load it.

    python -m tests.deploy._container PROFILE --caps SYS_ADMIN,SETUID,... -- COMMAND [ARG...]

Run as root. The bounding set keeps only `--caps` (what `cap_drop: [ALL]` plus `cap_add` leave a root
process), then the profile's filter is loaded and COMMAND is executed under it.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CAPABILITIES", "build_filter", "drop_capabilities"]

# Capability numbers from <linux/capability.h>.
CAPABILITIES = {
    name: number
    for number, name in enumerate(
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
        "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
        "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
        "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
        "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE".split()
    )
}
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_ACTIONS = {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"}
_OPERATORS = {"SCMP_CMP_EQ": "EQ", "SCMP_CMP_NE": "NE", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}


def build_filter(profile: dict[str, Any]) -> Any:
    """The profile as a libseccomp filter, rule by rule as runc builds it: names the running
    architecture lacks are skipped, each rule's `args` must all hold."""
    import pyseccomp as seccomp

    default = seccomp.ERRNO(profile.get("defaultErrnoRet", errno.EPERM))
    program = seccomp.SyscallFilter(default)
    for rule in profile["syscalls"]:
        if rule["action"] not in _ACTIONS:
            raise ValueError(f"action {rule['action']} is not one this loader implements")
        action = (
            seccomp.ALLOW
            if rule["action"] == "SCMP_ACT_ALLOW"
            else seccomp.ERRNO(rule.get("errnoRet", errno.EPERM))
        )
        conditions = [
            seccomp.Arg(
                arg["index"],
                getattr(seccomp, _OPERATORS[arg["op"]]),
                arg["value"],
                arg.get("valueTwo", 0),
            )
            for arg in rule.get("args", [])
        ]
        for name in rule["names"]:
            if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) < 0:
                continue
            program.add_rule(action, name, *conditions)
    return program


def drop_capabilities(keep: set[str]) -> None:
    """Empty the bounding set but for `keep`: after exec a root process holds only these."""
    libc = ctypes.CDLL(None, use_errno=True)
    kept = {CAPABILITIES[name] for name in keep}
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for number in set(range(last + 1)) - kept:
        if libc.prctl(_PR_CAPBSET_DROP, number, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"dropping capability {number}: {os.strerror(code)}")


def main() -> None:
    """Parse the arguments, confine this process, and become COMMAND."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--caps", default="", help="comma-separated capabilities to keep")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    program = build_filter(json.loads(args.profile.read_text()))
    drop_capabilities({name for name in args.caps.split(",") if name})
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    program.load()
    os.execvp(args.command[0], args.command)


if __name__ == "__main__":
    main()
