"""The guard in front of every `/v1` route: API key, scope, tenant and per-key rate limits.

The limits are counted by `RateLimits` (`_limits.py`), held in `AppState`; the guard only asks.

Usage in a route: `key: Annotated[ApiKey, Depends(require("execute"))]`. The key comes from
`Authorization: Bearer <key>` or `X-API-Key: <key>`; the verified record is cached by the `KeyRing`,
so a request costs a dict lookup and a sha256, not a database query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from companion.api._context import KEY_ID, TENANT
from companion.api._state import AppState, app_state
from companion.errors import Forbidden, Unauthorized
from companion.keys import ApiKey, KeyRing, Scope

__all__ = ["authenticate", "require"]

_API_KEY = "companion.api_key"


def _token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is not None:
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value:
            raise Unauthorized("Use `Authorization: Bearer <API key>` or `X-API-Key: <API key>`.")
        return value.strip()
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    raise Unauthorized("An API key is required: `Authorization: Bearer <API key>`.")


async def authenticate(request: Request, keys: KeyRing) -> ApiKey:
    """The verified key of this request (cached for the request's lifetime)."""
    cached = request.scope.get(_API_KEY)
    if isinstance(cached, ApiKey):
        return cached
    token = _token(request)
    key = keys.verify_fast(token)
    if key is None:  # a cache miss or a due `last_used_at` write: the store is touched, off-loop
        key = await asyncio.to_thread(keys.verify, token)
    request.scope.update({_API_KEY: key, KEY_ID: key.key_id, TENANT: key.tenant})
    return key


def require(scope: Scope | None = None) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency admitting keys that hold `scope` (any valid key when None), rate limited."""

    async def guard(request: Request) -> ApiKey:
        state: AppState = app_state(request)
        if state.key_ring is None:
            await state.open_keys(retry_interval_s=5.0)
        key = await authenticate(request, state.keys)
        if scope is not None and not key.allows(scope):
            raise Forbidden(f"This API key lacks the `{scope}` scope.")
        await state.rate_limits.hit(key, scope)
        return key

    return guard
