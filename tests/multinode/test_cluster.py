"""Three real nodes behind HAProxy, sharing one Redis and one PostgreSQL: what one node does,
every node sees (issue 18).

Every check goes through each node directly and through the balancer. Waits on real processes
and on Redis pub/sub are polls with a bound that the test asserts was not reached; nothing sleeps
a guessed amount to order events. The tests run in file order: the node killed under load is
the last one, and is started again before its test ends.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests._services import unavailable
from tests.multinode._cluster import (
    HAPROXY,
    NODE_HEADER,
    Balancer,
    Cluster,
    bearer,
    forget_redis_keys,
    fresh_database,
    measure_write_to_searchable,
    node_of,
)

pytestmark = [pytest.mark.multinode, pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

KEY_CACHE_TTL_S = 1.0
EXECUTE_LIMIT = 30  # per key and hour on the `execute` routes; the rate-limit test spends it
# How long a Redis pub/sub message or a revocation may take beyond its own bound to show on a
# node: a loaded two-core machine answers a request in well under this.
MARGIN_S = 1.0
SETTINGS = {
    "key_cache_ttl_s": str(KEY_CACHE_TTL_S),
    "rate_limit_default": "100000/minute",  # the load test writes hundreds of documents
    "rate_limit_execute": f"{EXECUTE_LIMIT}/hour",  # a window far longer than the test
    # Three nodes on two cores: one plain zygote each, no preloaded or spare sandboxes.
    "execution_pool_size": "1",
    "execution_data_pool_size": "0",
    "execution_session_spares": "0",
    "execution_max_sessions": "4",
    "knowledge_embedder": "none",
}
_POLL_S = 0.02


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, database_url: str
) -> Iterator[Cluster]:
    """node-a, node-b and node-c on a fresh database, behind HAProxy, for the whole module."""
    if not HAPROXY.exists():
        unavailable(f"haproxy ({HAPROXY}; apt install haproxy)")
    with fresh_database(database_url) as url:
        nodes = Cluster(
            tmp_path_factory.mktemp("multinode"),
            redis_url=redis_url,
            database_url=url,
            settings=SETTINGS,
        )
        try:
            with nodes:
                yield nodes
        finally:
            forget_redis_keys(redis_url, nodes.namespace, nodes.key_ids)


@pytest.fixture(autouse=True)
def _every_node_running_after_each_test(cluster: Cluster) -> Iterator[None]:
    """A test that stops or kills a node and fails before starting it again leaves the cluster
    whole for the next one."""
    yield
    for name, node in cluster.nodes.items():
        if not node.running:
            cluster.start_node(name)


def _word() -> str:
    """A word no other document holds."""
    return f"w{uuid.uuid4().hex[:16]}"


def _answered_by(response: httpx.Response, via: str, cluster: Cluster) -> None:
    """A node answered; the one asked when the request went to a node directly."""
    node = node_of(response)
    assert node in cluster.nodes
    if via in cluster.nodes:
        assert node == via


def _search(
    client: httpx.Client, cluster: Cluster, via: str, collection: str, word: str
) -> dict[str, Any]:
    """A BM25 search's answer: `results`, `cached`, ..."""
    url = cluster.urls()[via]
    body = {"query": word, "mode": "bm25", "k": 5}
    response = client.post(f"{url}/v1/collections/{collection}/search", json=body)
    assert response.status_code == 200, f"search through {via}: {response.text}"
    _answered_by(response, via, cluster)
    found: dict[str, Any] = response.json()
    return found


def _found(
    client: httpx.Client, cluster: Cluster, via: str, collection: str, word: str
) -> list[str]:
    """The ids of the documents a search for `word` finds."""
    return [
        hit["document_id"] for hit in _search(client, cluster, via, collection, word)["results"]
    ]


def _write(client: httpx.Client, cluster: Cluster, via: str, collection: str, word: str) -> str:
    """Write a document holding `word` (its id too); the node that acknowledged it."""
    url = cluster.urls()[via]
    document = {"id": word, "text": f"a note about {word}"}
    response = client.post(f"{url}/v1/collections/{collection}/documents", json=document)
    assert response.status_code == 201, f"write through {via}: {response.text}"
    _answered_by(response, via, cluster)
    return node_of(response)


