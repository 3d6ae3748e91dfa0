"""The forked child: lock itself down, run one snippet, exit. Stdlib only (runs inside the sandbox).

Order matters: the main seccomp filter is loaded while the child waits for its request (it allows
setrlimit); then the request's rlimits are set, and a small filter denying rlimit changes is stacked
last before user code. The zygote already holds the Landlock domain, which the child inherits.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import io
import json
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from .outputs import Outputs, warm_walk, written_files

__all__ = [
    "CELL_FILE_PREFIX",
    "ERROR_FD",
    "LimitSetter",
    "SeccompLoader",
    "is_user_file",
    "prepare_javascript",
    "prepare_python",
    "report_error",
    "run_child",
    "run_javascript",
    "run_python_source",
    "shorten",
    "split_last_expression",
    "warm_up",
]

ERROR_FD = 3  # the child reports a structured error here; stdout/stderr stay the user's
# Bound at import: user code may replace module attributes (json.dumps = None) before we report.
_dumps = json.dumps
_write = os.write
_exit = os._exit
_getrusage = resource.getrusage
USER_FILE = "main.py"
CELL_FILE_PREFIX = "<cell "  # a session's cells are files `<cell 1>`, `<cell 2>`...
MESSAGE_CHARS = 8192  # of an exception's message, in the report and in the traceback on stderr
_TRACEBACK_CHARS = 32768
_SIGNALS_PENDING = 256
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_JS_STACK_BYTES = 1024 * 1024
_HEAP_FULL_SHARE = 0.95
_JS_HEADROOM_BYTES = 32 * 1024 * 1024  # 8 MiB was seen to let a bomb reach RLIMIT_AS: SIGSEGV


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class SeccompLoader:
    """Built once in the zygote, so a child's only cost is the two `prctl` calls."""

    def __init__(self, bpf: bytes) -> None:
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl
        self._program = ctypes.create_string_buffer(bpf, len(bpf))
        self._fprog = _SockFprog(len(bpf) // 8, ctypes.cast(self._program, ctypes.c_void_p))
        self._empty = not bpf

    def load(self, *, stacked: bool = False) -> None:
        """Apply the filter to the calling process (and its future threads); `stacked` when a
        filter is already loaded, so no_new_privs is already set (one syscall less)."""
        if self._empty:
            return
        if not stacked and self._prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        fprog = ctypes.byref(self._fprog)
        if self._prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "seccomp filter load failed")


