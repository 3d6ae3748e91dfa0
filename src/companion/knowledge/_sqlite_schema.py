"""The embedded store's SQLite schema, applied by numbered migrations recorded in `user_version`."""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "connect", "migrate"]

# AUTOINCREMENT keeps keys from ever being reused, so a stale entry in a derived index can never
# point at a newer row. `changes` is the sequence the derived indexes catch up from.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE collections (
        key INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        model TEXT, model_version TEXT, dimension INTEGER,
        -- Kept in step by every write: counting 100k rows on each read would cost milliseconds.
        document_count INTEGER NOT NULL DEFAULT 0,
        chunk_count INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant, name)
    );
    CREATE TABLE documents (
        key INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_key INTEGER NOT NULL REFERENCES collections (key) ON DELETE CASCADE,
        id TEXT NOT NULL,
        title TEXT,
        text TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        source TEXT,
        content_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (collection_key, id)
    );
    CREATE TABLE chunks (
        key INTEGER PRIMARY KEY AUTOINCREMENT,
        document_key INTEGER NOT NULL REFERENCES documents (key) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        start_char INTEGER NOT NULL,
        end_char INTEGER NOT NULL,
        vector BLOB
    );
    CREATE INDEX chunks_by_document ON chunks (document_key);
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_key INTEGER NOT NULL,
        document_key INTEGER
    );
    """,
    # The embedding queue's work list: chunks still without a vector, found without a table scan.
    """
    CREATE INDEX chunks_pending_vector ON chunks (key, document_key) WHERE vector IS NULL;
    """,
    # Where a chunk is, for citations: its PDF page and the headings above it (a JSON array).
    """
    ALTER TABLE chunks ADD COLUMN page INTEGER;
    ALTER TABLE chunks ADD COLUMN headings TEXT;
    """,
)


def connect(path: str) -> sqlite3.Connection:
    """A connection in WAL mode with full fsync on commit (an acknowledged write survives a crash)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations newer than the database's `user_version`, each in its own transaction."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
