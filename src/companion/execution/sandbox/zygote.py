"""The zygote: started once inside the sandbox, it runs each request in a fresh locked-down child.

Stdlib only. It talks to the service over fds 0 (requests) and 1 (results) in `protocol` frames:
an init frame first (seccomp programs, Landlock paths, scratch root), answered by a ready frame, then
one result frame per request frame. The children are forked ahead of time by its template (see
`template`: never from the zygote itself, whose memory holds earlier runs' data); the zygote hands
each one its request, enforces wall time and the output cap, reports rusage and wipes the scratch
directory after every run.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import selectors
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import landlock
from .child import (
    ERROR_FD,
    LimitSetter,
    SeccompLoader,
    prepare_javascript,
    prepare_python,
    run_child,
    warm_up,
)
from .protocol import read_frame, write_frame
from .template import ChildUsage, Template, start_template

__all__ = ["main"]

_IN, _OUT = 0, 1
_exit = os._exit  # bound at import: user code in a child may replace os._exit
_READ_CHUNK = 65536
_PYTHON, _JAVASCRIPT = b"p", b"j"  # the kinds of child the template forks
_CHILDREN_PER_KIND = 2
_FIRST_FREE_FD = 10  # a child's pipe ends move here before fds 0-3 are set
_REPORT_BYTES = 65536
# A child that reported its exit gets this long to actually exit before it is killed.
_REAP_GRACE_S = 1.0
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

    def reports(self) -> tuple[str, dict[str, Any] | None]:
        """The child's error report (raw JSON line, "" if none) and its exit record, if any."""
        error, done = "", None
        for line in self.error.decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # user code may write to the report pipe; garbage is ignored
            if isinstance(record, dict) and record.get("done") is True:
                done = record
            elif not error:
                error = line
        return error, done

    def add(self, stream: str, chunk: bytes) -> bool:
        """Keep what fits under the cap; False once the cap is passed."""
        if stream == "error":
            self.error += chunk[: _REPORT_BYTES - len(self.error)]
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
    try:
        # Done when every pipe is closed: the child closes them as its last act (or by exiting).
        while any(key.fd != pidfd for key in selector.get_map().values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                killed = "timeout"
                break
            for key, _ in selector.select(remaining):
                if key.fd == pidfd:
                    selector.unregister(pidfd)  # exited: its pipes read EOF next
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
    """A child forked ahead of time by the template, blocked until it reads its request."""

    pid: int
    control: int
    pipes: dict[int, str]


def _child_main(
    scratch: str, seccomp: SeccompLoader, seccomp_limits: SeccompLoader, rlimits: LimitSetter
) -> Callable[[bytes, int, int, int, int], None]:
    """The body of every run's child, forked by the template (see `template`)."""

    def main(kind: bytes, control_r: int, out_w: int, err_w: int, res_w: int) -> None:
        try:
            # Everything that does not depend on the request happens before it arrives, and only
            # for the language the child is for: preparing both costs every run ~0.7 ms of CPU.
            os.setsid()
            os.environ.clear()
            rlimits.prepare()
            if kind == _JAVASCRIPT:
                prepare_javascript()
            else:
                warm_up()
                prepare_python()
            control_r = _bind_stdio(control_r, out_w, err_w, res_w)
            # Before the request, so its ~0.2 ms is off the run's path: only our own code runs
            # between here and the limits filter that `run_child` stacks before user code.
            seccomp.load()
            request = read_frame(control_r)
            if request is None:
                os._exit(0)
            os.close(control_r)
            if request.get("stdin"):
                stdin_path = os.path.join(scratch, ".stdin")
                stdin_fd = os.open(stdin_path, os.O_RDONLY)
                os.dup2(stdin_fd, 0)
                os.close(stdin_fd)
                os.unlink(stdin_path)
            os.chdir(scratch)  # not before: scratch is made anew after each run
            run_child(request, seccomp_limits, rlimits)
        finally:
            _exit(70)  # a child must never return into the template's loop, whatever happened

    return main


def _bind_stdio(control_r: int, out_w: int, err_w: int, res_w: int) -> int:
    """Put the run's pipes on fds 1-3 and /dev/null on 0, close every other fd but the control
    pipe, and return the control pipe's new fd. Done while the child waits for its request."""
    # First above fd 3, so that no dup2 below overwrites a pipe end not yet moved.
    high = [
        fcntl.fcntl(fd, fcntl.F_DUPFD, _FIRST_FREE_FD) for fd in (control_r, out_w, err_w, res_w)
    ]
    for fd in (control_r, out_w, err_w, res_w):
        os.close(fd)
    control, out_w, err_w, res_w = high
    null = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((null, 0), (out_w, 1), (err_w, 2), (res_w, ERROR_FD)):
        os.dup2(source, target)
    os.closerange(ERROR_FD + 1, control)
    os.closerange(control + 1, os.sysconf("SC_OPEN_MAX"))
    return control


class _Children:
    """One prepared child per language, ordered from the template ahead of the runs that need them."""

    def __init__(self, template: Template, kinds: list[bytes]) -> None:
        self._template = template
        self._kinds = kinds
        self._ordered: deque[bytes] = deque()
        self._ready: dict[bytes, deque[_Pending]] = {kind: deque() for kind in kinds}
        for _ in range(_CHILDREN_PER_KIND):
            for kind in kinds:
                self.order(kind)

    def order(self, kind: bytes) -> None:
        """Have the template fork the next child of `kind` while this run is answered."""
        self._template.order_child(kind)
        self._ordered.append(kind)

    def take(self, kind: bytes) -> _Pending:
        """The prepared child of `kind` (blocks while the template still makes it)."""
        if kind not in self._kinds:
            raise RuntimeError(f"this zygote runs no {kind!r} children")
        while not self._ready[kind]:
            self._collect_one()
        return self._ready[kind].popleft()

    def wait(self, pid: int) -> ChildUsage:
        """Reap `pid` through the template (after collecting orders it answers first)."""
        while self._ordered:
            self._collect_one()
        return self._template.wait_child(pid)

    def _collect_one(self) -> None:
        kind = self._ordered.popleft()
        child = self._template.collect_child()
        pipes = {child.stdout: "stdout", child.stderr: "stderr", child.report: "error"}
        self._ready[kind].append(_Pending(child.pid, child.control, pipes))


def _fresh_scratch(scratch: str) -> None:
    """An empty scratch directory; called after every run, once its child was reaped."""
    shutil.rmtree(scratch, ignore_errors=True)
    os.mkdir(scratch, 0o700)


def _prepare_scratch(scratch: str, request: dict[str, Any]) -> None:
    # The directory is already fresh (made after the previous run): only the request's files remain.
    for name, content in request.get("files", {}).items():
        _write_file(os.path.join(scratch, name), content)
    if request.get("stdin"):
        _write_file(os.path.join(scratch, ".stdin"), request["stdin"])


def _write_file(path: str, text: str) -> None:
    # os-level calls: a text-mode `open()` builds an io stack per file (~40 µs a run here).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _run(
    request: dict[str, Any], child: _Pending, scratch: str, children: _Children
) -> tuple[dict[str, Any], int]:
    """Run one request; returns the result and the pid to reap once the result is sent."""
    limits = request["limits"]
    started = time.monotonic()
    deadline = started + limits["wall_time_ms"] / 1000
    _prepare_scratch(scratch, request)
    write_frame(child.control, request)
    os.close(child.control)
    capture = _Capture(limits["max_output_bytes"])
    try:
        killed = _supervise(child.pid, child.pipes, capture, limits["wall_time_ms"] / 1000)
    finally:
        for fd in child.pipes:
            os.close(fd)
    error, done = capture.reports()
    result: dict[str, Any] = {
        "killed": killed,
        "stdout": capture.stdout.decode("utf-8", "replace"),
        "stderr": capture.stderr.decode("utf-8", "replace"),
        "truncated": sorted(capture.truncated),
        "error": error,
    }
    if killed is None and done is not None:
        # The child said how it ended and closed its pipes: answer now, reap after.
        result.update(exit_code=done.get("exit_code"), signal=None)
        result.update(cpu_ms=done.get("cpu_ms", 0.0), memory_bytes=done.get("memory_bytes", 0))
        result["wall_ms"] = round((time.monotonic() - started) * 1000, 3)
        return result, child.pid
    usage, overran = _reap(children, child.pid, max(deadline - time.monotonic(), 0.0))
    status = usage.status
    result["exit_code"] = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None
    result["signal"] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    result["cpu_ms"] = round((usage.ru_utime + usage.ru_stime) * 1000, 3)
    result["memory_bytes"] = usage.ru_maxrss * 1024
    result["wall_ms"] = round((time.monotonic() - started) * 1000, 3)
    if overran:
        result["killed"] = "timeout"  # it closed its pipes early and outlived the deadline
    return result, 0