class LimitSetter:
    """Rlimits in two steps, so a run's critical path usually makes no `setrlimit` call at all.

    Before its request arrives, a pending child sets every soft limit to the runtime's default and
    every hard limit to its maximum; the request then changes only the soft limits it lowered or
    raised (within the hard limit). User code can move neither: seccomp denies setrlimit.
    """

    def __init__(
        self,
        defaults: dict[str, int],
        maxima: dict[str, int],
        as_base: int,
        max_tasks: int | None = None,
    ) -> None:
        self._defaults = defaults
        self._maxima = maxima
        self._as_base = as_base
        self._max_tasks = max_tasks

    def _pairs(self, limits: dict[str, int], spent_ms: float = 0.0) -> dict[int, tuple[int, int]]:
        def cpu_s(ms: float) -> int:
            return max(1, -int(-ms // 1000))

        return {
            # Soft < hard: SIGXCPU at the limit (reported as a timeout), SIGKILL later as a backstop.
            # RLIMIT_CPU counts the process's whole life: what it spent before its request (its
            # warm-up) is added, so the run gets all of its own.
            # The hard limit was set before the warm-up and cannot be raised: soft stays below it.
            resource.RLIMIT_CPU: (
                min(
                    cpu_s(spent_ms + limits["cpu_time_ms"]), cpu_s(self._maxima["cpu_time_ms"]) + 1
                ),
                cpu_s(self._maxima["cpu_time_ms"]) + 1,
            ),
            resource.RLIMIT_AS: (
                self._as_base + limits["memory_bytes"],
                self._as_base + self._maxima["memory_bytes"],
            ),
            resource.RLIMIT_FSIZE: (limits["max_file_bytes"], self._maxima["max_file_bytes"]),
            resource.RLIMIT_NOFILE: (limits["max_open_files"], self._maxima["max_open_files"]),
        }

    def prepare(self) -> None:
        """In the pending child: defaults as soft limits, maxima as hard ones, no core dumps."""
        for kind, pair in self._pairs(self._defaults).items():
            resource.setrlimit(kind, pair)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Per-user kernel quotas, bound here because each sandbox has a user of its own: threads
        # (tiny ctypes stacks slip under RLIMIT_AS: 25,000 threads nearly used up the host's pids)
        # and queued signals (timer_create used up the user's whole quota).
        if self._max_tasks is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (self._max_tasks, self._max_tasks))
        resource.setrlimit(resource.RLIMIT_SIGPENDING, (_SIGNALS_PENDING, _SIGNALS_PENDING))
        # An oversized write fails with EFBIG (an exception the user sees) instead of killing.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def apply(self, limits: dict[str, int], spent_ms: float = 0.0) -> None:
        """After the request: only the limits that differ from the defaults; `spent_ms` is the
        CPU this process used before the request."""
        wanted = self._pairs(limits, spent_ms)
        for kind, pair in self._pairs(self._defaults).items():
            if wanted[kind] != pair:
                resource.setrlimit(kind, wanted[kind])


def shorten(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def report_error(name: str, value: str, trace: str, limit: str | None = None) -> None:
    """Tell the service what went wrong; `limit` names the limit hit (memory, time, output).

    Every field is bounded: the service keeps 64 KiB of report, and a report cut there would be
    unreadable (a 10 MiB exception message ended as `output_limit` with no error at all)."""
    report = {
        "name": shorten(name, 256),
        "value": shorten(value),
        "traceback": trace[-_TRACEBACK_CHARS:],  # the end: where the exception is
        "limit": limit,
    }
    with contextlib.suppress(Exception):
        _write(ERROR_FD, _dumps(report).encode() + b"\n")


def _cpu_ms() -> float:
    usage = _getrusage(resource.RUSAGE_SELF)
    return round((usage.ru_utime + usage.ru_stime) * 1000, 3)


def _finish(code: int, before_ms: float) -> None:
    """Report the exit, then exit: the service answers the run as soon as this record arrives (it
    follows the last output write) and the zygote reaps this process afterwards, so tearing down its
    memory is off the run's path. The CPU reported is the run's: less what the process had spent
    (`before_ms`) when the request came."""
    try:
        usage = _getrusage(resource.RUSAGE_SELF)
        done = {
            "done": True,
            "exit_code": code,
            "cpu_ms": max(round((usage.ru_utime + usage.ru_stime) * 1000 - before_ms, 3), 0.0),
            "memory_bytes": usage.ru_maxrss * 1024,
        }
        _write(ERROR_FD, _dumps(done).encode() + b"\n")
    except BaseException:  # noqa: S110 - without the record the service waits for the exit
        pass
    finally:
        _exit(code)


def is_user_file(filename: str) -> bool:
    """True for the file a run executes and for a session's cells (`<cell 3>`)."""
    return filename == USER_FILE or filename.startswith(CELL_FILE_PREFIX)


def _user_traceback(exc: BaseException) -> str:
    """The traceback with the sandbox's own frames cut: the user sees only their code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_file(f.filename)]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += [shorten(line) for line in traceback.format_exception_only(type(exc), exc)]
    return "".join(lines)


def prepare_python() -> None:
    """Make the snippet's stdio objects ahead of the request: they name fds 0-2, which the child
    points at its pipes (dup2) once the request arrives."""
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace"
    )
    sys.stderr = io.TextIOWrapper(  # line-buffered, as CPython's own stderr is
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _run_python(request: dict[str, Any], limits: dict[str, int], outputs: Outputs) -> int:
    if request.get("stream"):  # each line goes out as it is printed, as in a terminal
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.argv = [USER_FILE, *request.get("args", [])]
    sys.path[0:0] = [os.getcwd()]
    scope: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": USER_FILE,
        "__builtins__": builtins,
        "display": outputs.display,
    }
    return run_python_source(request["code"], scope, USER_FILE, outputs)


def run_python_source(
    source: str,
    scope: dict[str, Any],
    filename: str,
    outputs: Outputs,
    interrupted: Callable[[], str | None] = lambda: None,
) -> int:
    """Run `source` in `scope` as file `filename`, like a notebook cell: the last expression's
    value and the open figures become results; every user error is reported, none escapes.
    Returns the exit code. `interrupted()` names the limit that interrupted the code, if one did
    (a session's cell is stopped with `KeyboardInterrupt`)."""
    code = 0
    try:
        body, last = split_last_expression(source, filename)
        exec(body, scope)  # noqa: S102 - this is the sandbox
        if last is not None:
            outputs.value(eval(last, scope))  # noqa: S307 - the snippet's own last expression
        outputs.figures()
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:  # every user error is reported, none escapes
        trace = _user_traceback(exc)
        limit = "memory" if isinstance(exc, MemoryError) else None
        if isinstance(exc, KeyboardInterrupt):
            limit = interrupted()
        report_error(type(exc).__name__, str(exc), trace, limit)
        sys.stderr.write(trace)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    return code


def split_last_expression(source: str, filename: str = USER_FILE) -> tuple[Any, Any]:
    """The snippet compiled as a module, and its last statement compiled apart when it is an
    expression (its value is shown, as a notebook cell's is); None when it is not."""
    tree = ast.parse(source, filename)
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return compile(tree, filename, "exec"), None
    tree.body.pop()
    return compile(tree, filename, "exec"), compile(ast.Expression(last.value), filename, "eval")


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    sys.stderr.write(f"{exc.code}\n")
    return 1


# Every built-in the prelude needs is captured before user code runs and called through the
# captured `Reflect.apply`: a snippet replacing `Array.prototype.join` or adding
# `Object.prototype.toJSON` used to break the collection of its output (an internal error).
_JS_PRELUDE = """(() => {
  const stringify = JSON.stringify, apply = Reflect.apply, text = String, max = Math.max;
  const join = Array.prototype.join, map = Array.prototype.map, push = Array.prototype.push;
  const slice = String.prototype.slice, ErrorType = Error, out = [], err = [];
  let size = 0, over = false, limit = 0;
  globalThis.scriptArgs = [];
  const show = (v) => {
    if (typeof v === "string") return v;
    if (v instanceof ErrorType) return text(v);
    try { const s = stringify(v); return s === undefined ? text(v) : s; } catch (e) { return text(v); }
  };
  const write = (buffer, args) => {
    const line = apply(join, apply(map, args, [show]), [" "]) + "\\n";
    if (size + line.length > limit) {
      apply(push, buffer, [apply(slice, line, [0, max(0, limit - size)])]);
      size = limit; over = true;
      throw new RangeError("output limit exceeded");
    }
    size += line.length; apply(push, buffer, [line]);
  };
  globalThis.console = Object.freeze({
    log: (...a) => write(out, a), info: (...a) => write(out, a), debug: (...a) => write(out, a),
    warn: (...a) => write(err, a), error: (...a) => write(err, a),
  });
  // Held only by Python (never reachable from user code): set the cap (and start from empty
  // buffers: a session's context runs many cells), then read the output. Built by concatenating
  // primitive strings, which no user code can intercept.
  return (cap) => {
    if (cap !== undefined) {
      limit = cap; out.length = 0; err.length = 0; size = 0; over = false;
      return "";
    }
    const o = stringify(apply(join, out, [""])), e = stringify(apply(join, err, [""]));
    return "[" + o + "," + e + "," + (over ? "true" : "false") + "]";
  };
})()"""

_js: list[Any] = []  # [context, handle] made while waiting for a request (JS runs only)


def prepare_javascript() -> None:
    """Create the QuickJS context and its console ahead of the request (~0.4 ms off a JS run)."""
    import _quickjs  # type: ignore[import-not-found]  # pre-imported by the zygote

    context = _quickjs.Context()
    context.set_max_stack_size(_JS_STACK_BYTES)
    take = context.eval(_JS_PRELUDE)
    _js[:] = [context, take]
    # Touch the run's own steps once (limits, an eval, reading the empty output back) so their
    # copy-on-write faults are paid now rather than after the request arrives.
    context.set_memory_limit(-1)
    context.set_time_limit(-1)
    context.eval("void 0")
    json.loads(take())
    _dumps({"done": True, "exit_code": 0, "cpu_ms": 0.0})


def run_javascript(request: dict[str, Any], limits: dict[str, int], outputs: Outputs) -> int:
    """Evaluate `request["code"]` in this child's QuickJS context (a session keeps it between
    cells), within the CPU, memory and output limits; returns the exit code."""
    import _quickjs  # pre-imported by the zygote

    if not _js:
        prepare_javascript()
    context, take = _js
    # The JS heap gets the memory limit minus headroom, so that the address-space limit (which also
    # covers the interpreter) is never what stops it: an out-of-memory JS program is reported cleanly.
    heap_bytes = max(limits["memory_bytes"] - _JS_HEADROOM_BYTES, _JS_HEADROOM_BYTES)
    context.set_memory_limit(heap_bytes)
    cpu_started = time.process_time()
    context.set_time_limit(limits["cpu_time_ms"] / 1000)
    take(limits["max_output_bytes"])
    if request.get("args"):
        context.set("scriptArgs", context.parse_json(json.dumps(request["args"])))
    report: tuple[str, str, str, str | None] | None = None
    value: Any = None
    try:
        value = context.eval(request["code"])
        while context.execute_pending_job():
            pass
    except _quickjs.JSException as exc:
        message = str(exc)
        head = message.split("\n", 1)[0]
        name, _, value = head.partition(": ")
        limit = None
        if head in {"null", "InternalError: out of memory"} or _out_of_heap(context):
            # quickjs reports "null" when it cannot even allocate the error object, and the
            # binding a placeholder when it cannot allocate the message: the heap is what ran out.
            name, value, limit = "InternalError", "out of memory", "memory"
        elif head == "InternalError: interrupted":
            limit = "time"
        report = (name or "Error", value, message, limit)
    except _quickjs.StackOverflow as exc:
        report = ("RangeError", str(exc) or "stack overflow", "", None)
    # quickjs ends a runaway promise job at the time limit without raising: detect it by the clock.
    if report is None and time.process_time() - cpu_started >= limits["cpu_time_ms"] / 1000:
        report = ("InternalError", "interrupted", "", "time")
    context.set_memory_limit(heap_bytes + _JS_HEADROOM_BYTES // 2)  # room to collect the output
    stdout, stderr, over = json.loads(take())
    os.write(1, stdout.encode("utf-8", "backslashreplace"))
    os.write(2, stderr.encode("utf-8", "backslashreplace"))
    if over:
        report = ("RangeError", "output limit exceeded", "", "output")
    if report is not None:
        report_error(*report)
        return 1
    _javascript_value(value, outputs)
    return 0


def _javascript_value(value: Any, outputs: Outputs) -> None:
    """The script's completion value (`1 + 1` shows 2), as JSON when it is an object."""
    if value is None:
        return
    if isinstance(value, bool):
        outputs.javascript_value("true" if value else "false", as_json=False)
    elif isinstance(value, int | float | str):
        outputs.javascript_value(str(value), as_json=False)
    else:
        try:
            text = value.json()
        except Exception:  # a cycle, a BigInt: JSON cannot say it
            text = None
        if isinstance(text, str) and text not in {"undefined", ""}:
            outputs.javascript_value(text, as_json=True)


def _out_of_heap(context: Any) -> bool:
    """True when the QuickJS heap is (within 5%) at its limit, so an error may be unreadable."""
    usage = context.memory()
    return bool(usage["malloc_size"] >= _HEAP_FULL_SHARE * usage["malloc_limit"])


def warm_up() -> None:
    """Run the hot path once while waiting for a request: the copy-on-write page faults it causes
    (reference counts are writes) are then paid before the request arrives, not after."""
    scope: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    warm, last = split_last_expression("import math\nx = [math.factorial(5), str(1)]\nlen(x)\n")
    exec(warm, scope)  # noqa: S102 - our own constant code
    Outputs(0, "png").value(eval(last, scope))  # noqa: S307 - our own constant code (sends nothing)
    warm_walk()
    _dumps({"done": True, "exit_code": 0, "cpu_ms": 0.0})
    traceback.format_exception_only(ValueError, ValueError("x"))


def run_child(
    request: dict[str, Any],
    seccomp: SeccompLoader,
    rlimits: LimitSetter,
    run_dir: str,
    inputs: dict[str, bytes],
) -> None:
    """Lock down this freshly forked process, run the request, and exit; never returns.

    `setsid()`, `rlimits.prepare()` and the main seccomp filter already ran while the child waited
    for its request; `seccomp` here is the small filter that locks the limits this sets. `run_dir`
    is the run's directory, opened before user code (which may move or replace it), and `inputs`
    the files written there: what the run wrote or changed there is returned.
    """
    code = 70  # EX_SOFTWARE: the sandbox itself failed before user code ran
    before_ms = _cpu_ms()
    try:
        # First on the report pipe, before user code: the service subtracts it from the CPU the
        # zygote reports if this process is killed (a warm-up may have cost ~0.1 s of CPU).
        _write(ERROR_FD, _dumps({"cpu_before_ms": before_ms}).encode() + b"\n")
        limits: dict[str, int] = request["limits"]
        rlimits.apply(limits, before_ms)
        if request.get("env"):
            os.environ.update(request["env"])
        seccomp.load(stacked=True)
        outputs = Outputs(limits["max_output_bytes"], request.get("figure_format", "png"))
        python = request["language"] == "python"
        run = _run_python if python else run_javascript
        code = run(request, limits, outputs)
        outputs.finish()
        if python:  # a JavaScript run has no file API: nothing to look for
            _return_files(run_dir, inputs, limits)
    except BaseException as exc:  # report, then exit: a child must never return
        report_error("SandboxError", f"{type(exc).__name__}: {exc}", "")
    finally:
        _finish(code, before_ms)


def _return_files(run_dir: str, inputs: dict[str, bytes], limits: dict[str, int]) -> None:
    """Return what the run left in its directory. Whatever the snippet did to that directory
    (moved it, put a link in its place), everything in the scratch is the run's own: the zygote
    empties all of it after each run. A link is never followed."""
    if not limits["max_returned_files"]:
        return
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        os.write(2, b"the run's directory was replaced: its files are not returned\n")
        return
    try:
        written_files(fd, inputs, limits["max_returned_files"], limits["max_returned_bytes"])
    except OSError as exc:  # the snippet used up its open files, say: it is told, not failed
        os.write(2, f"the run's files could not be collected: {exc}\n".encode())
    finally:
        os.close(fd)
