"""The derived vector index: exact numpy search up to `exact_max_rows` chunks, HNSW beyond.

Vectors are stored unit-normalised, so cosine similarity is one matrix-vector product. Each
collection's vectors live in a memory-mapped `VectorLog` under `root/<collection key>/`, kept in
step by `apply` from the store's change log exactly like the full-text index. The first use of a
collection in a process checks the files against SQLite (count and key sum of the chunk vectors);
missing, truncated or stale files are rebuilt from SQLite, which stays the only source of truth.
Past `exact_max_rows` live rows a collection is searched through an `HnswGraph` (usearch). numpy
and usearch come with the `embeddings` extra; without numpy vector search reports why it is
unavailable, without usearch large collections stay exact (slower, never wrong).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion.config import setting_default
from companion.knowledge._models import ScoredChunk
from companion.knowledge._vector_log import Snapshot, VectorLog, VectorRows

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from companion.knowledge._hnsw import HnswGraph

__all__ = ["VectorIndex", "VectorRows"]

_log = logging.getLogger("companion.knowledge")
_EXTRA = "`pip install 'companion[embeddings]'`"


@dataclass
class _Collection:
    log: VectorLog
    graph: HnswGraph | None = None
    checked: bool = False
    building: bool = False
    warned: bool = False


class VectorIndex:
    """Nearest-neighbour search per collection over rebuildable files under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        exact_max_rows: int = setting_default("knowledge_exact_max_chunks"),
        loader: Callable[[int], VectorRows] | None = None,
        checker: Callable[[int], tuple[int, int]] | None = None,
    ) -> None:
        self.root = root
        self.exact_max_rows = exact_max_rows
        self.loader = loader
        self.checker = checker
        self._collections: dict[int, _Collection] = {}
        self._lock = threading.RLock()
        self._builds: list[threading.Thread] = []
        self._stop = threading.Event()
        # Only looked for, not imported: numpy costs ~15 MiB and a BM25-only service never needs it.
        self.problem: str | None = None
        if importlib.util.find_spec("numpy") is None:
            self.problem = "numpy is not installed: install the extra with " + _EXTRA
        self._has_usearch = importlib.util.find_spec("usearch") is not None

    def prepare(self, collection_key: int) -> None:
        """Open (or rebuild from SQLite) a collection's files; the store calls it under its lock."""
        with self._lock:
            state = self._collections.get(collection_key) or self._open(collection_key)
            if state is None or not state.checked:
                state = self._verified(collection_key, state)
            large = state.log.alive > self.exact_max_rows
            if large and state.graph is None and not state.building and self._has_usearch:
                self._start_graph(collection_key, state)
            elif large and not self._has_usearch and not state.warned:
                state.warned = True  # once per collection and process, not once per search
                _log.warning("usearch is not installed: collection %d stays exact", collection_key)
            elif not large and state.graph is not None:
                from companion.knowledge._hnsw import forget

                state.graph = None
                forget(state.log.directory)

    def _start_graph(self, collection_key: int, state: _Collection) -> None:
        """Load the saved graph, or build one in a thread while searches stay exact meanwhile."""
        from companion.knowledge._hnsw import HnswGraph

        state.graph = HnswGraph.open(state.log)
        if state.graph is not None:
            return
        _log.info("building the HNSW graph of collection %d in the background", collection_key)
        state.building = True
        log = state.log
        args = (collection_key, state, log.snapshot(), log.generation)
        thread = threading.Thread(target=self._build, args=args, name="companion-hnsw-build")
        self._builds.append(thread)
        thread.start()

    def _build(
        self, collection_key: int, state: _Collection, rows: Snapshot, generation: int
    ) -> None:
        from companion.knowledge._hnsw import HnswGraph, forget

        try:
            log = state.log
            if HnswGraph.build(log.directory, log.dimension, rows, self._stop):
                with self._lock:
                    current = self._collections.get(collection_key) is state
                    if current and log.generation == generation:
                        state.graph = HnswGraph.open(log)  # adds what was written meanwhile
                    else:  # compacted or dropped meanwhile: the saved row positions are void
                        forget(log.directory)
        except Exception:
            _log.exception("building the HNSW graph of collection %d failed", collection_key)
        finally:
            state.building = False

    def wait_for_graphs(self, timeout_s: float | None = None) -> None:
        """Wait for the HNSW graphs being built (tests and benchmarks)."""
        for thread in list(self._builds):
            thread.join(timeout_s)
        self._builds = [thread for thread in self._builds if thread.is_alive()]

    def apply(self, collection_key: int, delete_documents: Iterable[int], add: VectorRows) -> None:
        """Tombstone the rows of `delete_documents` and append `add`, if the files exist."""
        import numpy as np

        with self._lock:
            state = self._collections.get(collection_key) or self._open(collection_key)
            if state is None:
                return  # built from SQLite, this change included, on first use
            log = state.log
            if add and len(add[0][2]) != 4 * log.dimension:
                self.drop(collection_key)  # re-embedded with another model: rebuild on next use
                return
            removed = log.tombstone(delete_documents)
            first = log.rows
            log.append(add)
            if state.graph is not None:
                state.graph.remove(np.setdiff1d(removed, log.chunks[first:]))
                state.graph.add_rows(log.snapshot(), first + np.flatnonzero(~log.dead[first:]))
            if log.needs_compaction():
                log.compact()
                if state.graph is not None:
                    state.graph.save(log.rows)
                else:
                    from companion.knowledge._hnsw import forget

                    forget(log.directory)
            elif state.graph is not None and state.graph.needs_save():
                state.graph.save(log.rows)

    def drop(self, collection_key: int) -> None:
        """Delete a collection's files (they are rebuilt from SQLite on next use)."""
        with self._lock:
            self._collections.pop(collection_key, None)
            shutil.rmtree(self.root / str(collection_key), ignore_errors=True)

    def reset(self) -> None:
        """Delete every collection's files."""
        with self._lock:
            self._collections.clear()
            shutil.rmtree(self.root, ignore_errors=True)

    def close(self) -> None:
        """Stop graph builds and save the HNSW graphs that changed since their last save."""
        self._stop.set()
        self.wait_for_graphs()
        self._stop.clear()
        with self._lock:
            for state in self._collections.values():
                if state.graph is not None and state.graph.dirty:
                    state.graph.save(state.log.rows)
            self._collections.clear()

    def search(
        self,
        collection_key: int,
        vector: Sequence[float],
        k: int,
        allowed_chunks: Sequence[int] | None,
    ) -> list[ScoredChunk]:
        """The `k` chunks most similar to the unit `vector` (only `allowed_chunks` if given).

        The store calls `prepare` first; a collection dropped in between answers nothing.
        """
        import numpy as np

        with self._lock:
            state = self._collections.get(collection_key)
            if state is None:
                # Dropped since the store's `prepare` (deleted or re-embedded meanwhile); loading
                # here would take the store's lock under this one, the reverse of the write path.
                return []
            snapshot, graph = state.log.snapshot(), state.graph
        query = np.asarray(vector, dtype=np.float32)
        if allowed_chunks is not None and not allowed_chunks:
            return []
        if graph is None or (
            allowed_chunks is not None and len(allowed_chunks) <= self.exact_max_rows
        ):
            return _exact(snapshot, query, k, allowed_chunks)
        if allowed_chunks is None:
            keys, scores = graph.search(query, k)
            return [ScoredChunk(int(c), float(s)) for c, s in zip(keys, scores, strict=True)]
        return _filtered_graph_search(graph, snapshot, query, k, allowed_chunks)

    def _open(self, collection_key: int) -> _Collection | None:
        log = VectorLog.open(self.root / str(collection_key))
        if log is None:
            return None
        state = _Collection(log)
        self._collections[collection_key] = state
        return state

    def _verified(self, collection_key: int, state: _Collection | None) -> _Collection:
        if state is not None and self.checker is None:
            state.checked = True
            return state
        if state is not None and self.checker is not None:
            live = state.log.chunks[~state.log.dead]
            if self.checker(collection_key) == (len(live), int(live.sum())):
                state.checked = True
                return state
            _log.warning("vector files of collection %d are stale: rebuilding", collection_key)
        rows = self.loader(collection_key) if self.loader is not None else []
        dimension = len(rows[0][2]) // 4 if rows else 0
        log = VectorLog.create(self.root / str(collection_key), dimension, rows)
        state = _Collection(log, checked=True)
        self._collections[collection_key] = state
        return state


