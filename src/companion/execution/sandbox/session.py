"""A session's child: one interpreter that runs cell after cell. Stdlib only (runs inside the sandbox).

A session has a sandbox of its own (its zygote, namespaces, scratch filesystem and user), and in it
one child forked like a run's, which does not exit after one request: it serves frames from its
control pipe until the service closes it. The first frame (`start`) sets the session's limits for
its whole life (memory, file sizes, open files, and a CPU backstop) and stacks the filter that
denies changing them; then each frame is one operation, answered on the report pipe with the same
records a run sends and a `done` record at its end:

- `cell`: run code in the session's interpreter (its variables, imports and working directory
  persist), return its results and the files it wrote or changed;
- `put`, `get`, `list`, `delete`: the workspace's files (the service never reads the sandbox's
  filesystem itself).

A cell is stopped with `KeyboardInterrupt`: by the service's SIGINT at its wall-time limit (or its
output limit), or by this process's own CPU timer (`ITIMER_PROF`) at its CPU limit. Either signal
interrupts user code only: between cells, and in this module's own code, it is ignored. A cell that
does not stop (it catches the interrupt, blocks the signal, or sits in native code) is killed by the
service a moment later, and the session ends with it.
"""

from __future__ import annotations

import binascii
import builtins
import errno
import linecache
import os
import resource
import signal
import stat
import sys
from typing import Any

from .child import (
    CELL_FILE_PREFIX,
    ERROR_FD,
    USER_FILE,
    LimitSetter,
    SeccompLoader,
    report_error,
    run_javascript,
    run_python_source,
)
from .outputs import (
    Outputs,
    Signature,
    file_record,
    listing,
    open_parent,
    read_file,
    returnable,
    signatures,
    written_files,
)
from .protocol import read_frame

__all__ = ["serve_session", "write_files"]

_dumps = __import__("json").dumps  # bound at import: user code may replace json.dumps
_write = os.write
_getrusage = resource.getrusage
_STDIN_NAME = ".stdin"  # in the scratch root, beside the workspace: never listed or returned
_MAX_LISTED = 10_000


def write_files(directory: str, files: list[Any]) -> dict[str, bytes]:
    """Write `files` ((path, text or base64, is base64) each) under `directory`, making folders
    as needed and never following a link; the bytes written, by path."""
    written: dict[str, bytes] = {}
    for path, content, encoded in files:
        if not returnable(path):  # checked by the service too: never write outside the directory
            raise ValueError(f"file name {path!r} is not allowed")
        data = binascii.a2b_base64(content) if encoded else content.encode("utf-8")
        if "/" in path:
            os.makedirs(os.path.join(directory, os.path.dirname(path)), 0o700, exist_ok=True)
        write_file(os.path.join(directory, path), data)
        written[path] = data
    return written


def write_file(path: str, data: bytes) -> None:
    """Write `data` to `path` (created 0600, truncated), never through a link at its end."""
    # os-level calls: a text-mode `open()` builds an io stack per file (~40 µs a run here).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _usage() -> tuple[float, int]:
    usage = _getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000, usage.ru_maxrss * 1024


def _send_done(code: int, cpu_before_ms: float) -> None:
    cpu_ms, memory_bytes = _usage()
    done = {
        "done": True,
        "exit_code": code,
        "cpu_ms": max(round(cpu_ms - cpu_before_ms, 3), 0.0),
        "memory_bytes": memory_bytes,
        # The process's whole CPU so far: if a later cell kills it, the service takes this from
        # the exit's figure to give that cell its own.
        "process_cpu_ms": round(cpu_ms, 3),
    }
    line = _dumps(done).encode() + b"\n"
    view = memoryview(line)
    while view:
        view = view[_write(ERROR_FD, view) :]


class _Interrupts:
    """SIGINT (the service, at a wall-time or output limit) and SIGPROF (the cell's CPU timer)
    raise `KeyboardInterrupt` in user code only; `limit` says which limit stopped the cell."""

    def __init__(self) -> None:
        self.in_user_code = False
        self.limit: str | None = None
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGPROF, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.in_user_code:
            return  # between cells, or in our own code: too late or too early to matter
        self.in_user_code = False  # one interrupt per cell: handling it must not be interrupted
        self.limit = "time" if signum == signal.SIGPROF else None
        raise KeyboardInterrupt("the cell was interrupted at its limit")

    def arm(self, cpu_time_ms: int) -> None:
        self.limit = None
        signal.setitimer(signal.ITIMER_PROF, cpu_time_ms / 1000)
        self.in_user_code = True

    def disarm(self) -> None:
        self.in_user_code = False
        signal.setitimer(signal.ITIMER_PROF, 0)


