"""The HTTP load generator against a real uvicorn process (the bare peer app)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from companion.bench._load import run_load
from companion.bench._servers import ServiceProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare() -> Iterator[ServiceProcess]:
    server = ServiceProcess.bare()
    yield server
    server.close()


def test_bursts_count_requests_and_latencies_on_keep_alive_connections(
    bare: ServiceProcess,
) -> None:
    body = orjson.dumps({"arguments": {"a": 5, "b": 3}})
    result = run_load(bare.port, "/v1/tools/add/invoke", body=body, connections=2, duration_s=0.2)
    assert result.requests == len(result.latencies_ns) > 0
    assert result.requests_per_s > 0
    assert min(result.latencies_ns) <= result.percentile_ns(0.5) <= result.percentile_ns(0.99)


def test_a_non_200_answer_fails_the_burst(bare: ServiceProcess) -> None:
    with pytest.raises(RuntimeError, match="HTTP 404"):
        run_load(bare.port, "/nowhere", connections=1, duration_s=0.05)


def test_the_service_rss_is_read_from_the_real_process(bare: ServiceProcess) -> None:
    assert bare.rss_bytes() > 10 * 2**20
