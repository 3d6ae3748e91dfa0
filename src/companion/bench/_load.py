"""A bounded HTTP/1.1 load generator on loopback: keep-alive connections, one request in flight each.

Written on raw asyncio streams rather than an HTTP client library so the generator costs a few
microseconds a request and the server, not the client, is what saturates.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

__all__ = ["LoadResult", "run_load"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one burst measured: completed requests, elapsed time and each request's latency."""

    requests: int
    elapsed_ns: int
    latencies_ns: list[int]

    @property
    def requests_per_s(self) -> float:
        """Throughput of the burst."""
        return self.requests * 1e9 / self.elapsed_ns if self.elapsed_ns else 0.0

    def percentile_ns(self, q: float) -> float:
        """The `q` quantile (0..1) of the latencies, nearest rank."""
        ordered = sorted(self.latencies_ns)
        return float(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))])


def _request_bytes(
    method: str, path: str, host: str, headers: dict[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str, port: int, request: bytes, deadline_ns: int, latencies: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter_ns() < deadline_ns:
            started = time.perf_counter_ns()
            writer.write(request)
            status = await _read_response(reader)
            latencies.append(time.perf_counter_ns() - started)
            if status != 200:
                raise RuntimeError(f"load generator got HTTP {status}")
    finally:
        writer.close()
        await writer.wait_closed()


async def _burst(
    host: str, port: int, request: bytes, connections: int, duration_s: float
) -> LoadResult:
    latencies: list[int] = []
    started = time.perf_counter_ns()
    deadline = started + int(duration_s * 1e9)
    await asyncio.gather(
        *(_connection(host, port, request, deadline, latencies) for _ in range(connections))
    )
    return LoadResult(len(latencies), time.perf_counter_ns() - started, latencies)


def run_load(
    port: int,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    connections: int = 8,
    duration_s: float = 0.5,
    host: str = "127.0.0.1",
) -> LoadResult:
    """POST `body` to `path` from `connections` keep-alive connections for `duration_s`."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    request = _request_bytes("POST", path, f"{host}:{port}", all_headers, body)
    return asyncio.run(_burst(host, port, request, connections, duration_s))
