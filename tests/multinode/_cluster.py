"""Several real `companion serve` nodes sharing one Redis and one PostgreSQL, behind a real HAProxy.

The harness of the multi-node tests, and of any bench that needs more than one node:

    with fresh_database(admin_url) as database_url, Cluster(workdir, redis_url=...,
            database_url=database_url) as cluster:
        token = cluster.create_key("acme", ["knowledge:read", "knowledge:write"])
        cluster.restart("node-b")
        samples = measure_write_to_searchable(cluster.node("node-a").url, ...)

Each node is a process of its own (`COMPANION_PORT`, `COMPANION_DATA_DIR`, `COMPANION_NODE_NAME`,
`COMPANION_NODE_URL`); they share the database, the Redis (under a cache namespace of the cluster's
own) and the dashboard session secret. HAProxy balances round robin on loopback, marks a node down
after two failed `GET /readyz` 200 ms apart, and retries a request whose connection failed on
another node. Keys are minted straight into the shared key store, as
`companion keys create` does against the same `COMPANION_DATABASE_URL`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self
from urllib.parse import urlsplit, urlunsplit

import httpx

from companion.keys import KeyRing, PostgresKeyStore, parse_token
from tests._services import free_port, wait_for_port

__all__ = [
    "HAPROXY",
    "NODE_HEADER",
    "Balancer",
    "Cluster",
    "Node",
    "NodeFailed",
    "WriteVisibility",
    "bearer",
    "forget_redis_keys",
    "fresh_database",
    "measure_write_to_searchable",
    "node_of",
]

COMPANION = Path(sys.executable).parent / "companion"
HAPROXY = Path("/usr/sbin/haproxy")
NODE_HEADER = "x-companion-node"
# Waiting on real processes: bounds, never orderings. A node starts in ~2 s here (three at once on
# two cores: ~4 s); the bounds leave room for a loaded CI machine.
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.02


class NodeFailed(RuntimeError):
    """A node exited, or did not become ready in time; the message ends with its log's tail."""


def bearer(token: str) -> dict[str, str]:
    """The headers carrying an API key."""
    return {"Authorization": f"Bearer {token}"}


def node_of(response: httpx.Response) -> str:
    """The node that answered (`X-Companion-Node`), which every response carries exactly once."""
    names = response.headers.get_list(NODE_HEADER)
    assert len(names) == 1, f"expected one {NODE_HEADER} header, got {names!r}"
    return names[0]


def _environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any `COMPANION_*`, plus `settings` (names lower case)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("COMPANION_")}
    env.update({f"COMPANION_{name.upper()}": value for name, value in settings.items()})
    return env