def _wait_for_status(
    send: Callable[[str], httpx.Response], urls: Mapping[str, str], status: int, deadline: float
) -> dict[str, float]:
    """Poll every URL until each answers `status`; when each first did (`time.monotonic()`)."""
    pending, seen = dict(urls), {}
    while pending:
        for via, url in list(pending.items()):
            if send(url).status_code == status:
                seen[via] = time.monotonic()
                del pending[via]
        if pending and time.monotonic() > deadline:
            pytest.fail(f"still not {status} at the deadline: {sorted(pending)}")
        time.sleep(_POLL_S)  # real-time: polling real processes
    return seen


# -- 1. knowledge -----------------------------------------------------------------------------


def test_a_write_through_one_node_is_searchable_through_every_other_at_once(
    cluster: Cluster,
) -> None:
    token = cluster.create_key("kb-shared", ["knowledge:read", "knowledge:write"])
    collection = "notes"
    vias = list(cluster.urls())
    with httpx.Client(headers=bearer(token), timeout=30) as client:
        assert client.put(f"{cluster.url}/v1/collections/{collection}").status_code in {200, 201}
        for writer in vias:
            word = _word()
            # Each reader first searches in vain, so each node holds that empty answer in its
            # cache: the write must drop it everywhere before it is acknowledged.
            for reader in vias:
                assert _found(client, cluster, reader, collection, word) == []
            _write(client, cluster, writer, collection, word)
            found = {reader: _search(client, cluster, reader, collection, word) for reader in vias}
            ids = {
                reader: [hit["document_id"] for hit in body["results"]]
                for reader, body in found.items()
            }
            cached = {reader: body["cached"] for reader, body in found.items()}
            assert ids == {reader: [word] for reader in vias}, (
                f"written through {writer}; {cached=}"
            )


def test_a_restarted_node_finds_what_was_written_before_and_while_it_was_down(
    cluster: Cluster,
) -> None:
    token = cluster.create_key("kb-restart", ["knowledge:read", "knowledge:write"])
    collection = "notes"
    before, while_down, balanced = _word(), _word(), _word()
    with httpx.Client(headers=bearer(token), timeout=30) as client:
        assert client.put(f"{cluster.url}/v1/collections/{collection}").status_code in {200, 201}
        _write(client, cluster, "node-a", collection, before)
        assert _found(client, cluster, "node-b", collection, before) == [before]
        # A clean stop: uvicorn shuts down, then re-raises the SIGTERM it caught (no SIGKILL).
        assert cluster.stop_node("node-b") in {0, -signal.SIGTERM}
        _write(client, cluster, "node-c", collection, while_down)
        assert _write(client, cluster, "balancer", collection, balanced) != "node-b"
        cluster.start_node("node-b")  # returns once it is ready and the balancer uses it again
        for word in (before, while_down, balanced):
            for reader in cluster.urls():
                assert _found(client, cluster, reader, collection, word) == [word], reader


def test_write_to_searchable_latency_is_measured_between_two_nodes(cluster: Cluster) -> None:
    token = cluster.create_key("kb-latency", ["knowledge:read", "knowledge:write"])
    a, b = cluster.node("node-a").url, cluster.node("node-b").url
    samples = measure_write_to_searchable(a, b, token, "latency", samples=5)
    assert [sample.searches for sample in samples] == [1] * 5  # the very next search finds it
    assert all(sample.latency_s >= 0 for sample in samples)


# -- 2. cache coherence -----------------------------------------------------------------------


def _hot_keys(client: httpx.Client, url: str) -> set[str]:
    response = client.get(f"{url}/v1/cache/stats")
    assert response.status_code == 200, response.text
    return {key for key, _hits in response.json()["hot_keys"]}


