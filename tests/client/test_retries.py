"""Retries against real refusals: a key over its rate limit (429), a service not ready (503), a
port nobody listens on yet, a peer that hangs up; and the CLI's client, which waits out 429 and
503 but not a failed connection. The client's sleep and clock are fakes, so the waits it decides
on are checked without being waited."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from email.utils import formatdate

import pytest
from companion_client import (
    NO_RETRIES,
    AsyncClient,
    Client,
    ConnectionFailed,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
)
from companion_client._errors import retry_after_seconds
from companion_client._retry import Attempts
from fastapi import FastAPI

from companion.api import create_app
from companion.cli._remote import connect
from companion.config import load_settings
from tests._services import RedisServer, free_port
from tests.client._service import BadPeer, create_key, nothing_listens, uvicorn_on

RATE_LIMIT = "2/minute"


class FakeTime:
    """A clock that moves only when the client sleeps; `on_sleep` runs during each wait."""

    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    """The app (no sandbox) under uvicorn, each key allowed `RATE_LIMIT` requests."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("limited"),
        execution_enabled=False,
        rate_limit_default=RATE_LIMIT,
    )
    app = create_app(settings)
    with uvicorn_on(app, free_port()) as url:
        yield url, app


def _spent_key(url: str, app: FastAPI, scope: str) -> str:
    """A key whose requests of this minute through `scope` are used up (each scope of a key
    has its own window)."""
    _, token = app.state.companion.keys.create("acme", [scope])
    with Client(url, token, retry=NO_RETRIES) as client:
        spend = client.list_tools if scope == "tools" else client.list_collections
        spend()
        spend()
        with pytest.raises(RateLimited):
            spend()
    return str(token)


def test_a_rate_limited_call_waits_as_told_then_raises(limited: tuple[str, FastAPI]) -> None:
    url, app = limited
    time = FakeTime()
    policy = RetryPolicy(max_retries=2, budget_s=600)
    key = _spent_key(url, app, "tools")
    client = Client(url, key, retry=policy, sleep=time.sleep, clock=time.clock)
    with client, pytest.raises(RateLimited) as caught:
        client.invoke_tool("add", {"a": 1, "b": 2})  # a POST: the service refused it
    hint = caught.value.retry_after_s
    assert hint is not None
    assert 1 <= hint <= 60
    assert caught.value.headers["ratelimit-limit"] == "2"
    assert len(time.slept) == 2  # three tries
    assert all(wait >= hint for wait in time.slept)


def test_a_retry_after_past_the_budget_raises_at_once(limited: tuple[str, FastAPI]) -> None:
    url, app = limited
    time = FakeTime()
    key = _spent_key(url, app, "tools")
    client = Client(url, key, retry=RetryPolicy(budget_s=0.5), sleep=time.sleep, clock=time.clock)
    with client, pytest.raises(RateLimited) as caught:
        client.list_tools()
    assert time.slept == []
    assert caught.value.retry_after_s is not None
    assert caught.value.retry_after_s >= 1


async def test_the_async_client_waits_as_told(limited: tuple[str, FastAPI]) -> None:
    url, app = limited
    time = FakeTime()
    key = _spent_key(url, app, "knowledge:read")
    policy = RetryPolicy(max_retries=1, budget_s=600)
    async with AsyncClient(url, key, retry=policy, sleep=time.asleep, clock=time.clock) as client:
        with pytest.raises(RateLimited) as caught:
            await client.search("notes", "refunds")
    assert len(time.slept) == 1
    assert caught.value.retry_after_s is not None
    assert time.slept[0] >= caught.value.retry_after_s


