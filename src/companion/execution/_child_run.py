"""One run on a prepared child, driven from the service's event loop: request in, output out.

The zygote hands the service each child's pipe ends and a pidfd, so a run's request and output never
pass through the zygote: the service writes the request to the child's control pipe, reads its three
output pipes, and kills it through the pidfd at the wall-time limit or the output cap. Relaying
through the zygote cost two more cross-process hand-offs a run (JavaScript round trip in the bench:
1.7 ms then, 1.4 ms now).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Capture", "FrameWriter", "OutputListener", "PreparedChild", "run_on_child"]

# Told of output as it arrives: ("stdout" | "stderr", text) and ("result", an unchecked record).
OutputListener = Callable[[str, Any], None]

_READ_CHUNK = 65536
# The child's error report (raw JSON line, "" if none) and its exit record, if any.
Reports = tuple[str, dict[str, Any] | None]
_REPORT_BYTES = 65536  # the error and exit records, and what frames results and files
# Result records kept at most: each costs the service ~100 bytes of objects however small its line,
# so their number is bounded besides their bytes (a real run sends one per representation).
_MAX_RESULTS = 10_000
_TRUNCATABLE = frozenset({"results", "files", "entries"})


@dataclass(slots=True)
class PreparedChild:
    """A child waiting for its request: its pid and the service's ends of its pipes and pidfd."""

    pid: int
    control: int
    stdout: int
    stderr: int
    report: int
    pidfd: int

    @classmethod
    def from_fds(cls, pid: int, fds: Sequence[int]) -> PreparedChild:
        """Take ownership of the five fds a `child` message carried (control first, pidfd last)."""
        for fd in fds[:4]:
            os.set_blocking(fd, False)
        control, stdout, stderr, report, pidfd = fds
        return cls(pid, control, stdout, stderr, report, pidfd)

    def close_pipes(self) -> None:
        """Close the pipe ends; the pidfd stays open until the zygote has reported the exit."""
        for name in ("control", "stdout", "stderr", "report"):
            self._close(name)

    def kill(self) -> None:
        """SIGKILL through the pidfd (never a reused pid); a child already gone is fine."""
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def close_pidfd(self) -> None:
        """Close the pidfd only: the pipes belong to the run until it closes them itself."""
        self._close("pidfd")

    def close(self) -> None:
        """Close every fd still held; a waiting child reads EOF on its control pipe and exits."""
        for name in ("control", "stdout", "stderr", "report", "pidfd"):
            self._close(name)

    def _close(self, name: str) -> None:
        fd = getattr(self, name)
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
            setattr(self, name, -1)


