"""API keys: format, hashing, verification, expiry, revocation, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.errors import InvalidInput, NotFound, Unauthorized
from companion.keys import KeyRing, KeyStore, PostgresKeyStore, SQLiteKeyStore, parse_token
from tests._clock import FakeClock

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class WallClock:
    """A settable UTC wall clock for expiry."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    if request.param == "sqlite":
        built: KeyStore = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    else:
        database_url = request.getfixturevalue("database_url")
        schema = request.getfixturevalue("pg_schema")
        built = PostgresKeyStore(database_url, schema=schema)
    yield built
    built.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def ring(store: KeyStore, clock: FakeClock, wall: WallClock) -> KeyRing:
    return KeyRing(store, cache_ttl_s=5.0, touch_interval_s=60.0, clock=clock, now=wall)


def test_tokens_are_greppable_and_only_the_hash_is_stored(ring: KeyRing) -> None:
    key, token = ring.create("acme", ["execute", "tools"], name="ci")
    assert token.startswith(f"cmp_{key.key_id}_")
    key_id, secret = parse_token(token)
    assert key_id == key.key_id
    stored = ring.store.get(key.key_id)
    assert stored is not None
    assert secret not in repr(stored)
    assert stored.secret_sha256 != secret
    assert stored.scopes == frozenset({"execute", "tools"})
    assert stored.tenant == "acme"


def test_verify_accepts_the_token_and_refuses_a_wrong_secret(ring: KeyRing) -> None:
    key, token = ring.create("acme", ["tools"])
    assert ring.verify(token).key_id == key.key_id
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    with pytest.raises(Unauthorized, match="Unknown API key"):
        ring.verify(forged)


@pytest.mark.parametrize(
    "token",
    ["", "cmp_", "Bearer x", "cmp_zz_zz", "cmp_0123456789ab_short", "xyz_0123456789ab_" + "0" * 48],
)
def test_malformed_tokens_are_refused(ring: KeyRing, token: str) -> None:
    with pytest.raises(Unauthorized, match="Malformed"):
        ring.verify(token)


def test_unknown_key_is_refused(ring: KeyRing) -> None:
    with pytest.raises(Unauthorized, match="Unknown API key"):
        ring.verify("cmp_0123456789ab_" + "0" * 48)


def test_expired_key_is_refused(ring: KeyRing, wall: WallClock, clock: FakeClock) -> None:
    _, token = ring.create("acme", ["tools"], expires_in=dt.timedelta(days=30))
    ring.verify(token)
    wall.now = T0 + dt.timedelta(days=30)
    clock.advance(10)
    with pytest.raises(Unauthorized, match="expired"):
        ring.verify(token)


def test_revocation_is_immediate_here_and_within_the_cache_ttl_elsewhere(
    ring: KeyRing, store: KeyStore, clock: FakeClock, wall: WallClock
) -> None:
    other_node = KeyRing(store, cache_ttl_s=5.0, clock=clock, now=wall)
    key, token = ring.create("acme", ["tools"])
    other_node.verify(token)
    ring.revoke(key.key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        ring.verify(token)
    assert other_node.verify_fast(token) is not None  # still cached on the other node...
    clock.advance(5.1)
    with pytest.raises(Unauthorized, match="revoked"):
        other_node.verify(token)  # ...until its cache entry expires


def test_last_used_is_written_at_most_once_per_interval(
    store: KeyStore, clock: FakeClock, wall: WallClock
) -> None:
    ring = KeyRing(store, cache_ttl_s=300.0, touch_interval_s=60.0, clock=clock, now=wall)
    key, token = ring.create("acme", ["tools"])
    ring.verify(token)
    first = ring.store.get(key.key_id)
    assert first is not None
    assert first.last_used_at == T0
    wall.now = T0 + dt.timedelta(seconds=30)
    clock.advance(30)
    assert ring.verify_fast(token) is not None  # no store access inside the interval
    assert ring.store.get(key.key_id).last_used_at == T0  # type: ignore[union-attr]
    wall.now = T0 + dt.timedelta(seconds=61)
    clock.advance(31)
    assert ring.verify_fast(token) is None  # a touch is due: the slow path must run
    ring.verify(token)
    assert ring.store.get(key.key_id).last_used_at == wall.now  # type: ignore[union-attr]


def test_list_and_revoke(ring: KeyRing, wall: WallClock) -> None:
    a, _ = ring.create("acme", ["tools"])
    wall.now = T0 + dt.timedelta(seconds=1)
    b, _ = ring.create("zeta", ["admin"])
    assert [k.key_id for k in ring.list()] == [a.key_id, b.key_id]
    assert [k.key_id for k in ring.list("zeta")] == [b.key_id]
    assert ring.revoke(a.key_id).revoked_at is not None
    with pytest.raises(NotFound):
        ring.revoke("0123456789ab")


@pytest.mark.parametrize(
    ("tenant", "scopes", "message"),
    [
        ("Acme", ["tools"], "Invalid tenant"),
        ("a b", ["tools"], "Invalid tenant"),
        ("", ["tools"], "Invalid tenant"),
        ("acme", [], "Invalid scopes"),
        ("acme", ["root"], "Invalid scopes"),
    ],
)
def test_bad_tenants_and_scopes_are_refused(
    ring: KeyRing, tenant: str, scopes: list[str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        ring.create(tenant, scopes)
    assert ring.list() == []  # nothing written


def test_admin_implies_every_scope(ring: KeyRing) -> None:
    admin, _ = ring.create("ops", ["admin"])
    tools, _ = ring.create("acme", ["tools"])
    assert admin.allows("execute")
    assert admin.allows("knowledge:write")
    assert tools.allows("tools")
    assert not tools.allows("execute")


@pytest.mark.postgres
def test_nodes_starting_together_all_open_the_postgres_key_store(
    database_url: str, pg_schema: str
) -> None:
    """`CREATE TABLE IF NOT EXISTS` alone races between nodes started at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        stores = list(
            pool.map(lambda _: PostgresKeyStore(database_url, schema=pg_schema), range(8))
        )
    try:
        ring = KeyRing(stores[0])
        key, _ = ring.create("acme", ["execute"])
        assert all(store.get(key.key_id) is not None for store in stores)
    finally:
        for store in stores:
            store.close()
