"""`/metrics`, `GET /v1/monitoring/report`, `GET /v1/alerts` and `GET /v1/profiling/report`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from companion.api._answer import json_answer
from companion.api._auth import require
from companion.api._observability_answers import AlertListing, MonitoringReport, ProfilingReport
from companion.api._state import State

__all__ = ["router"]

router = APIRouter()
_admin = [Depends(require("admin"))]
SortKey = Literal[
    "total_s", "count", "errors", "avg_s", "min_s", "max_s", "p50_s", "p95_s", "p99_s"
]


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, state: State) -> Response:
    """Prometheus text exposition, collected at scrape time (never on the request path)."""
    if state.settings.metrics_require_key:
        await require("admin")(request)
    body = await asyncio.to_thread(generate_latest, state.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/monitoring/report",
    tags=["observability"],
    summary="Every endpoint, cache and check (admin)",
    response_model=MonitoringReport,
    dependencies=_admin,
)
def monitoring_report(state: State) -> Response:
    """Request statistics per endpoint (count, avg, p50/p95/p99, error rate), caches, alerts."""
    return json_answer(state.monitor.snapshot())


@router.get(
    "/v1/alerts",
    tags=["observability"],
    summary="Firing alerts and recent history (admin)",
    response_model=AlertListing,
    dependencies=_admin,
)
def alerts(state: State) -> Response:
    """Alerts fire once on crossing a threshold and resolve when the value goes back."""
    body = {
        "active": [alert.to_dict() for alert in state.monitor.active_alerts()],
        "history": [alert.to_dict() for alert in state.monitor.alert_history()],
    }
    return json_answer(body)


@router.get(
    "/v1/profiling/report",
    tags=["observability"],
    summary="Profiled names with count, total, percentiles (admin)",
    response_model=ProfilingReport,
    responses={200: {"content": {"text/plain": {}}, "description": "JSON, or a table as text."}},
    dependencies=_admin,
)
def profiling_report(
    state: State,
    sort_by: Annotated[SortKey, Query(description="Column to sort by, descending.")] = "total_s",
    fmt: Annotated[Literal["json", "text"], Query(alias="format")] = "json",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    """Every HTTP route is profiled by the middleware as `http <route>`."""
    report = state.profiler.report(sort_by, fmt=fmt, limit=limit)
    if fmt == "text":
        return PlainTextResponse(report)
    return Response(report, media_type="application/json")
