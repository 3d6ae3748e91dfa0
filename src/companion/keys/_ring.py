"""`KeyRing`: create, verify, list and revoke keys; verification is cached so requests stay cheap."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from companion.config import setting_default
from companion.errors import NotFound, Unauthorized
from companion.keys._models import (
    ApiKey,
    check_scopes,
    check_tenant,
    hash_secret,
    new_token,
    parse_token,
    secret_matches,
)
from companion.keys._store import KeyStore

__all__ = ["KeyRing"]

WallClock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KeyRing:
    """Keys over a `KeyStore`, with a short in-process cache of verified records.

    A revocation made on another node takes effect here within `cache_ttl_s`; `last_used_at` is
    written at most once per `touch_interval_s` per key, not on every request.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        cache_ttl_s: float = setting_default("key_cache_ttl_s"),
        touch_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: WallClock = _utc_now,
    ) -> None:
        self.store = store
        self._cache_ttl_s = cache_ttl_s
        self._touch_interval_s = touch_interval_s
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(
        self,
        tenant: str,
        scopes: list[str] | tuple[str, ...],
        *,
        name: str = "",
        expires_in: dt.timedelta | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token; the token is shown once and never stored."""
        token, key_id, secret = new_token()
        created = self._now()
        key = ApiKey(
            key_id=key_id,
            tenant=check_tenant(tenant),
            scopes=check_scopes(scopes),
            name=name[:200],
            created_at=created,
            expires_at=created + expires_in if expires_in else None,
            revoked_at=None,
            last_used_at=None,
            secret_sha256=hash_secret(secret),
        )
        self.store.add(key)
        return key, token

    def verify_fast(self, token: str) -> ApiKey | None:
        """Like `verify` but never touches the store: None when it would have to."""
        key_id, secret = parse_token(token)
        now_s = self._clock()
        cached = self._cache.get(key_id)
        if cached is None or cached[0] <= now_s:
            return None
        if now_s - self._touched.get(key_id, -1e18) >= self._touch_interval_s:
            return None
        key = cached[1]
        if not secret_matches(secret, key.secret_sha256):
            raise Unauthorized("Unknown API key.")
        key.check_usable(self._now())
        return key

    def verify(self, token: str) -> ApiKey:
        """The usable key behind `token`, or `Unauthorized` (malformed, unknown, revoked, expired)."""
        key_id, secret = parse_token(token)
        now_s = self._clock()
        cached = self._cache.get(key_id)
        key = cached[1] if cached and cached[0] > now_s else None
        if key is None:
            key = self.store.get(key_id)
            if key is None:
                raise Unauthorized("Unknown API key.")
            with self._lock:
                self._cache[key_id] = (now_s + self._cache_ttl_s, key)
        if not secret_matches(secret, key.secret_sha256):
            raise Unauthorized("Unknown API key.")  # same words: do not confirm the id exists
        key.check_usable(self._now())
        if now_s - self._touched.get(key_id, -1e18) >= self._touch_interval_s:
            self._touched[key_id] = now_s
            self.store.touch(key_id, self._now())
        return key

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key, or one tenant's."""
        return self.store.list(tenant)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke now (this node at once, others within the cache TTL)."""
        if not self.store.revoke(key_id, self._now()):
            raise NotFound(f"No API key {key_id!r}.")
        with self._lock:
            self._cache.pop(key_id, None)
        key = self.store.get(key_id)
        assert key is not None
        return replace(key)

    def close(self) -> None:
        """Close the store."""
        self.store.close()
