"""One zygote process seen from the service: start it, run snippets on its children, notice when it dies.

The zygote sends each prepared child's pipe ends and pidfd over a `SOCK_SEQPACKET` socket, and the
service runs the child directly (`_child_run`). When a child exits, the zygote reaps it, wipes the
scratch directory, sends `finished` and orders a replacement; the next run on this zygote waits for
that message (scratch must be empty), and a run whose child did not report its own exit waits for it
too (its wait status and usage are in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from companion.execution._child_run import Capture, OutputListener, PreparedChild, run_on_child
from companion.execution._launcher import LaunchPlan
from companion.execution._outcome import exit_record, usage_record
from companion.execution.sandbox.protocol import (
    CHILD_KINDS,
    CHILDREN_PER_KIND,
    frame_bytes,
    receive_message,
    send_message,
)

__all__ = ["Zygote", "ZygoteFailed", "ZygoteLost", "exit_fields", "service_fds_per_zygote"]

_log = logging.getLogger("companion.execution")
_STDERR_TAIL_BYTES = 4096
# A returned file's record around its content: a path of up to 900 characters, each up to 12
# bytes once JSON escapes it (a non-ASCII character as a surrogate pair), and a MIME type.
_FILE_RECORD_BYTES = 12 * 1024
_CHILD_FDS = 5  # control, stdout, stderr, report, pidfd
# A child that sent its exit record (its last act) gets this long to exit before it is killed;
# exiting takes well under a millisecond, and a forged record buys a spinning snippet no more.
_EXIT_GRACE_S = 0.25
# How long the zygote may take to report a child's exit once the child is done or killed.
_ZYGOTE_GUARD_S = 5.0
# How long a killed zygote may take to be reaped and to close its stderr. A SIGKILLed process
# is normally gone in microseconds; the bound keeps a shutdown from hanging on one that is not
# (seen once in CI: an executor's close waited forever on a spare session's sandbox).
_KILL_WAIT_S = 10.0


def returned_report_bytes(limits: dict[str, int]) -> int:
    """Report bytes a run's results and returned files may take, as the child sends them:
    results within the output limit, files in base64 with a record around each."""
    files_bytes = -(-limits["max_returned_bytes"] // 3) * 4
    return (
        limits["max_output_bytes"] + files_bytes + _FILE_RECORD_BYTES * limits["max_returned_files"]
    )


def service_fds_per_zygote(languages: list[str]) -> int:
    """File descriptors the service holds for one zygote: its socket, its stderr pipe, and five
    per prepared child (two per language it runs)."""
    kinds = sum(language in CHILD_KINDS for language in languages)
    return 2 + CHILDREN_PER_KIND * kinds * _CHILD_FDS


class ZygoteFailed(Exception):
    """The zygote died, hung or broke the protocol; it must be replaced."""


class ZygoteLost(ZygoteFailed):
    """The zygote failed before the run's request reached a child: the run may go elsewhere."""


