"""One collection's vectors on disk: an append-only float32 matrix, memory-mapped for search.

Files in the collection's directory (all derived from SQLite, deleted and rebuilt at will):

- `vectors.f32`: one row of `dimension` little-endian float32 per chunk vector, opened with
  `numpy.memmap`, so a restart maps the file instead of reading 100k BLOBs and every process
  reading it shares the OS page cache;
- `chunks.i64`, `docs.i64`: the chunk and document key of each row;
- `dead.u8`: one byte per row, set to 1 (a tombstone) when the row's document is rewritten or deleted;
- `meta.json`: the format, the dimension and the row count the files held after the last write.

Writes append rows and flip tombstone bytes in place; nothing rewrites the whole matrix except
`compact`, which drops dead rows once they are a quarter of the file. Files shorter than
`meta.json` says (truncated, half-copied) are refused by `open`, and the caller rebuilds them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Snapshot", "VectorLog", "VectorRows"]

VectorRows = list[tuple[int, int, bytes]]
"""`(chunk key, document key, float32 bytes)` rows."""

_FORMAT = 1
_COMPACT_MIN_DEAD_ROWS = 256
_KEY_FILES = (("chunks.i64", 8), ("docs.i64", 8), ("dead.u8", 1))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of the rows at one moment: searches read it without holding a lock."""

    chunks: npt.NDArray[np.int64]
    dead: npt.NDArray[np.bool_]
    vectors: npt.NDArray[np.float32]


class VectorLog:
    """The append-only vector files of one collection; not thread-safe (the index locks it)."""

    def __init__(self, directory: Path, dimension: int) -> None:
        import numpy as np

        self.directory = directory
        self.dimension = dimension
        self.chunks = np.empty(0, dtype=np.int64)
        self.docs = np.empty(0, dtype=np.int64)
        self.dead = np.empty(0, dtype=np.bool_)
        self.vectors: Any = np.empty((0, dimension), dtype=np.float32)
        # Bumped by `compact`, which moves rows: positions taken before it are void.
        self.generation = 0

    @property
    def rows(self) -> int:
        """Rows in the files, dead ones included."""
        return len(self.chunks)

    @property
    def alive(self) -> int:
        """Rows not tombstoned: the collection's chunk vectors."""
        return self.rows - int(self.dead.sum())

    @classmethod
    def create(cls, directory: Path, dimension: int, rows: VectorRows) -> VectorLog:
        """Fresh files holding `rows` (replacing whatever was in `directory`)."""
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        log = cls(directory, dimension)
        for name in ("vectors.f32", *(name for name, _ in _KEY_FILES)):
            (directory / name).touch()
        log._write_meta()
        log.append(rows)
        return log

    @classmethod
    def open(cls, directory: Path) -> VectorLog | None:
        """The files in `directory`, or None when they are missing, truncated or unreadable."""
        import numpy as np

        try:
            meta = json.loads((directory / "meta.json").read_text())
            if meta.get("format") != _FORMAT:
                return None
            dimension, rows = int(meta["dimension"]), int(meta["rows"])
            log = cls(directory, dimension)
            sizes = [("vectors.f32", 4 * dimension), *_KEY_FILES]
            for name, width in sizes:
                path = directory / name
                if path.stat().st_size < rows * width:
                    return None
                # Longer is a crash between an append and its meta.json: those rows are not
                # counted yet and the change that wrote them is replayed from the SQLite log.
                os.truncate(path, rows * width)
            log.chunks = np.fromfile(directory / "chunks.i64", dtype=np.int64)
            log.docs = np.fromfile(directory / "docs.i64", dtype=np.int64)
            log.dead = np.fromfile(directory / "dead.u8", dtype=np.uint8).astype(np.bool_)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        log._map()
        return log

    def snapshot(self) -> Snapshot:
        """The current rows; later writes build new arrays, so the snapshot never changes."""
        return Snapshot(self.chunks, self.dead, self.vectors)

    def append(self, rows: VectorRows) -> None:
        """Append rows at the end of every file, then record the new count."""
        import numpy as np

        if not rows:
            return
        chunks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        docs = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        blob = b"".join(r[2] for r in rows)
        if len(blob) != len(rows) * 4 * self.dimension:
            raise ValueError(f"vectors of another dimension than {self.dimension}")
        for name, data in (
            ("vectors.f32", blob),
            ("chunks.i64", chunks.tobytes()),
            ("docs.i64", docs.tobytes()),
            ("dead.u8", bytes(len(rows))),
        ):
            with open(self.directory / name, "ab") as file:
                file.write(data)
        self.chunks = np.concatenate([self.chunks, chunks])
        self.docs = np.concatenate([self.docs, docs])
        self.dead = np.concatenate([self.dead, np.zeros(len(rows), dtype=np.bool_)])
        self._write_meta()
        self._map()

    def tombstone(self, doc_keys: Iterable[int]) -> npt.NDArray[np.int64]:
        """Mark the live rows of `doc_keys` dead; return their chunk keys."""
        import numpy as np

        wanted = np.fromiter(doc_keys, dtype=np.int64)
        if not len(wanted) or not self.rows:
            return np.empty(0, dtype=np.int64)
        hit = np.flatnonzero(np.isin(self.docs, wanted) & ~self.dead)
        if len(hit):
            fd = os.open(self.directory / "dead.u8", os.O_WRONLY)
            try:
                for row in hit.tolist():
                    os.pwrite(fd, b"\x01", row)
            finally:
                os.close(fd)
            dead = self.dead.copy()
            dead[hit] = True
            self.dead = dead
        return self.chunks[hit]

    def needs_compaction(self) -> bool:
        """Whether dead rows are numerous enough to be worth rewriting the files without them."""
        dead = self.rows - self.alive
        return dead >= _COMPACT_MIN_DEAD_ROWS and dead * 4 >= self.rows

    def compact(self) -> None:
        """Rewrite the files with live rows only (new files renamed over the old ones)."""
        keep = ~self.dead
        alive = [
            ("vectors.f32", _raw(self.vectors[keep])),
            ("chunks.i64", _raw(self.chunks[keep])),
            ("docs.i64", _raw(self.docs[keep])),
            ("dead.u8", bytes(int(keep.sum()))),
        ]
        for name, data in alive:
            temporary = self.directory / f"{name}.tmp"
            temporary.write_bytes(data)
            temporary.replace(self.directory / name)
        self.chunks, self.docs = self.chunks[keep], self.docs[keep]
        self.dead = self.dead[keep]
        self.generation += 1
        self._write_meta()
        self._map()

    def _map(self) -> None:
        import numpy as np

        if self.rows:
            self.vectors = np.memmap(
                self.directory / "vectors.f32",
                dtype=np.float32,
                mode="r",
                shape=(self.rows, self.dimension),
            )
        else:
            self.vectors = np.empty((0, self.dimension), dtype=np.float32)

    def _write_meta(self) -> None:
        meta = {"format": _FORMAT, "dimension": self.dimension, "rows": self.rows}
        temporary = self.directory / "meta.json.tmp"
        temporary.write_text(json.dumps(meta))
        temporary.replace(self.directory / "meta.json")


def _raw(array: Any) -> bytes:
    """The raw bytes of a numpy array (a memmap slice included)."""
    import numpy as np

    return np.ascontiguousarray(array).tobytes()
