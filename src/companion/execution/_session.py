"""One session's sandbox, driven from the service: a zygote of its own and the one child that runs
every cell and file operation of the session (see `sandbox/session.py` for the other side).

An operation is a frame down the child's control pipe; its output comes back on the child's stdout,
stderr and report pipes, which stay open between operations, and it ends with the child's `done`
record. The service enforces the cell's wall time and output cap here: past either, it interrupts
the cell (SIGINT, a `KeyboardInterrupt` in user code); a cell that does not stop within a grace
period is killed (SIGKILL through the pidfd) and the session ends with it. The session also ends
when its process dies on its own (its memory cap, a crash, `os._exit`): `ended` then says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from companion.execution._child_run import Capture, FrameWriter, PreparedChild
from companion.execution._launcher import LaunchPlan
from companion.execution._outcome import exit_record
from companion.execution._zygote import Zygote, ZygoteFailed, exit_fields
from companion.execution.sandbox.protocol import frame_bytes

__all__ = ["INTERRUPT_GRACE_S", "OperationOutcome", "SessionProcess"]

_READ_CHUNK = 65536
# A cell interrupted at a limit gets this long to stop before it is killed (and its session with
# it): enough to unwind a deep stack and print a traceback, not enough to keep computing.
INTERRUPT_GRACE_S = 2.0
_MAX_DRAIN_READS = 256
_INTERRUPT_AGAIN_S = 0.1
_MAX_READS_PER_WAKE = 16
# How long the zygote may take to report the exit of a child that is gone.
_EXIT_REPORT_S = 5.0
# A file operation's own time limit (the workspace is a tmpfs of bounded size).
_FILE_OPERATION_S = 30.0
# Peak RSS growth at or above this share of the memory limit means the cap ended the session.
_NEAR_MEMORY_LIMIT_SHARE = 0.5


@dataclass
class OperationOutcome:
    """What one operation produced, in the shape `to_result` reads (`raw`), and whether the
    session's process is gone since."""

    raw: dict[str, Any]
    capture: Capture
    ended: bool


