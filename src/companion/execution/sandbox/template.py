"""The template: a copy of the zygote taken before it handled any run; every run's child is forked from it.

Why: CPython does not clear memory it frees, and a snippet can read its own address space (ctypes).
A child forked from a process that once held a run's code, input or output would inherit those pages
and could read other tenants' data (the zygote used to relay every run; since the service talks to
the children directly it no longer sees run data, but nothing should depend on that staying true).
The template only ever receives commands (fork a child, wait for one), never a run's data, so its
children start from memory no run has touched.

The template is the children's parent, so it also reaps them for the zygote (exit status and
rusage). The zygote gets their pipes' parent ends over a Unix socket (`SCM_RIGHTS`) and hands them
on to the service, which runs each child directly. Stdlib only.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ChildPipes", "ChildUsage", "Template", "start_template"]

_PID = struct.Struct("<q")
_WAITED = struct.Struct("<iddq")  # wait status, user s, system s, peak RSS in KiB
# What a child body receives: the kind of run it prepares for (one byte from the order), then its
# ends of the control, stdout, stderr and report pipes.
ChildMain = Callable[[bytes, int, int, int, int], None]


@dataclass(frozen=True, slots=True)
class ChildPipes:
    """A new child as the zygote sees it: its pid and the parent ends of its four pipes."""

    pid: int
    control: int
    stdout: int
    stderr: int
    report: int


@dataclass(frozen=True, slots=True)
class ChildUsage:
    """What `wait4` said about a reaped child."""

    status: int
    ru_utime: float
    ru_stime: float
    ru_maxrss: int


class Template:
    """The zygote's handle on its template process (one command at a time, answered in order)."""

    def __init__(self, connection: socket.socket, pid: int) -> None:
        self._connection = connection
        self.pid = pid

    def order_child(self, kind: bytes) -> None:
        """Ask for one more child of `kind` (one byte); the template forks it meanwhile."""
        self._connection.sendall(b"f" + kind[:1])

    def collect_child(self) -> ChildPipes:
        """The child ordered last, preparing or waiting on its control pipe (blocks until made)."""
        data, fds, _, _ = socket.recv_fds(self._connection, _PID.size, 4)
        if len(data) != _PID.size or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            raise RuntimeError("the sandbox template failed to fork a child")
        return ChildPipes(_PID.unpack(data)[0], *fds)

    def wait_child(self, pid: int) -> ChildUsage:
        """Reap `pid` (blocks until it exits: kill it first, or know it has exited)."""
        self._connection.sendall(b"w" + _PID.pack(pid))
        data = self._connection.recv(_WAITED.size)
        if len(data) != _WAITED.size:
            raise RuntimeError(f"the sandbox template could not reap child {pid}")
        return ChildUsage(*_WAITED.unpack(data))


def start_template(child_main: ChildMain) -> Template:
    """Fork the template, which serves until this process closes its end of the socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            _detach_from_service()
            _serve(theirs, child_main)
        finally:
            os._exit(0)
    theirs.close()
    return Template(ours, pid)


def _detach_from_service() -> None:
    # fd 0 is the zygote's socket to the service, which notices a dead zygote when it closes: only
    # the zygote may hold it. A spare pipe keeps fds 0 and 1 taken, so the pipes made below never
    # get those numbers (a child dup2s onto 0-3).
    spare_r, spare_w = os.pipe()
    os.dup2(spare_r, 0)
    os.dup2(spare_w, 1)
    os.close(spare_r)
    os.close(spare_w)


def _serve(connection: socket.socket, child_main: ChildMain) -> None:
    while command := connection.recv(1 + _PID.size):
        if command[:1] == b"w":
            try:
                _, status, usage = os.wait4(_PID.unpack(command[1:])[0], 0)
                answer = _WAITED.pack(status, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)
            except (ChildProcessError, struct.error):
                answer = b""  # not our child: the zygote raises
            connection.sendall(answer)
        else:
            _fork_child(connection, child_main, command[1:2])


def _fork_child(connection: socket.socket, child_main: ChildMain, kind: bytes) -> None:
    control_r, control_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    parent_ends = [control_w, out_r, err_r, res_r]
    pid = os.fork()
    if pid == 0:
        try:
            # The child keeps only its own pipe ends: a parent end held here would hide EOF.
            for fd in (connection.fileno(), *parent_ends):
                os.close(fd)
            child_main(kind, control_r, out_w, err_w, res_w)
        finally:
            os._exit(70)  # child_main never returns; this is the last guard
    socket.send_fds(connection, [_PID.pack(pid)], parent_ends)
    for fd in (control_r, out_w, err_w, res_w, *parent_ends):
        os.close(fd)