class _Session:
    """The interpreter state that outlives a cell, and the operations on the workspace."""

    def __init__(self, javascript: bool, workspace: str) -> None:
        self._javascript = javascript
        self._workspace = workspace
        self._interrupts = _Interrupts()
        self._workspace_fd = -1
        self._outputs = Outputs(0, "png")
        self._scope: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "display": self._display,
        }
        sys.argv = [USER_FILE]
        sys.path[0:0] = [workspace]

    def _display(self, *values: Any) -> None:
        """`display(...)`: into the current cell's results, also when a function defined by an
        earlier cell calls it."""
        self._outputs.display(*values)

    def handle(self, frame: dict[str, Any]) -> None:
        """Run one operation and answer it with a `done` record, whatever happens."""
        cpu_before_ms, _ = _usage()
        code = 0
        try:
            operation = frame["op"]
            if operation == "cell":
                code = self._cell(frame)
            elif operation == "put":
                write_files(self._workspace, frame["files"])
            elif operation == "get":
                code = self._get(frame["path"], frame["max_bytes"])
            elif operation == "list":
                listing(self._open_workspace(), frame.get("max_entries", _MAX_LISTED))
            elif operation == "delete":
                code = self._delete(frame["path"])
            else:
                raise ValueError(f"unknown operation {operation!r}")
        except BaseException as exc:  # the workspace is full, a late interrupt: the caller is told
            report_error(type(exc).__name__, str(exc), "", self._interrupts.limit)
            code = 1
        finally:
            self._close_workspace()
            _send_done(code, cpu_before_ms)

    def _open_workspace(self) -> int:
        # Opened by its path each time: a cell may have moved it; a link in its place is refused.
        self._workspace_fd = os.open(self._workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        return self._workspace_fd

    def _close_workspace(self) -> None:
        if self._workspace_fd >= 0:
            os.close(self._workspace_fd)
            self._workspace_fd = -1

    def _cell(self, frame: dict[str, Any]) -> int:
        limits: dict[str, int] = frame["limits"]
        write_files(self._workspace, frame.get("files", ()))
        self._bind_stdin(frame.get("stdin", ""))
        before: dict[str, Signature] | None = None
        if not self._javascript and limits["max_returned_files"]:
            before = signatures(self._open_workspace())
            self._close_workspace()
        self._outputs = Outputs(limits["max_output_bytes"], frame.get("figure_format", "png"))
        sys.stdout.reconfigure(line_buffering=bool(frame.get("stream")))  # type: ignore[union-attr]
        if self._javascript:
            # QuickJS keeps its own limit, and SIGINT cannot stop its loop (it runs in C): the
            # cell's wall time bounds its CPU too (JavaScript here never sleeps).
            cpu_time_ms = min(limits["cpu_time_ms"], limits["wall_time_ms"])
            self._interrupts.arm(cpu_time_ms + 1000)
            try:
                code = run_javascript(frame, {**limits, "cpu_time_ms": cpu_time_ms}, self._outputs)
            except KeyboardInterrupt:
                report_error("InternalError", "interrupted", "", self._interrupts.limit)
                code = 1
            finally:
                self._interrupts.disarm()
        else:
            name = f"{CELL_FILE_PREFIX}{frame['number']}>"
            source: str = frame["code"]
            # Tracebacks of this cell's code (now or from a later cell) show its lines.
            linecache.cache[name] = (len(source), None, source.splitlines(True), name)
            self._interrupts.arm(limits["cpu_time_ms"])
            try:
                code = run_python_source(
                    source, self._scope, name, self._outputs, lambda: self._interrupts.limit
                )
            finally:
                self._interrupts.disarm()
        self._outputs.finish()
        if before is not None:
            self._return_files(limits, before)
        return code

    def _return_files(self, limits: dict[str, int], before: dict[str, Signature]) -> None:
        try:
            fd = self._open_workspace()
        except OSError:
            os.write(2, b"the workspace was replaced: its files are not returned\n")
            return
        try:
            written_files(
                fd, {}, limits["max_returned_files"], limits["max_returned_bytes"], before
            )
        except OSError as exc:
            os.write(2, f"the cell's files could not be collected: {exc}\n".encode())

    def _bind_stdin(self, text: str) -> None:
        """The cell's stdin on fd 0 (a file unlinked once open), or /dev/null."""
        if text:
            path = os.path.join(os.path.dirname(self._workspace), _STDIN_NAME)
            write_file(path, text.encode("utf-8"))
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            os.unlink(path)
        else:
            fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        if not self._javascript:  # a fresh reader: the last cell's may hold buffered input
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives on

    def _get(self, path: str, max_bytes: int) -> int:
        data = read_file(path, self._open_workspace(), max_bytes)
        line = _dumps(file_record(path, data)).encode() + b"\n"
        view = memoryview(line)
        while view:
            view = view[_write(ERROR_FD, view) :]
        return 0

    def _delete(self, path: str) -> int:
        if not returnable(path):
            raise ValueError(f"file name {path!r} is not allowed")
        parent = open_parent(path, self._open_workspace())
        try:
            name = path.rsplit("/", 1)[-1]
            if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                raise IsADirectoryError(errno.EISDIR, "a folder, not a file", path)
            os.unlink(name, dir_fd=parent)
        finally:
            os.close(parent)
        return 0


def serve_session(
    kind_is_javascript: bool,
    control: int,
    workspace: str,
    seccomp_limits: SeccompLoader,
    rlimits: LimitSetter,
) -> None:
    """Serve a session until the service closes the control pipe; returns then (the caller exits).

    The main seccomp filter is loaded already (while the child waited for its first frame)."""
    start = read_frame(control)
    if start is None:
        return
    cpu_before_ms, _ = _usage()
    rlimits.apply(start["limits"], cpu_before_ms)
    seccomp_limits.load(stacked=True)
    os.chdir(workspace)
    session = _Session(kind_is_javascript, workspace)
    _send_done(0, cpu_before_ms)
    while (frame := read_frame(control)) is not None:
        session.handle(frame)
