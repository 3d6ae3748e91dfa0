"""Dashboard sign-in: HMAC-signed session cookies naming a key id, never the key itself.

A cookie is `<key id>.<expiry unix s>.<hmac-sha256>`. It is HttpOnly and SameSite=Strict (so no other
site can send it), scoped to `/dashboard`. Each request re-reads the key record (cached briefly), so
a revoked or expired key ends its sessions within the key cache TTL. The guard that reads the cookie
is `_dashboard.dashboard_admin`; this module knows nothing of the app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from starlette.requests import Request

from companion.errors import Forbidden
from companion.keys import ApiKey, KeyRing

__all__ = ["COOKIE", "REFERRER_POLICY", "SessionSigner", "check_sign_in_origin"]

COOKIE = "companion_dashboard"
# What the dashboard's pages send as `Referrer-Policy`. Not `no-referrer`: under it a browser sends
# `Origin: null` on the sign-in form's own same-origin POST (Fetch standard, "serializing a request
# origin"), and `null` must be refused. `same-origin` names the real origin to us and sends nothing
# to any other site.
REFERRER_POLICY = "same-origin"


def check_sign_in_origin(request: Request) -> None:
    """Refuse a sign-in posted from any page but the dashboard's own (`Forbidden`, 403).

    `Origin: null` is refused like any foreign origin: sandboxed frames, `data:` and `file:`
    pages and cross-site redirects send it, so it vouches for nothing (a page anywhere could sign
    a visitor in under the attacker's key). No `Origin` at all is a script, not a browser form.
    """
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("Sign in from the dashboard's own page.")


class SessionSigner:
    """Issues and verifies session cookie values; the clock is injectable for tests."""

    def __init__(
        self, secret: bytes | None, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self._clock = clock
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, key_id: str) -> str:
        """A cookie value for `key_id`, valid for `ttl_s`."""
        payload = f"{key_id}.{int(self._clock() + self.ttl_s)}"
        return f"{payload}.{self._mac(payload)}"

    def verify(self, value: str) -> str | None:
        """The key id of a genuine, unexpired cookie value; None otherwise."""
        payload, _, mac = value.rpartition(".")
        key_id, _, expires = payload.rpartition(".")
        if not (key_id and expires.isdigit() and hmac.compare_digest(mac, self._mac(payload))):
            return None
        return key_id if int(expires) > self._clock() else None

    async def key_of(
        self, key_id: str, keys: Callable[[], KeyRing], cache_ttl_s: float
    ) -> ApiKey | None:
        """The stored key record, cached for `cache_ttl_s` (revocation applies within it).

        `keys` gives the app's key ring; it is asked only on a cache miss, so a session verified
        within the TTL needs no key store.
        """
        now = self._clock()
        cached = self._keys.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        key = await asyncio.to_thread(keys().store.get, key_id)
        self._keys[key_id] = (now + cache_ttl_s, key)
        return key