@pytest.mark.parametrize(("how", "via"), [("key", "node-b"), ("pattern", "balancer")])
def test_a_cache_invalidation_on_one_node_drops_the_entry_from_every_nodes_l1(
    cluster: Cluster, how: str, via: str
) -> None:
    tenant = f"cache-{how}"
    token = cluster.create_key(tenant, ["admin"])
    nodes = {name: node.url for name, node in cluster.nodes.items()}
    arguments = {"a": float(uuid.uuid4().int % 10_000), "b": 0.5}

    with httpx.Client(headers=bearer(token), timeout=30) as client:

        def add(url: str) -> dict[str, Any]:
            response = client.post(f"{url}/v1/tools/add/invoke", json={"arguments": arguments})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert body["value"] == arguments["a"] + arguments["b"]
            return body

        assert add(nodes["node-a"])["cached"] is False
        # Read through every node until each holds the entry in its L1: a read after the one
        # that promoted it from L2 is an L1 hit, and `hot_keys` lists L1 entries that were hit.
        # (A node may drop its copy again when node-a's own write notice arrives late: retry.)
        deadline = time.monotonic() + 5.0
        while True:
            for url in [*nodes.values(), cluster.url]:
                add(url)
                add(url)
            held = {name: _hot_keys(client, url) for name, url in nodes.items()}
            ours = {key for keys in held.values() for key in keys if key.startswith(f"t:{tenant}:")}
            if len(ours) == 1 and all(ours <= keys for keys in held.values()):
                break
            assert time.monotonic() < deadline, f"the entry is not in every L1: {held}"
        (entry,) = ours
        assert entry.startswith(f"t:{tenant}:tools:add:")
        own = entry.removeprefix(f"t:{tenant}:")
        body = {"key": own} if how == "key" else {"pattern": "tools:add:*"}
        removed = client.post(f"{cluster.urls()[via]}/v1/cache/invalidate", json=body)
        assert removed.status_code == 200, removed.text
        assert removed.json()["removed"] >= 1
        invalidated = time.monotonic()
        # Other nodes hear of it through Redis pub/sub, a moment later: poll, within a bound.
        deadline = invalidated + MARGIN_S
        while still := [name for name, url in nodes.items() if entry in _hot_keys(client, url)]:
            assert time.monotonic() < deadline, f"still in the L1 of {still} after {MARGIN_S} s"
            time.sleep(_POLL_S)  # real-time: waiting for pub/sub delivery
        # Gone from L2 as well: a node that did not invalidate computes it afresh.
        assert add(nodes["node-c"])["cached"] is False


# -- 3. rate limits ---------------------------------------------------------------------------


async def test_a_keys_rate_limit_holds_across_nodes(cluster: Cluster) -> None:
    token = cluster.create_key("limited", ["execute"])
    nodes = [node.url for node in cluster.nodes.values()]
    # Twice the limit, spread evenly: each node alone sees fewer requests than the limit, so
    # only a limit shared by the nodes refuses the second half.
    async with httpx.AsyncClient(headers=bearer(token), timeout=30) as client:
        responses = await asyncio.gather(
            *(client.get(f"{nodes[i % 3]}/v1/sessions") for i in range(2 * EXECUTE_LIMIT))
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200] * EXECUTE_LIMIT + [429] * EXECUTE_LIMIT
        for via, url in cluster.urls().items():
            refused = await client.get(f"{url}/v1/sessions")
            assert refused.status_code == 429, via
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["ratelimit-limit"] == str(EXECUTE_LIMIT)


# -- 4. keys and dashboard sign-in ------------------------------------------------------------


def test_a_revoked_key_stops_working_on_every_node_within_the_key_cache_ttl(
    cluster: Cluster,
) -> None:
    token = cluster.create_key("revoked", ["knowledge:read"])
    with httpx.Client(headers=bearer(token), timeout=30) as client:

        def collections(url: str) -> httpx.Response:
            return client.get(f"{url}/v1/collections")

        for via, url in cluster.urls().items():  # every node caches the verified key
            response = collections(url)
            assert response.status_code == 200, via
            _answered_by(response, via, cluster)
        cluster.revoke_key(token)
        revoked = time.monotonic()
        refused = _wait_for_status(
            collections, cluster.urls(), 401, revoked + KEY_CACHE_TTL_S + MARGIN_S
        )
        assert max(refused.values()) - revoked <= KEY_CACHE_TTL_S + MARGIN_S
        for via, url in cluster.urls().items():  # and it stays refused
            assert collections(url).status_code == 401, via


