"""An HNSW graph (usearch) over one collection's vector log, for collections past the exact limit.

Only imported once a collection passes the limit (numpy and usearch are installed by then). The
graph is built in a background thread (minutes for 100k vectors on two cores) and saved next to
the log as `hnsw.usearch`, with `hnsw.json` recording how many log rows it covered when saved.
Opening it replays the log rows written since (new rows added, tombstoned ones removed), so the
file may lag the log; it is saved after a build, after a compaction, at close and when a quarter
of the graph is unsaved. A missing or unreadable file is rebuilt from the log, which itself
rebuilds from SQLite: the graph is never a source of truth.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.knowledge._vector_log import Snapshot, VectorLog

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["HnswGraph", "forget"]

_log = logging.getLogger("companion.knowledge")

# usearch's defaults for connectivity and expansion_add; expansion_search raised from 64 to 128:
# on 100k MiniLM-like vectors it lifts recall@10 from ~0.95 to ~0.99 for a fraction of a millisecond.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 128
_BUILD_BATCH_ROWS = 10_000


class HnswGraph:
    """Approximate inner-product search over the live rows of a `VectorLog`."""

    def __init__(self, directory: Path, index: Any) -> None:
        self.directory = directory
        self._index = index
        self._lock = threading.Lock()
        self._unsaved = 0

    @property
    def size(self) -> int:
        """Vectors in the graph."""
        return len(self._index)

    @property
    def dirty(self) -> bool:
        """Whether the graph changed since it was last saved."""
        return self._unsaved > 0

    @classmethod
    def build(cls, directory: Path, dimension: int, rows: Snapshot, stop: threading.Event) -> bool:
        """Build a graph of the live `rows` and save it; False when `stop` was set meanwhile."""
        graph = cls(directory, _new_index(dimension))
        live = np.flatnonzero(~rows.dead)
        for first in range(0, len(live), _BUILD_BATCH_ROWS):
            if stop.is_set():
                return False
            graph.add_rows(rows, live[first : first + _BUILD_BATCH_ROWS])
        graph.save(len(rows.chunks))
        return True

    @classmethod
    def open(cls, log: VectorLog) -> HnswGraph | None:
        """The saved graph brought up to the log's rows, or None when missing or unreadable."""
        Index = _usearch_index()  # noqa: N806 - the class, imported late

        try:
            meta = json.loads((log.directory / "hnsw.json").read_text())
            covered = int(meta["covered_rows"])
            index = Index.restore(str(log.directory / "hnsw.usearch"))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        if index is None or index.ndim != log.dimension or covered > log.rows:
            return None
        # A saved file does not keep the search expansion.
        index.expansion_search = EXPANSION_SEARCH
        graph = cls(log.directory, index)
        # Rows tombstoned after the save: their keys leave the graph unless a live row before
        # `covered` (already in the graph) holds the same key with its newer vector.
        old = slice(0, covered)
        gone = np.setdiff1d(log.chunks[old][log.dead[old]], log.chunks[old][~log.dead[old]])
        graph.remove(gone)
        graph.add_rows(log.snapshot(), covered + np.flatnonzero(~log.dead[covered:]))
        if graph.needs_save():
            graph.save(log.rows)
        return graph

    def add_rows(self, rows: Snapshot, positions: npt.NDArray[np.intp]) -> None:
        """Add the rows at `positions` (replacing keys already present)."""
        for first in range(0, len(positions), _BUILD_BATCH_ROWS):
            batch = positions[first : first + _BUILD_BATCH_ROWS]
            self.add(rows.chunks[batch], np.asarray(rows.vectors[batch]))

    def add(self, keys: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        """Add vectors under chunk keys (a key already present is replaced)."""
        if not len(keys):
            return
        with self._lock:
            self._remove_present(keys)
            self._index.add(keys.astype("uint64"), vectors)
            self._unsaved += len(keys)

    def remove(self, keys: npt.NDArray[np.int64]) -> None:
        """Remove chunk keys (absent ones are ignored)."""
        if len(keys):
            with self._lock:
                self._remove_present(keys)
                self._unsaved += len(keys)

    def _remove_present(self, keys: npt.NDArray[np.int64]) -> None:
        present = keys[np.asarray(self._index.contains(keys.astype("uint64")), dtype=np.bool_)]
        if len(present):
            self._index.remove(present.astype("uint64"))

    def search(self, query: npt.NDArray[np.float32], count: int) -> tuple[Any, Any]:
        """The `count` nearest chunk keys and their cosine similarities, best first."""
        with self._lock:
            matches = self._index.search(query, min(count, max(self.size, 1)))
        return matches.keys.astype("int64"), 1.0 - matches.distances

    def needs_save(self) -> bool:
        """Whether a quarter of the graph has changed since it was last saved."""
        return self._unsaved * 4 >= max(self.size, 1)

    def save(self, covered_rows: int) -> None:
        """Write the graph, then record which log rows it covers."""
        with self._lock:
            temporary = self.directory / "hnsw.usearch.tmp"
            self._index.save(str(temporary))
            temporary.replace(self.directory / "hnsw.usearch")
            meta = self.directory / "hnsw.json.tmp"
            meta.write_text(json.dumps({"covered_rows": covered_rows}))
            meta.replace(self.directory / "hnsw.json")
            self._unsaved = 0


def forget(directory: Path) -> None:
    """Delete a saved graph (its row positions no longer match the log)."""
    for name in ("hnsw.json", "hnsw.usearch"):
        (directory / name).unlink(missing_ok=True)


def _usearch_index() -> Any:
    """usearch's `Index` class, imported after onnxruntime when that is installed.

    Both wheels use pybind11, whose type registry is shared between extension modules: when usearch
    (2.26.6) creates it first, importing onnxruntime (1.32.0) afterwards dies with a segmentation
    fault. onnxruntime first is fine, so it is imported here, once, before usearch.
    """
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime  # noqa: F401

    from usearch.index import Index

    return Index


def _new_index(dimension: int) -> Any:
    Index = _usearch_index()  # noqa: N806 - the class, imported late
    return Index(
        ndim=dimension,
        metric="ip",
        dtype="f32",
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )
