"""The zygote: started once inside the sandbox, it forks one locked-down child per run.

Stdlib only. It talks to the service over fds 0 (requests) and 1 (results) in `protocol` frames:
an init frame first (seccomp program, Landlock paths, scratch root), answered by a ready frame, then
one result frame per request frame. It enforces wall time and the output cap, collects rusage and
wipes the scratch directory after every run.
"""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from . import landlock
from .child import ERROR_FD, run_child
from .protocol import read_frame, write_frame

__all__ = ["main"]

_IN, _OUT = 0, 1
_READ_CHUNK = 65536
# Imported once here so children start with them warm (and share the pages copy-on-write).
_PRELOAD = (
    "base64 bisect collections dataclasses datetime decimal enum fractions functools hashlib "
    "heapq itertools json math operator random re statistics string textwrap typing"
).split()


@dataclass
class _Capture:
    """Output of one run, capped in total across stdout and stderr."""

    cap_bytes: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    error: bytearray = field(default_factory=bytearray)
    truncated: set[str] = field(default_factory=set)

    def add(self, stream: str, chunk: bytes) -> bool:
        """Keep what fits under the cap; False once the cap is passed."""
        if stream == "error":
            self.error += chunk[: 65536 - len(self.error)]
            return True
        buffer = self.stdout if stream == "stdout" else self.stderr
        room = self.cap_bytes - len(self.stdout) - len(self.stderr)
        buffer += chunk[: max(room, 0)]
        if len(chunk) > room:
            self.truncated.add(stream)
            return False
        return True


def _preload(languages: list[str]) -> None:
    for name in _PRELOAD:
        __import__(name)
    compile("x = [i * i for i in range(3)]\n", "warm.py", "exec")
    if "javascript" in languages:
        import _quickjs  # type: ignore[import-not-found]

        _quickjs.Context().eval("[1, 2].map((x) => x * 2).join()")


def _supervise(pid: int, pipes: dict[int, str], capture: _Capture, wall_s: float) -> str | None:
    """Collect output until the child exits; kill it on timeout or cap. Returns why it was killed."""
    deadline = time.monotonic() + wall_s
    selector = selectors.DefaultSelector()
    pidfd = os.pidfd_open(pid)
    selector.register(pidfd, selectors.EVENT_READ)
    for fd in pipes:
        selector.register(fd, selectors.EVENT_READ)
    killed: str | None = None
    exited = False
    try:
        while not (exited and len(selector.get_map()) == 0):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                killed = "timeout"
                break
            for key, _ in selector.select(remaining):
                if key.fd == pidfd:
                    exited = True
                    selector.unregister(pidfd)
                    continue
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                elif not capture.add(pipes[key.fd], chunk):
                    killed = "output_limit"
            if killed:
                break
    finally:
        selector.close()
        os.close(pidfd)
    if killed:
        os.kill(pid, signal.SIGKILL)
    return killed


@dataclass
class _Pending:
    """A child forked ahead of time, blocked until it reads its request (fork is off the hot path)."""

    pid: int
    control: int
    pipes: dict[int, str]


def _fork_pending(scratch: str, bpf: bytes, as_base: int) -> _Pending:
    control_r, control_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (control_w, out_r, err_r, res_r):
                os.close(fd)
            request = read_frame(control_r)
            if request is None:
                os._exit(0)
            stdin_path = os.path.join(scratch, ".stdin")
            stdin_fd = os.open(stdin_path, os.O_RDONLY)
            os.unlink(stdin_path)
            for source, target in ((stdin_fd, 0), (out_w, 1), (err_w, 2), (res_w, ERROR_FD)):
                os.dup2(source, target)
            os.closerange(ERROR_FD + 1, os.sysconf("SC_OPEN_MAX"))
            os.chdir(scratch)
        except BaseException:  # a child must never return into the zygote loop
            os._exit(70)
        run_child(request, bpf, as_base)
    for fd in (control_r, out_w, err_w, res_w):
        os.close(fd)
    return _Pending(pid, control_w, {out_r: "stdout", err_r: "stderr", res_r: "error"})


def _prepare_scratch(scratch: str, request: dict[str, Any]) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
    os.mkdir(scratch, 0o700)
    for name, content in request.get("files", {}).items():
        with open(os.path.join(scratch, name), "w", encoding="utf-8") as handle:
            handle.write(content)
    with open(os.path.join(scratch, ".stdin"), "w", encoding="utf-8") as handle:
        handle.write(request.get("stdin", ""))


def _run(request: dict[str, Any], child: _Pending, scratch: str) -> dict[str, Any]:
    limits = request["limits"]
    started = time.monotonic()
    _prepare_scratch(scratch, request)
    write_frame(child.control, request)
    os.close(child.control)
    capture = _Capture(limits["max_output_bytes"])
    try:
        killed = _supervise(child.pid, child.pipes, capture, limits["wall_time_ms"] / 1000)
    finally:
        for fd in child.pipes:
            os.close(fd)
    _, status, usage = os.wait4(child.pid, 0)
    wall_ms = (time.monotonic() - started) * 1000
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "killed": killed,
        "exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "stdout": capture.stdout.decode("utf-8", "replace"),
        "stderr": capture.stderr.decode("utf-8", "replace"),
        "truncated": sorted(capture.truncated),
        "error": capture.error.decode("utf-8", "replace"),
        "wall_ms": round(wall_ms, 3),
        "cpu_ms": round((usage.ru_utime + usage.ru_stime) * 1000, 3),
        "memory_bytes": usage.ru_maxrss * 1024,
    }


def _discard(child: _Pending) -> None:
    """Kill and reap a child whose run failed inside the zygote, closing what is still open."""
    for fd in (child.control, *child.pipes):
        with contextlib.suppress(OSError):
            os.close(fd)
    try:
        os.kill(child.pid, signal.SIGKILL)
        os.waitpid(child.pid, 0)
    except ChildProcessError:
        pass  # already reaped by the failed run


def _address_space_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    """Serve requests until the service closes our stdin."""
    init = read_frame(_IN)
    if init is None:
        return
    languages: list[str] = init["languages"]
    _preload(languages)
    bpf = bytes.fromhex(init["seccomp_bpf"])
    scratch_root: str = init["scratch_root"]
    # Measured before Landlock closes /proc: children get their memory limit on top of this.
    as_base = _address_space_bytes()
    abi = landlock.restrict_self(init["landlock_read_only"], [scratch_root])
    gc.freeze()  # children never touch these objects' GC headers, so their pages stay shared
    scratch = os.path.join(scratch_root, "run")
    child = _fork_pending(scratch, bpf, as_base)
    write_frame(_OUT, {"ready": True, "landlock_abi": abi, "python": sys.version.split()[0]})
    while (request := read_frame(_IN)) is not None:
        try:
            result = _run(request, child, scratch)
        except Exception as exc:  # a failed run is reported, the zygote lives on
            result = {"killed": None, "internal_error": f"{type(exc).__name__}: {exc}"}
            _discard(child)
        write_frame(_OUT, result)
        # Fork the next child while the service reads this result.
        child = _fork_pending(scratch, bpf, as_base)
