"""Health checks for `/readyz`: sync or async, run concurrently, each under its own timeout.

A check passes by returning None or True and fails by returning False, raising or timing out; a
failure is reported in the `HealthReport`, never propagated. Sync checks run in the default thread
pool so they cannot block the event loop; one that times out keeps its thread until it returns.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from companion.config import setting_default
from companion.errors import CompanionError, InvalidInput

__all__ = ["HealthCheck", "HealthCheckResult", "HealthReport", "run_checks"]

CheckFn = Callable[[], object] | Callable[[], Awaitable[object]]
Status = Literal["ok", "degraded", "failed"]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A named dependency probe with a timeout; `critical` failures make the service not ready."""

    name: str
    fn: CheckFn
    timeout_s: float = setting_default("readyz_timeout_s")
    critical: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInput("a health check needs a non-empty name")
        if not callable(self.fn):
            raise InvalidInput(f"health check {self.name!r}: fn must be callable")
        if not (isinstance(self.timeout_s, int | float) and 0 < self.timeout_s < float("inf")):
            raise InvalidInput(f"health check {self.name!r}: timeout_s must be > 0")


@dataclass(frozen=True, slots=True)
class HealthCheckResult:
    """The outcome of one check."""

    name: str
    ok: bool
    duration_ms: float
    critical: bool
    error: str | None = None
    detail: str | None = None  # what a passing check chose to say (it returned a string)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "status": "ok" if self.ok else "failed",
            "duration_ms": round(self.duration_ms, 3),
            "critical": self.critical,
            "error": self.error,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Overall status: ok, degraded (only non-critical checks failed) or failed."""

    status: Status
    checks: tuple[HealthCheckResult, ...]

    @property
    def ok(self) -> bool:
        """True unless a critical check failed (degraded still serves traffic)."""
        return self.status != "failed"

    @property
    def http_status(self) -> int:
        """200 when ready, 503 when a critical check failed."""
        return 200 if self.ok else 503

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for `/readyz`."""
        return {"status": self.status, "checks": [check.to_dict() for check in self.checks]}


async def run_checks(checks: list[HealthCheck]) -> HealthReport:
    """Run every check concurrently and summarise."""
    results = await asyncio.gather(*(_run_one(check) for check in checks))
    if any(not r.ok and r.critical for r in results):
        status: Status = "failed"
    elif any(not r.ok for r in results):
        status = "degraded"
    else:
        status = "ok"
    return HealthReport(status, tuple(results))


async def _run_one(check: HealthCheck) -> HealthCheckResult:
    # Durations are real elapsed time whatever clock the monitor uses: they report the dependency.
    start = time.perf_counter()
    error: str | None = None
    detail: str | None = None
    try:
        outcome = await asyncio.wait_for(_invoke(check.fn), timeout=check.timeout_s)
        if outcome is False:
            error = "check returned False"
        elif isinstance(outcome, str):
            detail = outcome
    except TimeoutError:
        error = f"timed out after {check.timeout_s:g} s"
    except CompanionError as exc:
        error = exc.message  # already written for a reader
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    duration_ms = (time.perf_counter() - start) * 1000.0
    return HealthCheckResult(check.name, error is None, duration_ms, check.critical, error, detail)


async def _invoke(fn: CheckFn) -> object:
    if inspect.iscoroutinefunction(fn):
        return await fn()
    result = await asyncio.to_thread(fn)
    if inspect.isawaitable(result):  # a sync callable that returned a coroutine
        return await result
    return result