def _exact(
    snapshot: Snapshot,
    query: npt.NDArray[np.float32],
    k: int,
    allowed_chunks: Sequence[int] | None,
) -> list[ScoredChunk]:
    import numpy as np

    if not len(snapshot.chunks):
        return []
    live = ~snapshot.dead
    if allowed_chunks is not None:
        live &= np.isin(snapshot.chunks, np.asarray(allowed_chunks, dtype=np.int64))
    if live.all():
        rows: Any = slice(None)
        scores = snapshot.vectors @ query
    else:
        rows = np.flatnonzero(live)
        scores = snapshot.vectors[rows] @ query if len(rows) else np.empty(0, np.float32)
    chunks = snapshot.chunks[rows]
    count = min(k, len(scores))
    if count == 0:
        return []
    top = np.argpartition(-scores, count - 1)[:count]
    top = top[np.argsort(-scores[top])]
    return [ScoredChunk(int(chunks[i]), float(scores[i])) for i in top]


def _filtered_graph_search(
    graph: HnswGraph,
    snapshot: Snapshot,
    query: npt.NDArray[np.float32],
    k: int,
    allowed_chunks: Sequence[int],
) -> list[ScoredChunk]:
    """Widen the graph search until `k` allowed chunks come back; exact if the filter is too rare."""
    import numpy as np

    allowed = np.asarray(allowed_chunks, dtype=np.int64)
    count = 4 * k
    while count <= 64 * k and count < graph.size:
        keys, scores = graph.search(query, count)
        keep = np.isin(keys, allowed)
        if keep.sum() >= k:
            return [
                ScoredChunk(int(c), float(s))
                for c, s in zip(keys[keep][:k], scores[keep][:k], strict=True)
            ]
        count *= 4
    return _exact(snapshot, query, k, allowed_chunks)
