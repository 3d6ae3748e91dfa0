"""`SqliteStore`'s derived indexes: the `changes` log replayed into tantivy and the vectors."""

# ruff: noqa: S608 -- as for `_*_store.py` in pyproject: only constant column lists and `?`
# placeholder lists are interpolated.

from __future__ import annotations

import logging

from companion.knowledge._sqlite_base import SqliteBase
from companion.knowledge._tantivy_index import INDEX_FORMAT

__all__ = ["SqliteIndexes"]

_log = logging.getLogger("companion.knowledge")


class SqliteIndexes(SqliteBase):
    """Catch-up and rebuild of the indexes derived from SQLite."""

    # -- derived indexes -----------------------------------------------------------------------

    def _applied_seq(self) -> int:
        try:
            return int(self._seq_file.read_text())
        except (OSError, ValueError):
            return 0

    def _save_applied_seq(self, seq: int) -> None:
        temporary = self._seq_file.with_suffix(".tmp")
        temporary.write_text(str(seq))
        temporary.replace(self._seq_file)

    def _catch_up(self) -> None:
        """Apply every change after the indexes' `applied_seq`; a failure is retried later.

        The write that called this is already committed, so it is acknowledged even when an index
        update fails: the change stays in the log and the next write or the next start applies it.
        """
        try:
            self._apply_changes()
        except Exception:
            _log.exception(
                "knowledge index update failed; it is retried on the next write or start"
            )

    def _apply_changes(self) -> None:
        with self._lock:
            applied = self._applied_seq()
            rows = self._db.execute(
                "SELECT seq, collection_key, document_key FROM changes WHERE seq > ? ORDER BY seq",
                (applied,),
            ).fetchall()
            if not rows:
                return
            touched: dict[int, set[int] | None] = {}
            for _, collection_key, doc_key in rows:
                if doc_key is None:
                    touched[collection_key] = None
                elif touched.get(collection_key, set()) is not None:
                    touched.setdefault(collection_key, set()).add(doc_key)  # type: ignore[union-attr]
            for collection_key, doc_keys in touched.items():
                self._apply(collection_key, doc_keys)
            self._save_applied_seq(rows[-1][0])
            # The changes now live in the indexes; the log only needs what they have not applied.
            self._db.execute("DELETE FROM changes WHERE seq <= ?", (rows[-1][0],))

    def _apply(self, collection_key: int, doc_keys: set[int] | None) -> None:
        exists = self._db.execute(
            "SELECT 1 FROM collections WHERE key = ?", (collection_key,)
        ).fetchone()
        if doc_keys is None or exists is None:
            self._fulltext.drop(collection_key)
            self._vectors.drop(collection_key)
            if exists is None:
                return
            doc_keys = {
                row[0]
                for row in self._db.execute(
                    "SELECT key FROM documents WHERE collection_key = ?", (collection_key,)
                )
            }
        rows = self._chunk_rows(sorted(doc_keys))
        self._fulltext.apply(collection_key, doc_keys, ((c, d, h, t) for c, d, h, t, _ in rows))
        self._vectors.apply(collection_key, doc_keys, [(c, d, v) for c, d, _, _, v in rows if v])

    def _chunk_rows(
        self, doc_keys: list[int]
    ) -> list[tuple[int, int, str | None, str, bytes | None]]:
        """`(chunk, document, title, text, vector)` of the documents' chunks."""
        rows: list[tuple[int, int, str | None, str, bytes | None]] = []
        for start in range(0, len(doc_keys), 500):
            batch = doc_keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows += self._db.execute(
                "SELECT c.key, c.document_key, d.title, c.text, c.vector FROM chunks c "
                "JOIN documents d ON d.key = c.document_key "
                f"WHERE c.document_key IN ({marks}) ORDER BY c.key",
                batch,
            ).fetchall()
        return rows

    def _load_vectors(self, collection_key: int) -> list[tuple[int, int, bytes]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.key, c.document_key, c.vector FROM chunks c "
                "JOIN documents d ON c.document_key = d.key "
                "WHERE d.collection_key = ? AND c.vector IS NOT NULL ORDER BY c.key",
                (collection_key,),
            ).fetchall()
        return [(int(c), int(d), bytes(v)) for c, d, v in rows]

    def _check_vectors(self, collection_key: int) -> tuple[int, int]:
        """How many chunks of the collection have a vector, and the sum of their keys."""
        with self._lock:
            count, total = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(c.key), 0) FROM chunks c "
                "JOIN documents d ON c.document_key = d.key "
                "WHERE d.collection_key = ? AND c.vector IS NOT NULL",
                (collection_key,),
            ).fetchone()
        return int(count), int(total)

    def _index_is_current(self) -> bool:
        """Whether the derived indexes exist and hold what this version indexes."""
        try:
            written = int(self._format_file.read_text())
        except (OSError, ValueError):
            return False
        return self._seq_file.exists() and written == INDEX_FORMAT

    def _rebuild(self) -> None:
        """Throw the derived indexes away and build them again from SQLite."""
        with self._lock:
            _log.info("rebuilding the knowledge indexes from SQLite")
            self._fulltext.reset()
            self._vectors.reset()
            self._seq_file.parent.mkdir(parents=True, exist_ok=True)
            (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
            for (collection_key,) in self._db.execute("SELECT key FROM collections").fetchall():
                self._apply(collection_key, None)
            self._save_applied_seq(last)
            self._format_file.write_text(str(INDEX_FORMAT))

    async def rebuild(self) -> None:
        """Rebuild every derived index from the source of truth."""
        await self._run(self._rebuild)
