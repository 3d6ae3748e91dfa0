"""Where keys live: the `KeyStore` protocol, SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from companion.config import Settings
from companion.errors import DependencyUnavailable, FeatureUnavailable
from companion.keys._models import ApiKey, Scope

__all__ = ["KeyStore", "PostgresKeyStore", "SQLiteKeyStore", "open_key_store"]

_CREATE = (
    "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
    "scopes TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT, "
    "revoked_at TEXT, last_used_at TEXT, secret_sha256 TEXT NOT NULL)"
)
# pg_advisory_xact_lock key: one node creates the table at a time.
_CREATE_LOCK = 0x6B657973
# Written with `?` placeholders; PostgreSQL gets them as `%s`.
_INSERT = (
    "INSERT INTO api_keys (key_id, tenant, scopes, name, created_at, expires_at, revoked_at, "
    "last_used_at, secret_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = (
    "SELECT key_id, tenant, scopes, name, created_at, expires_at, revoked_at, last_used_at, "
    "secret_sha256 FROM api_keys"
)
_GET = _SELECT + " WHERE key_id = ?"
_LIST_ALL = _SELECT + " ORDER BY created_at, key_id"
_LIST_TENANT = _SELECT + " WHERE tenant = ? ORDER BY created_at, key_id"
_REVOKE = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?"
_TOUCH = "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?"


class KeyStore(Protocol):
    """Persistence of `ApiKey` records (never secrets, only their hashes)."""

    def add(self, key: ApiKey) -> None:
        """Insert a new key."""
        ...

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, if any."""
        ...

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key, or a tenant's, oldest first."""
        ...

    def revoke(self, key_id: str, when: dt.datetime) -> bool:
        """Mark revoked; False when there is no such key."""
        ...

    def touch(self, key_id: str, when: dt.datetime) -> None:
        """Record a use (`last_used_at`)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _to_row(key: ApiKey) -> tuple[Any, ...]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return (
        key.key_id,
        key.tenant,
        " ".join(sorted(key.scopes)),
        key.name,
        iso(key.created_at),
        iso(key.expires_at),
        iso(key.revoked_at),
        iso(key.last_used_at),
        key.secret_sha256,
    )


def _from_row(row: tuple[Any, ...]) -> ApiKey:
    def when(value: Any) -> dt.datetime | None:
        if value is None or isinstance(value, dt.datetime):
            return value
        return dt.datetime.fromisoformat(str(value))

    created = when(row[4])
    assert created is not None
    scopes: frozenset[Scope] = frozenset(str(row[2]).split())  # type: ignore[arg-type]
    return ApiKey(
        key_id=str(row[0]),
        tenant=str(row[1]),
        scopes=scopes,
        name=str(row[3]),
        created_at=created,
        expires_at=when(row[5]),
        revoked_at=when(row[6]),
        last_used_at=when(row[7]),
        secret_sha256=str(row[8]),
    )


class SQLiteKeyStore:
    """Keys in `<data_dir>/keys.sqlite3` (WAL): the embedded default."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_CREATE)

    def add(self, key: ApiKey) -> None:
        """Insert a new key."""
        with self._lock:
            self._db.execute(_INSERT, _to_row(key))

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, if any."""
        with self._lock:
            row = self._db.execute(_GET, (key_id,)).fetchone()
        return _from_row(row) if row else None

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key, or a tenant's, oldest first."""
        query, args = (_LIST_ALL, ()) if tenant is None else (_LIST_TENANT, (tenant,))
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [_from_row(row) for row in rows]

    def revoke(self, key_id: str, when: dt.datetime) -> bool:
        """Mark revoked; False when there is no such key."""
        with self._lock:
            cursor = self._db.execute(_REVOKE, (when.isoformat(), key_id))
        return cursor.rowcount == 1

    def touch(self, key_id: str, when: dt.datetime) -> None:
        """Record a use (`last_used_at`)."""
        with self._lock:
            self._db.execute(_TOUCH, (when.isoformat(), key_id))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class PostgresKeyStore:
    """Keys in PostgreSQL, shared by every node (`COMPANION_DATABASE_URL`).

    A small connection pool replaces broken connections, so a restarted server is picked up; while
    it is down, calls raise `DependencyUnavailable` (503), never a raw driver error.
    """

    def __init__(self, dsn: str, schema: str = "public") -> None:
        try:
            from psycopg import sql
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise FeatureUnavailable(
                "PostgreSQL needs the `postgres` extra: pip install 'companion[postgres]'."
            ) from exc
        search_path = sql.SQL("SET search_path TO {}").format(sql.Identifier(schema))

        def configure(connection: Any) -> None:
            connection.execute(search_path)

        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True},
            configure=configure,
            check=ConnectionPool.check_connection,
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=5.0)
        except Exception as exc:
            self._pool.close()
            raise DependencyUnavailable(
                f"The key store (PostgreSQL) is unreachable: {exc}"
            ) from None
        self._create_table()

    def _create_table(self) -> None:
        import psycopg

        create = _CREATE.replace("TEXT NOT NULL, expires", "TIMESTAMPTZ NOT NULL, expires")
        try:
            with self._pool.connection(timeout=5.0) as connection, connection.transaction():
                # Nodes starting together would race `CREATE TABLE IF NOT EXISTS`, which is not
                # atomic in PostgreSQL (the loser fails on the catalog's unique index).
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                connection.execute(create)
        except (psycopg.Error, OSError) as exc:
            raise DependencyUnavailable(
                f"The key store (PostgreSQL) is unreachable: {type(exc).__name__}"
            ) from None

    def _run(self, statement: str, args: tuple[Any, ...] = ()) -> Any:
        import psycopg

        try:
            with self._pool.connection(timeout=5.0) as connection:
                cursor = connection.execute(statement.replace("?", "%s"), args)
                return cursor.fetchall() if cursor.description else cursor.rowcount
        except (psycopg.Error, OSError) as exc:
            raise DependencyUnavailable(
                f"The key store (PostgreSQL) is unreachable: {type(exc).__name__}"
            ) from None

    def add(self, key: ApiKey) -> None:
        """Insert a new key."""
        self._run(_INSERT, _to_row(key))

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, if any."""
        rows = self._run(_GET, (key_id,))
        return _from_row(rows[0]) if rows else None

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key, or a tenant's, oldest first."""
        query, args = (_LIST_ALL, ()) if tenant is None else (_LIST_TENANT, (tenant,))
        return [_from_row(row) for row in self._run(query, args)]

    def revoke(self, key_id: str, when: dt.datetime) -> bool:
        """Mark revoked; False when there is no such key."""
        return bool(self._run(_REVOKE, (when.isoformat(), key_id)) == 1)

    def touch(self, key_id: str, when: dt.datetime) -> None:
        """Record a use (`last_used_at`)."""
        self._run(_TOUCH, (when.isoformat(), key_id))

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()


def open_key_store(settings: Settings) -> KeyStore:
    """PostgreSQL when `COMPANION_DATABASE_URL` is set, else SQLite under the data directory."""
    if settings.database_url is not None:
        return PostgresKeyStore(
            settings.database_url.get_secret_value(), schema=settings.database_schema
        )
    return SQLiteKeyStore(settings.data_dir / "keys.sqlite3")