class SessionProcess:
    """A session's sandbox: its zygote, its child, and the operations run on that child."""

    def __init__(
        self,
        zygote: Zygote,
        child: PreparedChild,
        exited: asyncio.Future[dict[str, Any]],
        memory_base_bytes: int,
    ) -> None:
        self.zygote = zygote
        self._child = child
        self._exited = exited
        self._memory_base_bytes = memory_base_bytes
        self._memory_bytes = 0  # the session's memory limit, set by `begin`
        self.ended: str | None = None  # why the process is gone, once it is
        self._killed_because: str | None = None
        self._running: asyncio.Future[Any] | None = None  # the operation in progress, if any
        self._process_cpu_ms = 0.0  # the child's whole CPU at its last operation's end
        exited.add_done_callback(self._on_exit)

    @classmethod
    async def start(
        cls, plan: LaunchPlan, index: int, slot: int, language: str, timeout_s: float
    ) -> SessionProcess:
        """Start a session's sandbox and wait for its child; `ZygoteFailed` if it cannot."""
        zygote = Zygote(plan, index, slot)
        try:
            await zygote.start(timeout_s)
            child, exited = await zygote.claim(language, timeout_s)
        except BaseException:
            await zygote.kill()
            raise
        return cls(zygote, child, exited, zygote.memory_base_bytes)

    @property
    def pid(self) -> int | None:
        """The sandbox's top process (bubblewrap's, under bubblewrap): for memory accounting."""
        return self.zygote.pid

    @property
    def alive(self) -> bool:
        """True while the child serves (it has not exited and nothing failed)."""
        return self.ended is None and self.zygote.alive

    async def begin(self, limits: dict[str, int]) -> None:
        """Give the child the session's limits (memory for its whole life, a CPU backstop), which
        it then locks; `ZygoteFailed` if it does not confirm."""
        self._memory_bytes = limits["memory_bytes"]
        outcome = await self.operate({"op": "start", "limits": limits}, wall_s=_FILE_OPERATION_S)
        if outcome.ended or outcome.raw.get("exit_code") != 0:
            raise ZygoteFailed(f"the session's sandbox did not start: {outcome.raw}")

    async def operate(
        self,
        frame: dict[str, Any],
        *,
        wall_s: float = _FILE_OPERATION_S,
        capture: Capture | None = None,
        grace_s: float = INTERRUPT_GRACE_S,
    ) -> OperationOutcome:
        """Run one operation; the caller holds the session's lock (one operation at a time).
        Past `wall_s` the cell is interrupted, and killed (its session with it) `grace_s` later."""
        if not self.alive:
            raise ZygoteFailed(self.ended or "the session's sandbox failed")
        capture = capture or Capture(_READ_CHUNK)
        started = time.monotonic()
        operation = _Operation(
            self._child, capture, frame_bytes(orjson.dumps(frame)), self._kill, grace_s
        )
        self._signal(signal.SIGCONT)  # stopped since its last operation (see below)
        running = self._running = asyncio.ensure_future(operation.run(wall_s))
        try:
            killed, error, done = await asyncio.shield(running)
        except asyncio.CancelledError:
            # The caller went away (a streaming client hung up): the cell is stopped as its
            # limit would stop it, and waited for, so the next operation finds the child idle
            # (or the session ended, when the cell did not stop).
            if not running.done():
                operation.interrupt("cancelled")
                with contextlib.suppress(Exception):
                    await running
            self._signal(signal.SIGSTOP)
            raise
        raw = capture.raw_result(killed, error, self._memory_base_bytes)
        raw["wall_ms"] = round((time.monotonic() - started) * 1000, 3)
        record = exit_record(done) if done is not None else None
        if record is not None and not operation.gone:
            # Between operations the whole process is stopped: a thread a cell left running
            # spends no CPU while the session sits idle (it goes on during the next cell).
            self._signal(signal.SIGSTOP)
            self._process_cpu_ms = _process_cpu_ms(done, self._process_cpu_ms)
            raw.update(record, signal=None)
            return OperationOutcome(raw, capture, ended=False)
        # The child is gone (or sent no readable record, or closed its report pipe and lives on:
        # it is killed, its session over).
        if not self._exited_already():
            self._kill("its cell stopped reporting (it closed or garbled the report pipe)")
        try:
            async with asyncio.timeout(_EXIT_REPORT_S):
                finished = await asyncio.shield(self._exited)
            # The exit may have been reported earlier in this loop iteration, its `_on_exit`
            # callback still queued behind this task: say why the session ended now, so the
            # caller reads the real reason (the queued callback then changes nothing).
            self._on_exit(self._exited)
            fields = exit_fields(finished)
            # The exit's CPU is the process's whole life's: this cell's is what came after the
            # last operation's record.
            fields["cpu_ms"] = round(max(fields["cpu_ms"] - self._process_cpu_ms, 0.0), 3)
            raw.update(fields)
        except (TimeoutError, ZygoteFailed) as exc:
            self._set_ended(f"its sandbox failed ({exc})")
            raw.update(exit_code=None, signal=signal.SIGKILL, cpu_ms=0.0, memory_bytes=0)
        return OperationOutcome(raw, capture, ended=True)

    def _on_exit(self, exited: asyncio.Future[dict[str, Any]]) -> None:
        if exited.cancelled() or exited.exception() is not None:
            self._set_ended("its sandbox failed")
            return
        finished = exited.result()
        try:
            fields = exit_fields(finished)
        except ZygoteFailed:
            self._set_ended("its process ended")
            return
        added = fields["memory_bytes"] - self._memory_base_bytes
        near_cap = self._memory_bytes and added >= _NEAR_MEMORY_LIMIT_SHARE * self._memory_bytes
        if fields["signal"] is not None and near_cap:
            self._set_ended(f"it went over its memory limit ({self._memory_bytes} bytes)")
        elif fields["signal"] == signal.SIGKILL:
            self._set_ended(
                self._killed_because
                or "its process was killed from outside the service (SIGKILL: the kernel's "
                "out-of-memory killer, or an operator)"
            )
        elif fields["signal"] is not None:
            self._set_ended(f"its process crashed ({_signal_name(fields['signal'])})")
        else:
            self._set_ended(f"its process exited with code {fields['exit_code']}")

    def _exited_already(self) -> bool:
        """True when the child has exited (its pidfd is readable), whoever reaped it."""
        try:
            return bool(select.select([self._child.pidfd], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def _signal(self, number: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self._child.pidfd, number)

    def _kill(self, because: str) -> None:
        """SIGKILL the child, remembering why (its exit then says so)."""
        self._killed_because = self._killed_because or because
        self._child.kill()

    def _set_ended(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason

    async def close(self) -> None:
        """End the session's process and its sandbox. An operation in progress sees its child
        die (its pipes end) and answers first: its pipes are closed only after it."""
        self._kill("it was closed")
        self._set_ended("it was closed")
        if self._running is not None and not self._running.done():
            await asyncio.wait([self._running])
        self._child.close()
        await self.zygote.kill()


def _signal_name(number: int) -> str:
    """`SIGSEGV` for 11; real-time signals (which `signal.Signals` lacks) by number."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _process_cpu_ms(done: dict[str, Any], previous: float) -> float:
    """The whole-process CPU a `done` record gives, when it is a plausible number."""
    value = done.get("process_cpu_ms")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= previous:
        return previous
    return float(min(value, 2.0**53))


class _Operation:
    """The event-loop callbacks of one operation; `run` resolves when it is over."""

    def __init__(
        self,
        child: PreparedChild,
        capture: Capture,
        frame: bytes,
        kill: Callable[[str], None],
        grace_s: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._child = child
        self._kill = kill
        self._grace_s = grace_s
        self._capture = capture
        # A session's child reads frame after frame: its control pipe stays open.
        self._writer = FrameWriter(child.control, frame)
        self._open = {child.stdout: "stdout", child.stderr: "stderr", child.report: "report"}
        self._timers: list[asyncio.TimerHandle] = []
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self.killed: str | None = None
        self.interrupted = False
        self.gone = False  # the child closed its report pipe: it exited

    async def run(self, wall_s: float) -> tuple[str | None, str, dict[str, Any] | None]:
        """Why the operation was stopped (None, "timeout", "output_limit"), the child's error
        report and its `done` record (None when it sent none)."""
        for fd in self._open:
            self._loop.add_reader(fd, self._on_output, fd)
        self._timers.append(self._loop.call_later(wall_s, self.interrupt, "timeout"))
        try:
            self._writer.send()
            await self._finished
        finally:
            self._stop()
        error, done = self._capture.reports()
        return self.killed, error, done

    def _on_output(self, fd: int) -> None:
        stream = self._open[fd]
        # A bounded number of reads per wake-up: a cell flooding its pipes past the cap (read and
        # dropped) must not hold the event loop, nor the timers that will stop it.
        for _ in range(_MAX_READS_PER_WAKE):
            try:
                chunk = os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._loop.remove_reader(fd)
                del self._open[fd]
                if stream == "report":  # the child exited (a cell may close fd 1 or 2 itself)
                    self.gone = True
                    self._finish()
                return
            if not self._capture.add(stream, chunk):
                if stream == "report":  # more report than a real one: forged, so killed
                    self.killed = self.killed or "output_limit"
                    self._kill("a cell flooded the sandbox's report pipe")
                    self.gone = True
                    self._finish()
                    return
                self.interrupt("output_limit")  # further output is read and dropped
            if len(chunk) < _READ_CHUNK:
                break
        if stream == "report" and self._capture.reports()[1] is not None:
            # The `done` record follows the cell's last output write: take what the other
            # pipes hold now, without waiting for more.
            for other in [f for f in self._open if f != fd]:
                self._drain(other)
            self._finish()

    def _drain(self, fd: int) -> None:
        """Take what `fd` holds now (past the cap, read and dropped, so none of it is left for
        the next operation); bounded, as a cell's thread may still be writing."""
        with contextlib.suppress(OSError):
            for _ in range(_MAX_DRAIN_READS):
                chunk = os.read(fd, _READ_CHUNK)
                self._capture.add(self._open[fd], chunk)
                if len(chunk) < _READ_CHUNK:
                    return

    def interrupt(self, reason: str) -> None:
        """Stop the cell with SIGINT, sent again every 0.1 s (the child drops one that comes
        before the cell's own code runs); kill the child if it has not stopped after the grace."""
        if self.interrupted or self._finished.done():
            return
        self.interrupted = True
        self.killed = self.killed or reason
        self._send_interrupt()
        self._timers.append(
            self._loop.call_later(
                self._grace_s, self._kill, "a cell did not stop when interrupted at its limit"
            )
        )

    def _send_interrupt(self) -> None:
        if self._finished.done():
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self._child.pidfd, signal.SIGINT)
        self._timers.append(self._loop.call_later(_INTERRUPT_AGAIN_S, self._send_interrupt))

    def _finish(self) -> None:
        if not self._finished.done():
            self._finished.set_result(None)

    def _stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for fd in self._open:
            self._loop.remove_reader(fd)
        self._writer.detach()