@dataclass
class Capture:
    """Output of one run, capped in total across stdout and stderr, plus the child's reports.

    Report lines are parsed once each, as they complete: parsing the whole report buffer on every
    wake-up let a snippet that kept writing garbage lines to it (32,000 failing parses a wake-up)
    slow every other run on the event loop 80-fold. More report than a real one can be (the child
    bounds its own) kills the run like an output flood.
    """

    cap_bytes: int
    returned_bytes: int = 0  # what results and returned files may add to the report
    max_files: int = 0  # file records kept at most (the run's `max_returned_files`)
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    report: bytearray = field(default_factory=bytearray)
    truncated: set[str] = field(default_factory=set)
    results: list[Any] = field(default_factory=list)  # `result` records, unchecked
    files: list[Any] = field(default_factory=list)  # `file` records, unchecked
    entries: list[Any] = field(default_factory=list)  # a workspace listing's records, unchecked
    max_entries: int = 0  # `entry` records kept at most (a session's file listing)
    cpu_before: Any = None  # the CPU the child had spent when its request came, unchecked
    listener: OutputListener | None = None
    # Streamed text is decoded as it comes; a character split between two reads waits for its end.
    _decoders: dict[str, codecs.IncrementalDecoder] = field(default_factory=dict)
    _report_bytes: int = 0  # received on the report pipe in all
    _garbage_bytes: int = 0  # of lines that were no record, or a second error
    _error: str = ""
    _done: dict[str, Any] | None = None

    def add(self, stream: str, chunk: bytes) -> bool:
        """Keep what fits under the cap; False once the cap is passed."""
        if stream == "report":
            room = _REPORT_BYTES + self.returned_bytes - self._report_bytes
            kept = chunk[: max(room, 0)]
            self._report_bytes += len(kept)
            self.report += kept
            self._parse_reports()
            if len(chunk) > room or self._garbage_bytes > _REPORT_BYTES:
                self.truncated.add("report")
                return False
            return True
        buffer = self.stdout if stream == "stdout" else self.stderr
        room = self.cap_bytes - len(self.stdout) - len(self.stderr)
        kept = chunk[: max(room, 0)]
        buffer += kept
        if self.listener is not None and kept:
            self._stream(stream, kept)
        if len(chunk) > room:
            self.truncated.add(stream)
            return False
        return True

    def _parse_reports(self) -> None:
        """Parse the complete lines received, then keep only the unfinished one: a run that
        returns megabytes of files is not held twice."""
        end = self.report.rfind(b"\n") + 1
        if not end:
            return
        try:
            for line in bytes(self.report[:end]).splitlines():
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    record = None
                # User code may write to the report pipe: a little garbage is ignored; more than
                # a real report can hold ends the run (parsing it costs the event loop).
                if not isinstance(record, dict) or not self._took(record, line):
                    self._garbage_bytes += len(line) + 1
        finally:  # parsed lines never stay: a line that broke parsing is not parsed again
            del self.report[:end]

    def _took(self, record: dict[str, Any], line: bytes) -> bool:
        try:
            return self._take(record, line)
        except Exception:  # a record of an unexpected shape is garbage, never the loop's error
            return False

    def _take(self, record: dict[str, Any], line: bytes) -> bool:
        """Keep one report record; False for one that is none of the child's (a second error)."""
        if record.get("done") is True:
            self._done = record
        elif "result" in record:
            if len(self.results) >= _MAX_RESULTS:
                return False  # more than the child sends (it bounds them in bytes): forged
            self.results.append(record["result"])
            if self.listener is not None:
                self.listener("result", record["result"])
        elif "file" in record or "entry" in record:
            return self._take_file(record)
        elif isinstance(kind := record.get("truncated"), str) and kind in _TRUNCATABLE:
            self.truncated.add(kind)
        elif "cpu_before_ms" in record:
            if self.cpu_before is None:  # the child's own, written before user code ran
                self.cpu_before = record["cpu_before_ms"]
        elif not self._error:
            self._error = line.decode("utf-8", "replace")
        else:
            return False
        return True

    def _take_file(self, record: dict[str, Any]) -> bool:
        """A returned file's record, or a workspace listing's; False past what may come."""
        if "file" in record:
            if len(self.files) >= self.max_files:
                return False  # more than the run may return: forged
            self.files.append(record["file"])
        else:
            if len(self.entries) >= self.max_entries:
                return False  # more than a listing sends: forged
            self.entries.append(record["entry"])
        return True

    def _stream(self, stream: str, chunk: bytes) -> None:
        assert self.listener is not None
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(chunk)
        if text:
            self.listener(stream, text)

    def end_streams(self) -> None:
        """The run is over: a character left unfinished on a stream is streamed as U+FFFD, as the
        result's text decodes it."""
        if self.listener is None:
            return
        for stream, decoder in self._decoders.items():
            if text := decoder.decode(b"", final=True):
                self.listener(stream, text)

    def reports(self) -> Reports:
        """The child's error report (raw JSON line, "" if none) and its exit record, if any."""
        return self._error, self._done

    def raw_result(self, killed: str | None, error: str, memory_base_bytes: int) -> dict[str, Any]:
        """What was captured, in the shape `to_result` reads (the exit's fields are added by
        the caller); streams still being decoded are ended first."""
        self.end_streams()
        return {
            "killed": killed,
            "results": self.results,
            "files": self.files,
            "stdout": self.stdout.decode("utf-8", "replace"),
            "stderr": self.stderr.decode("utf-8", "replace"),
            "truncated": sorted(self.truncated),
            "error": error,
            "memory_base_bytes": memory_base_bytes,
        }