def test_a_dashboard_sign_in_on_one_node_works_on_every_node(cluster: Cluster) -> None:
    token = cluster.create_key("dashboard", ["admin"])
    with httpx.Client(timeout=30) as client:
        signed_in = client.post(
            f"{cluster.node('node-a').url}/dashboard/session",
            content=urlencode({"key": token}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert signed_in.status_code == 303, signed_in.text
        cookie = {"Cookie": f"companion_dashboard={signed_in.cookies['companion_dashboard']}"}
        client.cookies.clear()  # only the header below carries the session

        def data(url: str) -> httpx.Response:
            return client.get(f"{url}/dashboard/data", headers=cookie)

        for via, url in cluster.urls().items():
            response = data(url)
            assert response.status_code == 200, f"{via}: {response.text}"
            assert "application/json" in response.headers["content-type"]
            _answered_by(response, via, cluster)
            assert client.get(f"{url}/dashboard/data").status_code == 401, via
        # The session names the key: revoking it signs the dashboard out on every node.
        cluster.revoke_key(token)
        revoked = time.monotonic()
        ended = _wait_for_status(data, cluster.urls(), 401, revoked + KEY_CACHE_TTL_S + MARGIN_S)
        assert max(ended.values()) - revoked <= KEY_CACHE_TTL_S + MARGIN_S


# -- 5. sessions ------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_a_sessions_cells_reach_it_through_any_node(cluster: Cluster) -> None:
    token = cluster.create_key("sessions", ["execute"])
    owner = cluster.node("node-a").url
    with httpx.Client(headers=bearer(token), timeout=60) as client:
        opened = client.post(f"{owner}/v1/sessions", json={"language": "python"})
        assert opened.status_code == 201, opened.text
        assert node_of(opened) == "node-a"
        session = opened.json()["id"]
        try:
            first = client.post(f"{owner}/v1/sessions/{session}/execute", json={"code": "x = 1"})
            assert first.status_code == 200, first.text
            assert first.json()["execution_count"] == 1
            route = ["node-b", "node-c", "balancer", "balancer", "balancer"]
            for count, via in enumerate(route, start=2):
                cell = client.post(
                    f"{cluster.urls()[via]}/v1/sessions/{session}/execute",
                    json={"code": "x = x + 1\nx"},
                )
                assert cell.status_code == 200, f"through {via}: {cell.status_code} {cell.text}"
                _answered_by(cell, via, cluster)
                result = cell.json()
                assert result["status"] == "ok", result
                assert result["session_id"] == session
                assert (result["execution_count"], result["results"][0]["data"]) == (
                    count,
                    str(count),
                ), f"through {via}"
            shown = client.get(f"{cluster.node('node-c').url}/v1/sessions/{session}")
            assert shown.status_code == 200, shown.text
            assert shown.json()["execution_count"] == 1 + len(route)
            for via, url in cluster.urls().items():  # listed through every node, once
                listed = client.get(f"{url}/v1/sessions")
                assert listed.status_code == 200, f"through {via}: {listed.text}"
                body = listed.json()
                assert [(s["id"], s["node"]) for s in body["sessions"]] == [(session, "node-a")]
                assert body["unreachable_nodes"] == [], via
            ended = client.delete(f"{cluster.node('node-b').url}/v1/sessions/{session}")
            assert ended.status_code == 204, ended.text
            for via, url in cluster.urls().items():
                assert client.get(f"{url}/v1/sessions").json()["sessions"] == [], via
            gone = client.post(f"{owner}/v1/sessions/{session}/execute", json={"code": "x"})
            assert gone.status_code == 404, gone.text
        finally:
            client.delete(f"{owner}/v1/sessions/{session}")


# -- 6. a node killed under load (last: it restarts the node before it ends) ------------------

WRITERS = 8
ACKS_BEFORE_KILL = 40
ACKS_AFTER_DOWN = 40


@dataclass(frozen=True, slots=True)
class _Write:
    document_id: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    node: str | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Load:
    """Writes as they complete, and the moments the test acts on (`time.monotonic()`)."""

    writes: list[_Write] = field(default_factory=list)
    kill_sent: float = math.inf  # just before SIGKILL
    kill_done: float = math.inf  # once the process is reaped
    marked_down: float = math.inf  # the first stats poll that showed the node DOWN
    kill_now: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, write: _Write) -> None:
        self.writes.append(write)
        acked = [w for w in self.writes if w.ok]
        if len(acked) >= ACKS_BEFORE_KILL:
            self.kill_now.set()
        if sum(w.started > self.marked_down for w in acked) >= ACKS_AFTER_DOWN:
            self.finished.set()


async def _writer(client: httpx.AsyncClient, load: _Load, collection: str, number: int) -> None:
    sequence = 0
    while not load.finished.is_set():
        document_id = f"w{number}-{sequence}"
        sequence += 1
        started = time.monotonic()
        try:
            response = await client.post(
                f"/v1/collections/{collection}/documents",
                json={"id": document_id, "text": f"load {document_id}"},
            )
        except httpx.TransportError as exc:
            load.record(_Write(document_id, started, time.monotonic(), None, None, repr(exc)))
        else:
            node = response.headers.get(NODE_HEADER)
            error = "" if response.is_success else response.text[:300]
            load.record(
                _Write(document_id, started, time.monotonic(), response.status_code, node, error)
            )


async def _wait_marked_down(balancer: Balancer, name: str, load: _Load) -> None:
    async with httpx.AsyncClient(timeout=2.0) as stats:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            response = await stats.get(balancer.stats_url)
            if Balancer.parse_states(response.text).get(name) == "DOWN":
                load.marked_down = time.monotonic()
                return
            await asyncio.sleep(_POLL_S)  # real-time: waiting on HAProxy's health checks
    pytest.fail(f"haproxy did not mark {name} down within 10 s")


async def _unreadable(
    client: httpx.AsyncClient, url: str, collection: str, writes: list[_Write]
) -> list[str]:
    """The acknowledged writes that `url` cannot read back as written."""
    gate = asyncio.Semaphore(16)

    async def readable(write: _Write) -> bool:
        async with gate:
            response = await client.get(
                f"{url}/v1/collections/{collection}/documents/{write.document_id}"
            )
        return (
            response.status_code == 200 and response.json()["text"] == f"load {write.document_id}"
        )

    found = await asyncio.gather(*(readable(write) for write in writes))
    return [write.document_id for write, ok in zip(writes, found, strict=True) if not ok]


async def test_a_node_killed_under_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    token = cluster.create_key("load", ["knowledge:read", "knowledge:write"])
    collection, victim = "load", cluster.node("node-b")
    load = _Load()
    headers = bearer(token)
    try:
        async with httpx.AsyncClient(base_url=cluster.url, headers=headers, timeout=30) as client:
            assert (await client.put(f"/v1/collections/{collection}")).status_code in {200, 201}
            await _write_and_kill(client, load, collection, cluster)
            acked = _check_only_in_flight_writes_failed(load, victim.name, cluster)
            # No acknowledged write is lost: each reads back through every remaining node.
            remaining = {name: node.url for name, node in cluster.nodes.items() if node.running}
            for via, url in {**remaining, "balancer": cluster.url}.items():
                assert await _unreadable(client, url, collection, acked) == [], via
    finally:
        if not victim.running:
            await asyncio.to_thread(cluster.start_node, victim.name)
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        assert await _unreadable(client, victim.url, collection, acked) == []


async def _write_and_kill(
    client: httpx.AsyncClient, load: _Load, collection: str, cluster: Cluster
) -> None:
    """Writers run; node-b gets SIGKILL after some acknowledged writes; they go on until the
    balancer has marked it down and as many more writes were acknowledged."""
    victim = cluster.node("node-b")
    writers = [asyncio.create_task(_writer(client, load, collection, n)) for n in range(WRITERS)]
    try:
        await asyncio.wait_for(load.kill_now.wait(), timeout=60)
        assert victim.process is not None
        load.kill_sent = time.monotonic()
        victim.process.kill()
        # The kill takes effect when the process is gone (reaped): until then the kernel still
        # accepts connections on its port, so requests started meanwhile are in flight too.
        await asyncio.to_thread(victim.kill)
        load.kill_done = time.monotonic()
        await _wait_marked_down(cluster.balancer, victim.name, load)
        await asyncio.wait_for(load.finished.wait(), timeout=60)
    finally:
        load.finished.set()
        await asyncio.gather(*writers)


def _check_only_in_flight_writes_failed(load: _Load, victim: str, cluster: Cluster) -> list[_Write]:
    """Assert what the kill may and may not have cost; the acknowledged writes."""
    writes = load.writes
    acked = [w for w in writes if w.ok]
    assert sum(w.ended < load.kill_sent for w in acked) >= ACKS_BEFORE_KILL
    # Only requests in flight at the kill may fail: started before it and not done before it.
    in_flight = [w for w in writes if w.started < load.kill_done and w.ended > load.kill_sent]
    failed = [w for w in writes if not w.ok]
    assert [w for w in failed if w not in in_flight] == []
    assert len(failed) <= len(in_flight)
    assert [w for w in failed if w.started >= load.marked_down] == []
    # The balancer routes around the dead node: every later request succeeds on another one.
    later = [w for w in writes if w.started > load.kill_done]
    assert later
    assert [w for w in later if not w.ok or w.node == victim] == []
    assert {w.node for w in acked} <= set(cluster.nodes)
    return acked
