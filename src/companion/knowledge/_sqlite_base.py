"""Shared state of `SqliteStore`'s parts: connections, the write lock, transactions, key lookup."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from companion.knowledge._errors import CollectionNotFound
from companion.knowledge._tantivy_index import FullTextIndex
from companion.knowledge._vectors import VectorIndex

__all__ = ["SqliteBase"]

T = TypeVar("T")


class SqliteBase:
    """What every part of `SqliteStore` shares; `SqliteStore.__init__` sets these attributes."""

    root: Path
    _clock: Callable[[], float]
    _conn: sqlite3.Connection | None
    _lock: threading.RLock
    _reader: sqlite3.Connection | None
    _reader_lock: threading.Lock
    _fulltext: FullTextIndex
    _vectors: VectorIndex
    _seq_file: Path
    _format_file: Path

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteStore is not started")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def _key(self, tenant: str, name: str) -> int:
        row = self._db.execute(
            "SELECT key FROM collections WHERE tenant = ? AND name = ?", (tenant, name)
        ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return int(row[0])
