"""companion.keys: API keys (`cmp_<id>_<secret>`, stored hashed) with scopes and a tenant each."""

from companion.keys._models import SCOPES, ApiKey, Scope, parse_token
from companion.keys._ring import KeyRing
from companion.keys._store import KeyStore, PostgresKeyStore, SQLiteKeyStore, open_key_store

__all__ = [
    "SCOPES",
    "ApiKey",
    "KeyRing",
    "KeyStore",
    "PostgresKeyStore",
    "SQLiteKeyStore",
    "Scope",
    "open_key_store",
    "parse_token",
]