def test_a_service_not_ready_is_asked_again_until_it_is(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    redis = RedisServer()
    redis.start()
    with ExitStack() as stack:
        stack.callback(redis.stop)
        settings = load_settings(
            data_dir=tmp_path_factory.mktemp("ready"),
            execution_enabled=False,
            redis_url=redis.url,
            readyz_timeout_s=1.0,
        )
        url = stack.enter_context(uvicorn_on(create_app(settings), free_port()))
        redis.stop()  # the configured Redis goes away: the service is not ready
        with Client(url, retry=NO_RETRIES) as client, pytest.raises(ServiceUnavailable) as down:
            client.ready()
        assert down.value.code == "dependency_unavailable"
        assert down.value.problem["checks"]["redis"]["ok"] is False

        time = FakeTime(on_sleep=redis.start)  # Redis is back while the client waits
        with Client(url, sleep=time.sleep, clock=time.clock) as client:
            ready = client.ready()
        assert ready["checks"]["redis"]["ok"] is True
        assert len(time.slept) == 1
        assert 0.25 <= time.slept[0] <= 0.5  # the first backoff, with jitter: no Retry-After here

        redis.stop()  # the CLI's client waits out a 503 too
        time = FakeTime(on_sleep=redis.start)
        with connect(url, None, sleep=time.sleep, clock=time.clock) as cli_client:
            assert cli_client.ready()["checks"]["redis"]["ok"] is True
        assert len(time.slept) == 1


def test_a_post_is_sent_again_when_nothing_listened(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Connection refused: the request never left, so even a tool call is tried again."""
    data_dir = tmp_path_factory.mktemp("late")
    token = create_key({**os.environ, "COMPANION_DATA_DIR": str(data_dir)}, "tools")
    app = create_app(load_settings(data_dir=data_dir, execution_enabled=False))
    port = free_port()
    with ExitStack() as stack:
        waits = [0]

        def start_on_the_second_wait() -> None:
            waits[0] += 1
            if waits[0] == 2:
                stack.enter_context(uvicorn_on(app, port))

        time = FakeTime(on_sleep=start_on_the_second_wait)
        url = f"http://127.0.0.1:{port}"
        with Client(url, token, sleep=time.sleep, clock=time.clock) as client:
            assert client.invoke_tool("add", {"a": 2, "b": 2}).output == 4.0
        assert len(time.slept) == 2
        assert time.slept[1] >= time.slept[0] / 2  # exponential backoff, with jitter


def test_the_cli_tries_a_refused_connection_once() -> None:
    """A command whose service is down fails at once, without the client's backoff."""
    time = FakeTime()
    with connect(nothing_listens(), None, sleep=time.sleep, clock=time.clock) as client:
        with pytest.raises(ConnectionFailed, match="ConnectError"):
            client.live()
        with pytest.raises(ConnectionFailed, match="ConnectError"):
            client.invoke_tool("add", {"a": 1, "b": 2})
    assert time.slept == []
    with BadPeer() as peer, connect(peer.url, None, sleep=time.sleep, clock=time.clock) as client:
        with pytest.raises(ConnectionFailed):
            client.list_tools()  # a GET whose connection broke: not tried again either
        assert peer.connections == 1
    assert time.slept == []


def test_a_request_that_cannot_be_sent_is_not_retried() -> None:
    time = FakeTime()
    port = nothing_listens().removeprefix("http://")  # no scheme: httpx cannot send it
    client = Client(port, sleep=time.sleep, clock=time.clock)
    with client, pytest.raises(ConnectionFailed, match="UnsupportedProtocol"):
        client.live()
    assert time.slept == []


def test_a_dropped_connection_is_retried_only_when_sending_twice_is_safe() -> None:
    policy = RetryPolicy(max_retries=2)
    time = FakeTime()
    with BadPeer() as peer, Client(peer.url, retry=policy, sleep=time.sleep, clock=time.clock) as c:
        with pytest.raises(ConnectionFailed):
            c.list_tools()  # a GET: three tries
        assert peer.connections == 3
        with pytest.raises(ConnectionFailed):
            c.search("notes", "refunds")  # a POST that only reads: three tries
        assert peer.connections == 6
        with pytest.raises(ConnectionFailed):
            c.invoke_tool("add", {"a": 1, "b": 2})  # may have run: one try
        assert peer.connections == 7
        with pytest.raises(ConnectionFailed):
            c.run("print(1)")
        assert peer.connections == 8
    assert len(time.slept) == 4


async def test_the_async_client_retries_a_dropped_get() -> None:
    time = FakeTime()
    policy = RetryPolicy(max_retries=1)
    with BadPeer() as peer:
        async with AsyncClient(peer.url, retry=policy, sleep=time.asleep, clock=time.clock) as c:
            with pytest.raises(ConnectionFailed):
                await c.list_collections()
            with pytest.raises(ConnectionFailed):
                await c.invoke_tool("add", {})
    assert peer.connections == 3
    assert len(time.slept) == 1


def test_backoff_doubles_up_to_its_cap_and_stays_in_the_budget() -> None:
    now = [0.0]
    policy = RetryPolicy(max_retries=10, budget_s=20, backoff_s=1, max_backoff_s=4, jitter=False)
    attempts = Attempts(policy, idempotent=True, clock=lambda: now[0])
    waits = []
    while (wait := attempts._next(None)) is not None:  # each wait taken in full
        waits.append(wait)
        now[0] += wait
    assert waits == [1, 2, 4, 4, 4, 4]  # the next 4 s would pass the 20 s budget
    jittered = Attempts(
        RetryPolicy(backoff_s=2), idempotent=True, clock=lambda: 0.0, rng=lambda: 0.0
    )
    assert jittered._next(None) == 1.0  # half the ceiling at the lowest draw
    hinted = Attempts(RetryPolicy(), idempotent=True, clock=lambda: 0.0, rng=lambda: 1.0)
    assert hinted._next(7.0) == 7.0  # never sooner than the service said


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("30") == 30.0
    assert retry_after_seconds("-5") == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = 1_800_000_000.0
    assert retry_after_seconds(formatdate(now + 90, usegmt=True), now_s=now) == 90.0
    assert retry_after_seconds(formatdate(now - 90, usegmt=True), now_s=now) == 0.0