class Node:
    """One `companion serve` process on a fixed port and data directory (both survive restarts)."""

    def __init__(self, name: str, workdir: Path, settings: Mapping[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.data_dir = workdir / name
        self.log = workdir / f"{name}.log"
        self.env = _environment(
            {
                **settings,
                "host": "127.0.0.1",
                "port": str(self.port),
                "data_dir": str(self.data_dir),
                "node_name": name,
                "node_url": self.url,
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where this node answers directly (not through the balancer)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Spawn the process (returns at once; `wait_ready` waits for it)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        with self.log.open("ab") as sink:  # a file, not a pipe: an undrained pipe stalls a node
            self.process = subprocess.Popen(
                [str(COMPANION), "serve"], env=self.env, stdout=sink, stderr=sink
            )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll `GET /readyz` until 200; `NodeFailed` if the process exits or the bound passes."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if not self.running:
                    raise NodeFailed(f"{self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                if time.monotonic() >= deadline:
                    raise NodeFailed(f"{self.name} not ready after {timeout_s} s:\n{self.tail()}")
                time.sleep(_POLL_S)  # real-time: waiting on a real process to start

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (a graceful stop) and wait; SIGKILL after `timeout_s`. The exit code, if any."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is flushed or closed) and reap the process."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def tail(self, size: int = 4000) -> str:
        """The end of the node's log (all of its runs)."""
        try:
            return self.log.read_bytes()[-size:].decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"


class Balancer:
    """HAProxy on loopback: round robin over the nodes, health checks on `/readyz`, a stats page."""

    # Checks every 200 ms; two failures mark a node down, one success marks it up again.
    CHECK = "check inter 200ms fastinter 100ms downinter 200ms fall 2 rise 1"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.stats_port = free_port()
        self.config = workdir / "haproxy.cfg"
        self.log = workdir / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The balanced address."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats_url(self) -> str:
        """HAProxy's stats as CSV (one row per server, `status` UP, DOWN, `UP 1/2`...)."""
        return f"http://127.0.0.1:{self.stats_port}/stats;csv"

    def render(self, nodes: Sequence[Node]) -> str:
        """The configuration for `nodes`."""
        servers = "\n".join(
            f"    server {node.name} 127.0.0.1:{node.port} {self.CHECK}" for node in nodes
        )
        return f"""\
global
    maxconn 2048
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    # A request whose connection failed is sent again, to another node each time (`redispatch 1`):
    # a node's death costs at most the requests it was answering. Not `empty-response`: that would
    # replay a POST (a run, a write) that a dying node may have carried out.
    retries 3
    option redispatch 1
    retry-on conn-failure

frontend companion
    bind 127.0.0.1:{self.port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}

listen stats
    bind 127.0.0.1:{self.stats_port}
    no log
    stats enable
    stats uri /stats
"""

    def start(self, nodes: Sequence[Node]) -> None:
        """Write the configuration and start HAProxy in the foreground (`-db`).

        A port `free_port` found free can be taken by another process before HAProxy binds it
        (CI met this once): HAProxy then exits, and is started again on fresh ports."""
        for attempt in range(3):
            logged = self.log.stat().st_size if self.log.exists() else 0
            self.config.write_text(self.render(nodes))
            with self.log.open("ab") as sink:
                self.process = subprocess.Popen(
                    [str(HAPROXY), "-db", "-f", str(self.config)], stdout=sink, stderr=sink
                )
            listening = wait_for_port(self.port) and wait_for_port(self.stats_port)
            if listening and self.process.poll() is None:
                return
            self.stop()
            said = self.log.read_bytes()[logged:].decode(errors="replace")
            if "Address already in use" not in said or attempt == 2:
                raise RuntimeError(f"haproxy did not start: {said[-2000:]}")
            self.port, self.stats_port = free_port(), free_port()

    def stop(self) -> None:
        """Stop at once (SIGTERM: open connections are closed)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=STOP_TIMEOUT_S)
            self.process = None

    @staticmethod
    def parse_states(text: str) -> dict[str, str]:
        """Server name → status, from the stats CSV (backend `nodes` only)."""
        rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "nodes" and row["svname"] not in {"FRONTEND", "BACKEND"}
        }

    def states(self) -> dict[str, str]:
        """Each server's status as HAProxy sees it now."""
        return self.parse_states(httpx.get(self.stats_url, timeout=2.0).text)

    def wait_state(self, name: str, status: str, timeout_s: float = 10.0) -> float:
        """Poll until HAProxy reports `status` for `name`; the `time.monotonic()` it was seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.states().get(name)
            now = time.monotonic()
            if seen == status:
                return now
            if now >= deadline:
                raise TimeoutError(f"haproxy still reports {name} as {seen!r}, not {status!r}")
            time.sleep(_POLL_S)  # real-time: waiting on the balancer's own health checks


class Cluster:
    """The nodes, the balancer, and the shared key store; see the module docstring."""

    def __init__(
        self,
        workdir: Path,
        *,
        redis_url: str,
        database_url: str,
        names: Sequence[str] = ("node-a", "node-b", "node-c"),
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.redis_url = redis_url
        # Cache keys and the invalidation channel live under this prefix (Redis pub/sub channels
        # ignore the database number, so the namespace is what keeps clusters apart).
        self.namespace = f"mn-{secrets.token_hex(6)}"
        shared = {
            "redis_url": redis_url,
            "database_url": database_url,
            "cache_namespace": self.namespace,
            "dashboard_session_secret": secrets.token_hex(32),
            **(settings or {}),
        }
        self.nodes = {name: Node(name, workdir, shared) for name in names}
        self.balancer = Balancer(workdir)
        self._ring: KeyRing | None = None
        self.key_ids: list[str] = []

    @property
    def url(self) -> str:
        """The balanced address."""
        return self.balancer.url

    def node(self, name: str) -> Node:
        """One node by name."""
        return self.nodes[name]

    def urls(self) -> dict[str, str]:
        """Every address a check goes through: each node directly, and `balancer`."""
        return {**{name: node.url for name, node in self.nodes.items()}, "balancer": self.url}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start every node at once (as a deployment does), then the balancer; wait for all."""
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_ready(timeout_s)
        self.balancer.start(list(self.nodes.values()))
        for name in self.nodes:
            self.balancer.wait_state(name, "UP", timeout_s)

    def close(self) -> None:
        """Stop the balancer and every node (gracefully), and close the key store."""
        try:
            self.balancer.stop()
        finally:
            for node in self.nodes.values():
                node.stop()
            if self._ring is not None:
                self._ring.close()
                self._ring = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def stop_node(self, name: str) -> int | None:
        """SIGTERM one node and wait for it to exit; its exit code."""
        return self.nodes[name].stop()

    def kill_node(self, name: str) -> None:
        """SIGKILL one node."""
        self.nodes[name].kill()

    def start_node(self, name: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start a stopped node on its port and data directory; return once it is ready and
        the balancer sends it requests again."""
        node = self.nodes[name]
        node.start()
        node.wait_ready(timeout_s)
        self.balancer.wait_state(name, "UP", timeout_s)

    def restart(self, name: str) -> None:
        """`stop_node` then `start_node`."""
        self.stop_node(name)
        self.start_node(name)

    # -- keys -------------------------------------------------------------------------------

    @property
    def keys(self) -> KeyRing:
        """The key ring over the shared key store (what `companion keys` opens)."""
        if self._ring is None:
            self._ring = KeyRing(PostgresKeyStore(self.database_url))
        return self._ring

    def create_key(self, tenant: str, scopes: Sequence[str]) -> str:
        """A new key's token, valid on every node."""
        key, token = self.keys.create(tenant, list(scopes), name="multinode")
        self.key_ids.append(key.key_id)
        return token

    def revoke_key(self, token: str) -> None:
        """Revoke in the shared store (other nodes follow within `key_cache_ttl_s`)."""
        self.keys.revoke(parse_token(token)[0])


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of `admin_url`; dropped afterwards."""
    import psycopg

    name = f"mn_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def forget_redis_keys(redis_url: str, namespace: str, key_ids: Sequence[str]) -> None:
    """Delete what a cluster left in Redis: its cache namespace and its keys' rate-limit counters."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        patterns = [f"{namespace}:*", *(f"*LIMITER/{key_id}/*" for key_id in key_ids)]
        for pattern in patterns:
            found = list(client.scan_iter(match=pattern, count=1000))
            if found:
                client.delete(*found)
    finally:
        client.close()


class WriteVisibility(NamedTuple):
    """How one write became searchable through another node."""

    latency_s: float
    """From the write's response to the response of the first search that found it."""
    searches: int
    """Searches it took: 1 when the very next search found it."""


def measure_write_to_searchable(
    writer_url: str,
    reader_url: str,
    token: str,
    collection: str,
    *,
    samples: int = 20,
    timeout_s: float = 5.0,
) -> list[WriteVisibility]:
    """Write through `writer_url`, search through `reader_url` at once and again until the write
    is found, `samples` times; `TimeoutError` if one is not found within `timeout_s`.

    Each sample writes a document holding a word of its own (so no cached answer exists) and
    searches BM25 for that word; the collection is created if needed.
    """
    latencies: list[WriteVisibility] = []
    with httpx.Client(headers=bearer(token), timeout=10.0) as client:
        client.put(f"{writer_url}/v1/collections/{collection}").raise_for_status()
        for _ in range(samples):
            word = f"lat{uuid.uuid4().hex[:16]}"
            document = {"id": word, "text": f"measured {word}"}
            written = client.post(
                f"{writer_url}/v1/collections/{collection}/documents", json=document
            )
            written.raise_for_status()
            acknowledged = time.monotonic()
            query = {"query": word, "mode": "bm25", "k": 1}
            for searches in itertools.count(1):
                found = client.post(f"{reader_url}/v1/collections/{collection}/search", json=query)
                found.raise_for_status()
                now = time.monotonic()
                if [hit["document_id"] for hit in found.json()["results"]] == [word]:
                    latencies.append(WriteVisibility(now - acknowledged, searches))
                    break
                if now - acknowledged >= timeout_s:
                    raise TimeoutError(
                        f"{word} not searchable through {reader_url} in {timeout_s} s"
                    )
    return latencies