class FrameWriter:
    """Writes one frame to a child's control pipe from the event loop, as fast as the pipe takes
    it; `on_sent` is called once it is all written, or the child is gone (EPIPE)."""

    def __init__(self, fd: int, frame: bytes, on_sent: Callable[[], None] = lambda: None) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._unsent = memoryview(frame)
        self._on_sent = on_sent
        self._writing = False

    def send(self) -> None:
        """Write what the pipe takes now; the rest when the child has read some."""
        try:
            while self._unsent:
                self._unsent = self._unsent[os.write(self._fd, self._unsent) :]
        except BlockingIOError:
            if not self._writing:
                self._loop.add_writer(self._fd, self.send)
                self._writing = True
            return
        except OSError:
            pass  # the child died before reading it all: its pipes and exit status tell why
        self.detach()
        self._on_sent()

    def detach(self) -> None:
        """Stop writing (idempotent)."""
        self._unsent = memoryview(b"")
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False


class _ChildRun:
    """The event-loop callbacks of one run; `finished` resolves when the run is over."""

    def __init__(self, child: PreparedChild, capture: Capture, request: bytes) -> None:
        self._loop = asyncio.get_running_loop()
        self._child = child
        self._capture = capture
        # A run's child reads one request: its control pipe is closed once it is sent.
        self._writer = FrameWriter(child.control, request, self._close_control)
        self._open = {child.stdout: "stdout", child.stderr: "stderr", child.report: "report"}
        self._timer: asyncio.TimerHandle | None = None
        self.killed: str | None = None
        self.reports: Reports | None = None  # parsed when the exit record arrived
        self.finished: asyncio.Future[None] = self._loop.create_future()

    def start(self, wall_s: float) -> None:
        for fd in self._open:
            self._loop.add_reader(fd, self._on_output, fd)
        self._timer = self._loop.call_later(wall_s, self._kill, "timeout")
        self._writer.send()

    def _close_control(self) -> None:
        self._writer.detach()
        if self._child.control >= 0:
            os.close(self._child.control)
            self._child.control = -1

    def _on_output(self, fd: int) -> None:
        stream = self._open[fd]
        if not self._drain(fd, stream):
            return
        if stream == "report" and (reports := self._capture.reports())[1] is not None:
            self.reports = reports
            # The exit record comes after the child's last output write, so all of its output
            # is in the pipes now: take it without waiting for each pipe's end of file.
            for other in [f for f in self._open if f != fd]:
                if not self._drain(other, self._open[other]):
                    return
            self.stop()
        elif not self._open:
            self.stop()

    def _drain(self, fd: int, stream: str) -> bool:
        """Read what `fd` holds; False once the run was killed for output."""
        while True:
            try:
                chunk = os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:  # the child closes its pipes as its last act (or by exiting)
                self._loop.remove_reader(fd)
                del self._open[fd]
                return True
            if not self._capture.add(stream, chunk):
                self._kill("output_limit")
                return False
            if len(chunk) < _READ_CHUNK:
                return True  # emptied it: spare the read that would only say EAGAIN

    def _kill(self, reason: str) -> None:
        self.killed = self.killed or reason
        self._child.kill()
        self.stop()

    def stop(self) -> None:
        """Detach every callback; idempotent."""
        if self._timer is not None:
            self._timer.cancel()
        for fd in self._open:
            self._loop.remove_reader(fd)
        self._open.clear()
        self._close_control()
        if not self.finished.done():
            self.finished.set_result(None)


async def run_on_child(
    child: PreparedChild, request: bytes, capture: Capture, wall_s: float
) -> tuple[str | None, Reports]:
    """Send `request` (one frame) and collect output until the child closes its pipes.

    Returns why the child was killed ("timeout", "output_limit", or None) and its reports.
    """
    run = _ChildRun(child, capture, request)
    run.start(wall_s)
    try:
        await run.finished
    except BaseException:
        child.kill()  # cancelled: never leave a child running unsupervised
        raise
    finally:
        run.stop()
    return run.killed, run.reports or capture.reports()
