"""API keys: scopes, the stored record, and the token format `cmp_<key_id>_<secret>`."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal, get_args

from companion.errors import InvalidInput, Unauthorized

__all__ = [
    "SCOPES",
    "ApiKey",
    "Scope",
    "check_scopes",
    "check_tenant",
    "hash_secret",
    "new_token",
    "parse_token",
    "secret_matches",
]

Scope = Literal["execute", "tools", "knowledge:read", "knowledge:write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# `cmp_` makes leaked keys easy for secret scanners to find; the id is public, the secret is not.
_TOKEN = re.compile(r"^cmp_([0-9a-f]{12})_([0-9a-f]{48})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: never the secret, only its sha256."""

    key_id: str
    tenant: str
    scopes: frozenset[Scope]
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    secret_sha256: str

    def allows(self, scope: Scope) -> bool:
        """`admin` implies every scope."""
        return scope in self.scopes or "admin" in self.scopes

    def check_usable(self, now: dt.datetime) -> None:
        """Raise `Unauthorized` for a revoked or expired key."""
        if self.revoked_at is not None:
            raise Unauthorized("This API key has been revoked.")
        if self.expires_at is not None and now >= self.expires_at:
            raise Unauthorized("This API key has expired.")


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_sha256: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_sha256)


def new_token() -> tuple[str, str, str]:
    """A fresh (token, key_id, secret)."""
    key_id, secret = secrets.token_hex(6), secrets.token_hex(24)
    return f"cmp_{key_id}_{secret}", key_id, secret


def parse_token(token: str) -> tuple[str, str]:
    """(key_id, secret) of a well-formed token, else `Unauthorized`."""
    match = _TOKEN.fullmatch(token.strip())
    if match is None:
        raise Unauthorized("Malformed API key: expected `cmp_<key id>_<secret>`.")
    return match.group(1), match.group(2)


def check_tenant(tenant: str) -> str:
    """A tenant name: lower-case letters, digits, `_` and `-`, at most 63 characters."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidInput(
            f"Invalid tenant {tenant!r}: use 1-63 lower-case letters, digits, '_' or '-'."
        )
    return tenant


def check_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """Validated scopes (at least one)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(
            f"Invalid scopes {unknown or '(none)'}; choose from {', '.join(SCOPES)}."
        )
    return frozenset(scope for scope in SCOPES if scope in scopes)