def _reap(children: _Children, pid: int, timeout_s: float) -> tuple[ChildUsage, bool]:
    """Wait up to `timeout_s` for `pid` to exit, then SIGKILL it: (its wait4 record, was killed)."""
    pidfd = os.pidfd_open(pid)
    overran = False
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                os.kill(pid, signal.SIGKILL)
                overran = True
    finally:
        os.close(pidfd)
    usage = children.wait(pid)  # the template is the parent: it reaps
    return usage, overran


def _discard(child: _Pending, children: _Children) -> None:
    """Kill and reap a child whose run failed inside the zygote, closing what is still open."""
    for fd in (child.control, *child.pipes):
        with contextlib.suppress(OSError):
            os.close(fd)
    try:
        os.kill(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        return  # already reaped by the failed run
    with contextlib.suppress(RuntimeError):  # reaped meanwhile
        children.wait(child.pid)


def _statm_bytes() -> tuple[int, int]:
    """This process's (address space, resident set) in bytes."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        size_pages, resident_pages = handle.read().split()[:2]
    page_bytes = os.sysconf("SC_PAGE_SIZE")
    return int(size_pages) * page_bytes, int(resident_pages) * page_bytes


def main() -> None:
    """Serve requests until the service closes our stdin."""
    init = read_frame(_IN)
    if init is None:
        return
    languages: list[str] = init["languages"]
    _preload(languages)
    seccomp = SeccompLoader(bytes.fromhex(init["seccomp_bpf"]))
    seccomp_limits = SeccompLoader(bytes.fromhex(init.get("seccomp_limits_bpf", "")))
    scratch_root: str = init["scratch_root"]
    # Measured before Landlock closes /proc: children get their memory limit on top of the address
    # space, and their peak RSS starts from the resident set they inherit.
    as_base, memory_base_bytes = _statm_bytes()
    rlimits = LimitSetter(init["limit_defaults"], init["limit_maxima"], as_base)
    abi = landlock.restrict_self(init["landlock_read_only"], [scratch_root])
    gc.freeze()  # children never touch these objects' GC headers, so their pages stay shared
    scratch = os.path.join(scratch_root, "run")
    _fresh_scratch(scratch)
    # Forked before any request, so that no child ever inherits memory that held a run's data.
    template = start_template(_child_main(scratch, seccomp, seccomp_limits, rlimits))
    kinds = [_PYTHON, _JAVASCRIPT] if "javascript" in languages else [_PYTHON]
    children = _Children(template, kinds)
    write_frame(_OUT, {"ready": True, "landlock_abi": abi, "python": sys.version.split()[0]})
    while (request := read_frame(_IN)) is not None:
        kind = _PYTHON if request.get("language") == "python" else _JAVASCRIPT
        child = children.take(kind)
        to_reap = 0
        try:
            result, to_reap = _run(request, child, scratch, children)
        except Exception as exc:  # a failed run is reported, the zygote lives on
            result = {"killed": None, "internal_error": f"{type(exc).__name__}: {exc}"}
            _discard(child, children)
        result["memory_base_bytes"] = memory_base_bytes
        write_frame(_OUT, result)
        # While the service reads the result: reap the child (its memory teardown is the slow
        # part of exiting), wipe scratch, and order the next child. Ordered any earlier, its
        # preparation competes with the run for the CPU: measured slower.
        if to_reap:
            _reap(children, to_reap, _REAP_GRACE_S)
        _fresh_scratch(scratch)
        children.order(kind)
