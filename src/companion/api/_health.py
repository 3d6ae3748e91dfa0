"""`/livez` (the process answers) and `/readyz` (every configured dependency answers)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from companion.api._dependencies import DependencyCheck
from companion.api._problems import ProblemResponse, problem_body
from companion.api._state import app_state
from companion.errors import CompanionError, DependencyUnavailable

__all__ = ["router"]

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class CheckResult(BaseModel):
    """Outcome of one readiness check."""

    ok: bool
    duration_ms: float
    detail: str | None = None
    error: str | None = None


class Readiness(BaseModel):
    """Every configured dependency answered."""

    status: Literal["ready"] = "ready"
    checks: dict[str, CheckResult]


@router.get("/livez", summary="Liveness: the process answers")
async def livez() -> Liveness:
    """Never touches a dependency, so a slow Redis does not get the process restarted."""
    return Liveness()


@router.get(
    "/readyz",
    summary="Readiness: every configured dependency answers",
    responses={503: {"description": "A dependency failed; `checks` says which and why."}},
)
async def readyz(request: Request) -> Any:
    """200 with per-check timings, or 503 problem+json carrying the same `checks`."""
    state = app_state(request)
    timeout_s = state.settings.readyz_timeout_s
    names = list(state.dependency_checks)
    results = await asyncio.gather(
        *(_run_check(state.dependency_checks[name], timeout_s) for name in names)
    )
    checks = dict(zip(names, results, strict=True))
    if all(result.ok for result in checks.values()):
        return Readiness(checks=checks)
    failed = sorted(name for name, result in checks.items() if not result.ok)
    error = DependencyUnavailable(f"Not ready: {', '.join(failed)} failed.")
    body = problem_body(error, request.url.path)
    body["checks"] = {name: result.model_dump() for name, result in checks.items()}
    return ProblemResponse(body, status_code=error.status)


async def _run_check(check: DependencyCheck, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    error: str | None = None
    detail: str | None = None
    try:
        detail = await asyncio.wait_for(check(), timeout_s)
    except TimeoutError:
        error = f"timed out after {timeout_s:g} s"
    except CompanionError as exc:
        error = exc.message
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return CheckResult(ok=error is None, duration_ms=duration_ms, detail=detail, error=error)
