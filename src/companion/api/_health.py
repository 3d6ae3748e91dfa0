"""`/livez` (the process answers) and `/readyz` (every configured dependency answers)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from companion.api._answer import Answer
from companion.api._context import request_id_of, trace_id_of
from companion.api._problems import ProblemResponse, problem_body
from companion.api._state import app_state
from companion.errors import DependencyUnavailable

__all__ = ["router"]

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class CheckResult(Answer):
    """Outcome of one readiness check."""

    ok: bool
    critical: bool
    duration_ms: float
    detail: str | None = None
    error: str | None = None


class Readiness(Answer):
    """Every critical check passed (`degraded`: a non-critical one failed)."""

    status: Literal["ready", "degraded"]
    checks: dict[str, CheckResult]


@router.get("/livez", summary="Liveness: the process answers")
async def livez() -> Liveness:
    """Never touches a dependency, so a slow Redis does not get the process restarted."""
    return Liveness()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: every configured dependency answers",
    description="503 (problem+json with a `checks` member) when a critical check fails.",
)
async def readyz(request: Request) -> Any:
    """200 with per-check timings, or 503 problem+json carrying the same `checks`."""
    report = await app_state(request).monitor.run_health_checks()
    checks = {
        result.name: CheckResult(
            ok=result.ok,
            critical=result.critical,
            duration_ms=round(result.duration_ms, 3),
            detail=result.detail,
            error=result.error,
        )
        for result in report.checks
    }
    if report.status != "failed":
        return Readiness(status="ready" if report.status == "ok" else "degraded", checks=checks)
    failed = sorted(name for name, check in checks.items() if not check.ok and check.critical)
    error = DependencyUnavailable(f"Not ready: {', '.join(failed)} failed.")
    scope = request.scope
    body = problem_body(error, request.url.path, request_id_of(scope), trace_id_of(scope))
    body["checks"] = {name: check.model_dump() for name, check in checks.items()}
    return ProblemResponse(body, status_code=error.status)
