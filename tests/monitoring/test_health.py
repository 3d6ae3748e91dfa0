from __future__ import annotations

import asyncio

import pytest

from companion.errors import InvalidInput
from companion.monitoring import Monitor


async def test_all_checks_pass() -> None:
    monitor = Monitor()

    async def database() -> bool:
        return True

    monitor.register_health_check("db", database)
    monitor.register_health_check("disk", lambda: None)
    report = await monitor.run_health_checks()
    assert report.status == "ok"
    assert report.http_status == 200
    assert {c.name: c.ok for c in report.checks} == {"db": True, "disk": True}
    assert monitor.last_health_report is report


async def test_failures_are_reported_never_raised() -> None:
    monitor = Monitor()

    def raises() -> None:
        raise ConnectionError("redis refused")

    async def hangs() -> None:
        await asyncio.Event().wait()  # never set: only the timeout ends it

    monitor.register_health_check("redis", raises)
    monitor.register_health_check("search", hangs, timeout_s=0.05)  # real-time: 50 ms timeout
    monitor.register_health_check("optional", lambda: False, critical=False)
    report = await monitor.run_health_checks()
    by_name = {c.name: c for c in report.checks}
    assert report.status == "failed"
    assert report.http_status == 503
    assert by_name["redis"].error == "ConnectionError: redis refused"
    assert by_name["search"].error == "timed out after 0.05 s"
    assert by_name["search"].duration_ms >= 40
    assert by_name["optional"].error == "check returned False"
    assert not by_name["optional"].critical
    assert report.to_dict()["checks"][0]["status"] == "failed"


async def test_only_non_critical_failures_mean_degraded() -> None:
    monitor = Monitor()
    monitor.register_health_check("core", lambda: True)
    monitor.register_health_check("extra", lambda: 1 / 0, critical=False)
    report = await monitor.run_health_checks()
    assert report.status == "degraded"
    assert report.ok
    assert report.http_status == 200


async def test_no_checks_is_ok() -> None:
    assert (await Monitor().run_health_checks()).status == "ok"


def test_bad_registrations_are_rejected() -> None:
    monitor = Monitor()
    with pytest.raises(InvalidInput, match="non-empty name"):
        monitor.register_health_check("", lambda: None)
    with pytest.raises(InvalidInput, match="timeout_s"):
        monitor.register_health_check("x", lambda: None, timeout_s=0)
    with pytest.raises(InvalidInput, match="callable"):
        monitor.register_health_check("x", "not callable")  # type: ignore[arg-type]