class Zygote:
    """A running zygote and the children it has prepared; one run at a time."""

    def __init__(
        self,
        plan: LaunchPlan,
        index: int,
        slot: int = 0,
        on_failure: Callable[[Zygote], None] | None = None,
    ) -> None:
        self.plan = plan
        self.index = index
        self.slot = slot  # which sandbox identity (uid, gid) it runs as
        self._on_failure = on_failure
        self.runs = 0
        self.landlock_abi = 0
        self._memory_base_bytes = 0
        self._process: asyncio.subprocess.Process | None = None
        self._socket: socket.socket | None = None
        self._stderr_tail = b""
        self._stderr_task: asyncio.Task[None] | None = None
        self._children: dict[str, deque[PreparedChild]] = {k: deque() for k in CHILD_KINDS.values()}
        self._changed = asyncio.Event()  # a child arrived, a run was finished, or it failed
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        # Children handed to a run whose exit the zygote has not reported yet.
        self._active: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._failure: ZygoteFailed | None = None
        # What the zygote owes: a replacement child per `finished`, and a `finished` per run
        # that ended. The watchdog fails it when it stops delivering: a hung zygote or template
        # is found (and replaced) while idle, not by the next run that waits on it.
        self._owed_children = 0
        self._ended: set[int] = set()  # children whose run ended, their `finished` not yet read
        self._watchdog: asyncio.TimerHandle | None = None
        # A session's sandbox prepares one child and never replaces it (see `sandbox/session`).
        self._replaces_children = not plan.init.get("session")

    @property
    def pid(self) -> int | None:
        """The zygote's process id (the bubblewrap process under bubblewrap)."""
        return self._process.pid if self._process else None

    @property
    def memory_base_bytes(self) -> int:
        """The resident set a child inherits (its peak RSS starts from it)."""
        return self._memory_base_bytes

    @property
    def clean(self) -> bool:
        """True when a run could start at once: its previous child reaped and its scratch wiped."""
        return not self._active and not self._ended

    @property
    def alive(self) -> bool:
        """True while the process runs and keeps to the protocol."""
        return (
            self._failure is None and self._process is not None and self._process.returncode is None
        )

    async def start(self, timeout_s: float) -> None:
        """Start the process, send the init message and wait for it to be ready."""
        loop = asyncio.get_running_loop()
        argv, env, cwd = self.plan.argv(self.index)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=theirs.fileno(),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=cwd,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        ready: dict[str, Any] = {}
        try:
            send_message(ours, self.plan.init_frame(self.index, self.slot))
            async with asyncio.timeout(timeout_s):
                ready = await self._ready
        except (TimeoutError, OSError) as exc:
            self._fail(f"did not get ready: {type(exc).__name__}")
        except ZygoteFailed:
            pass  # `_fail` ran: raised below
        if self._failure is not None:
            await self.kill()
            raise self._failure
        self.landlock_abi = int(ready.get("landlock_abi", 0))
        self._memory_base_bytes = int(ready.get("memory_base_bytes", 0))

    async def run(
        self, request: dict[str, Any], timeout_s: float, listener: OutputListener | None = None
    ) -> dict[str, Any]:
        """Run one request on a prepared child; the result has the shape `to_result` reads.
        `listener` is told of output as it arrives."""
        self.runs += 1
        limits = request["limits"]
        wall_s = limits["wall_time_ms"] / 1000
        kind = CHILD_KINDS[request["language"]]
        child = self._take_now(kind)
        if child is None:
            try:
                async with asyncio.timeout(timeout_s - wall_s):
                    child = await self._take(kind)
            except TimeoutError:
                self._fail("prepared no child in time")
            except ZygoteFailed:
                pass  # `_fail` ran
            if child is None:
                raise ZygoteLost(str(self._failure))
        exited = self._active[child.pid]
        # The pidfd stays open until the zygote reports the exit, so the child can be killed
        # (never a reused pid) if it outlives its exit record. Only the pidfd: `finished` can be
        # read in the same loop turn as a `child` message, before this run has read its pipes,
        # and closing them then (while the selector still watched them) turned about one run in
        # 2,000 into a false timeout or an empty "ok", and stalled later runs on reused fd numbers.
        exited.add_done_callback(lambda _: child.close_pidfd())
        try:
            return await self._run_on(child, exited, request, wall_s, listener)
        finally:
            child.close_pipes()
            if not exited.done() and self._failure is None:
                self._ended.add(child.pid)  # its `finished` is owed now
                if self._watchdog is None:
                    self._rearm_watchdog()
            if not exited.done():
                grace = asyncio.get_running_loop().call_later(_EXIT_GRACE_S, child.kill)
                exited.add_done_callback(lambda _: grace.cancel())

    async def _run_on(
        self,
        child: PreparedChild,
        exited: asyncio.Future[dict[str, Any]],
        request: dict[str, Any],
        wall_s: float,
        listener: OutputListener | None,
    ) -> dict[str, Any]:
        started = time.monotonic()
        limits = request["limits"]
        capture = Capture(
            limits["max_output_bytes"],
            returned_report_bytes(limits),
            max_files=limits["max_returned_files"],
            listener=listener,
        )
        frame = frame_bytes(orjson.dumps(request))
        killed, (error, done) = await run_on_child(child, frame, capture, wall_s)
        result = capture.raw_result(killed, error, self._memory_base_bytes)
        if killed is None and done is not None:
            # The child said how it ended and closed its pipes: answer now; the zygote reaps it.
            record = exit_record(done)
            if record is None:
                child.kill()
                return {"internal_error": f"the run's exit record was malformed: {_excerpt(done)}"}
            result.update(record, signal=None, wall_ms=_elapsed_ms(started))
            return result
        if killed is None:
            # Crashed, or closed its pipes early and lives on: it has the rest of its wall time.
            try:
                async with asyncio.timeout(max(started + wall_s - time.monotonic(), 0.0)):
                    await asyncio.shield(exited)
            except TimeoutError:
                child.kill()
                result["killed"] = "timeout"
        try:
            async with asyncio.timeout(_ZYGOTE_GUARD_S):
                finished = await exited
        except TimeoutError:
            self._fail(f"did not report the exit of child {child.pid}")
            raise self._failure from None  # type: ignore[misc]
        fields = exit_fields(finished)
        before_ms = _cpu_before_ms(capture.cpu_before, fields["cpu_ms"])
        fields["cpu_ms"] = round(fields["cpu_ms"] - before_ms, 3)
        return {**result, **fields, "wall_ms": _elapsed_ms(started)}

    async def claim(
        self, language: str, timeout_s: float
    ) -> tuple[PreparedChild, asyncio.Future[dict[str, Any]]]:
        """A prepared child of `language` for a caller that drives it itself (a session), and
        the future of its `finished` record (wait status and usage), set when it has exited."""
        try:
            async with asyncio.timeout(timeout_s):
                child = await self._take(CHILD_KINDS[language])
        except TimeoutError:
            self._fail("prepared no child in time")
            raise ZygoteLost(str(self._failure)) from None
        return child, self._active[child.pid]

    async def _take(self, kind: str) -> PreparedChild:
        """A prepared child of `kind`, once the previous run's child is reaped and scratch wiped."""
        while (child := self._take_now(kind)) is None:
            self._changed.clear()
            await self._changed.wait()
        return child

    def _take_now(self, kind: str) -> PreparedChild | None:
        """`_take` when it need not wait (no timer armed: the usual case), else None."""
        if self._failure is not None:
            raise ZygoteLost(str(self._failure))
        if self._active or not self._children[kind]:
            return None
        child = self._children[kind].popleft()
        self._active[child.pid] = asyncio.get_running_loop().create_future()
        return child

    def _on_readable(self) -> None:
        assert self._socket is not None
        while self._failure is None:
            try:
                received = receive_message(self._socket, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except (OSError, ValueError) as exc:
                self._fail(f"broke the protocol: {exc}")
                return
            if received is None:
                self._fail("exited")
                return
            self._dispatch(*received)

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> None:
        if (
            "child" in message
            and len(fds) == _CHILD_FDS
            and message["child"] in self._children
            and _is_pid(message.get("pid"))
        ):
            self._children[message["child"]].append(PreparedChild.from_fds(message["pid"], fds))
            self._owed_children = max(self._owed_children - 1, 0)
            self._rearm_watchdog()
        elif _is_pid(message.get("finished")) and not fds:
            self._owed_children += self._replaces_children
            self._ended.discard(message["finished"])
            self._rearm_watchdog()
            exited = self._active.pop(message["finished"], None)
            if exited is not None:
                if not exited.done():
                    exited.set_result(message)
            else:  # a prepared child died before any run took it (the zygote replaces it)
                self._drop_prepared(message["finished"])
        elif message.get("ready") and self._ready is not None and not fds:
            self._ready.set_result(message)
        else:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fail(f"sent an unexpected message: {sorted(message)}")
            return
        self._changed.set()

    def _rearm_watchdog(self) -> None:
        """Progress was made: a fresh deadline while anything is still owed, else none."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._owed_children or self._ended:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(_ZYGOTE_GUARD_S, self._fail, "stopped answering")

    def _fail(self, reason: str) -> None:
        """Mark the zygote broken: every waiter gets `ZygoteFailed`, its children are let go."""
        first = self._failure is None
        if self._failure is None:
            tail = self._stderr_tail.decode(errors="replace").strip()[-500:]
            self._failure = ZygoteFailed(f"zygote {self.index} {reason} {tail}".strip())
        failure = self._failure
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if first and self._on_failure is not None:
            asyncio.get_running_loop().call_soon(self._on_failure, self)
        if self._socket is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._socket.fileno())
        for future in (self._ready, *self._active.values()):
            if future is not None and not future.done():
                future.set_exception(failure)
                future.exception()  # retrieved here: a waiter may already be gone
        self._active.clear()
        for waiting in self._children.values():
            while waiting:
                waiting.popleft().close()
        self._changed.set()

    def _drop_prepared(self, pid: int) -> None:
        for waiting in self._children.values():
            for child in [c for c in waiting if c.pid == pid]:
                waiting.remove(child)
                child.close()

    async def _drain_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        while chunk := await self._process.stderr.read(4096):
            self._stderr_tail = (self._stderr_tail + chunk)[-_STDERR_TAIL_BYTES:]

    async def kill(self) -> None:
        """Kill the process and reap it; its children die with its sandbox."""
        self._fail("was stopped")
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            try:
                await asyncio.wait_for(process.wait(), _KILL_WAIT_S)
            except TimeoutError:
                _log.error(
                    "zygote %d was killed and not reaped in %.0f s", self.index, _KILL_WAIT_S
                )
        if self._socket is not None:
            self._socket.close()
        if self._stderr_task is not None:
            # Its stderr ends when the sandbox's last process is gone; past the bound, stop
            # reading (the tail is only for messages) rather than wait on it.
            done, _ = await asyncio.wait({self._stderr_task}, timeout=_KILL_WAIT_S)
            if not done:
                _log.error("zygote %d kept its stderr open after it was killed", self.index)
                self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task

    async def close(self) -> None:
        """Ask the zygote to exit (its socket closed), then make sure it did."""
        process = self._process
        self._fail("was closed")  # its waiting children read EOF and exit
        if self._socket is not None:
            self._socket.close()
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), 2)
            except TimeoutError:
                _log.warning("zygote %d did not exit on close; killing it", self.index)
        await self.kill()


def exit_fields(finished: dict[str, Any]) -> dict[str, Any]:
    """A `finished` message's wait status and usage, decoded into the result's fields."""
    status = finished.get("status")
    usage = usage_record(finished)
    if isinstance(status, bool) or not isinstance(status, int) or usage is None:
        raise ZygoteFailed(f"sent a malformed exit report: {_excerpt(finished)}")
    return {
        "exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "cpu_ms": usage["cpu_ms"],
        "memory_bytes": usage["memory_bytes"],
    }


def _cpu_before_ms(value: object, total_ms: float) -> float:
    """The CPU a child said it had spent before its request, when that is a plausible number
    (a snippet could write the record too, but only after the child's own first one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if 0 <= value <= total_ms else 0.0


def _is_pid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _excerpt(record: dict[str, Any]) -> str:
    """A short, printable rendering of a record for an error message."""
    text = orjson.dumps(record, default=str).decode()
    return text if len(text) <= 200 else text[:200] + "…"


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
