"""When a call is tried again, and after how long: plain decisions, shared by both clients.

A call is retried when the service refused it without running it (429 and 503: `Retry-After` is
honoured), or when the connection failed before the request left (nothing can have run). Any other
broken connection is retried only for idempotent calls (GET, PUT, DELETE, and POSTs the client
knows are reads, such as a search): a POST that may have run (a tool call, a snippet) is never
sent twice. A request the client cannot send at all (a URL without `http://`) is not retried, and
`transport_errors=False` retries no failed connection (a command line's choice: it should say at
once that nothing listens). Waits grow exponentially with jitter, and a retry is made only when
its wait ends within `budget_s` of the first try: a `Retry-After` past the budget raises at once
(the error carries it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from companion_client._errors import retry_after_seconds

__all__ = ["IDEMPOTENT_METHODS", "NO_RETRIES", "Attempts", "RetryPolicy"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Errors raised before the request was written: the service cannot have seen it.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The request itself is wrong (no `http://` in the URL, a header httpx refuses): trying it again
# would fail the same way, after the waits.
_INCURABLE = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries: at most `max_retries` more tries, each begun within `budget_s`
    seconds of the first; waits of `backoff_s` doubling up to `max_backoff_s` (with `jitter`, each
    wait is drawn between half and all of that, so clients refused together do not return
    together), never shorter than the service's `Retry-After`; on the `statuses` listed, and after
    a failed connection unless `transport_errors` is false."""

    max_retries: int = 3
    budget_s: float = 30.0
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter: bool = True
    statuses: frozenset[int] = frozenset({429, 503})
    transport_errors: bool = True


NO_RETRIES = RetryPolicy(max_retries=0)


class Attempts:
    """The retry decisions of one call. After each answer or failure, `after_response` or
    `after_error` says how long to wait before the next try, or None to stop there."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        clock: Callable[[], float],
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._idempotent = idempotent
        self._clock = clock
        self._rng = rng
        self._started = clock()
        self.retries = 0

    def after_response(self, response: httpx.Response) -> float | None:
        """The wait before trying again after `response`, or None to keep it."""
        if response.status_code not in self._policy.statuses:
            return None
        return self._next(retry_after_seconds(response.headers.get("retry-after")))

    def after_error(self, error: httpx.TransportError) -> float | None:
        """The wait before trying again after a transport error, or None to raise it."""
        if not self._policy.transport_errors or isinstance(error, _INCURABLE):
            return None
        if not (self._idempotent or isinstance(error, _NEVER_SENT)):
            return None
        return self._next(None)

    def _next(self, retry_after_s: float | None) -> float | None:
        policy = self._policy
        if self.retries >= policy.max_retries:
            return None
        ceiling = min(policy.max_backoff_s, policy.backoff_s * 2.0**self.retries)
        delay = ceiling * (0.5 + 0.5 * self._rng()) if policy.jitter else ceiling
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        if self._clock() - self._started + delay > policy.budget_s:
            return None
        self.retries += 1
        return delay
