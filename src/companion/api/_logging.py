"""Structured logs: one JSON object per line, for the service and uvicorn alike."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import sys
import threading
import time
from typing import Any

import orjson

__all__ = ["JsonFormatter", "NonBlockingStderrHandler", "finish_logging", "logging_config"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra}`; exceptions as a string field."""

    def format(self, record: logging.LogRecord) -> str:
        """One line of JSON."""
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class NonBlockingStderrHandler(logging.Handler):
    """Formats in the caller, writes to stderr from a thread of its own.

    A slow or full stderr (a pipe nobody drains, a backed-up journald) must never stall the event
    loop: lines wait in a bounded queue, and past `max_lines` they are dropped and counted.
    """

    def __init__(self, max_lines: int = 10_000) -> None:
        super().__init__()
        self.dropped = 0
        self._direct = False
        self._lines: queue.Queue[str] = queue.Queue(maxsize=max_lines)
        self._writer = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the formatted line, or drop it when the queue is full."""
        if self._direct:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
            return
        try:
            self._lines.put_nowait(self.format(record))
        except queue.Full:
            self.dropped += 1
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Wait (up to a second) for queued lines to be written."""
        deadline = time.monotonic() + 1.0
        while self._lines.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def write_directly(self) -> None:
        """Drain the queue, then write synchronously: for shutdown, when the loop no longer
        serves requests and the process may be ended by a re-raised signal (no atexit runs)."""
        self.flush()
        self._direct = True

    def _write(self) -> None:
        while True:
            line = self._lines.get()
            try:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass  # stderr closed: keep draining so emitters never block
            finally:
                self._lines.task_done()


def finish_logging() -> None:
    """Make every queued log line reach stderr before the process ends."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, NonBlockingStderrHandler):
            handler.write_directly()


def logging_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for `companion serve` (uvicorn's loggers included)."""
    handler = {"()": NonBlockingStderrHandler, "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper()},
            "uvicorn.access": {"level": "WARNING"},  # our own access line replaces it
        },
    }
