"""The derived vector index: exact cosine search with numpy over each collection's float32 matrix.

Vectors are stored unit-normalised, so cosine similarity is one matrix-vector product. A collection's
matrix is loaded from SQLite on first use and then kept in step by `apply`, exactly like the full-text
index; it is never a source of truth. numpy comes with the `embeddings` extra; without it vector
search reports why it is unavailable.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion.knowledge._models import ScoredChunk

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["VectorIndex"]

VectorRows = list[tuple[int, int, bytes]]
"""`(chunk key, document key, float32 bytes)` rows."""


@dataclass
class _Matrix:
    chunks: npt.NDArray[np.int64]
    docs: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]


class VectorIndex:
    """Exact nearest-neighbour search per collection, loaded lazily through `loader`."""

    def __init__(
        self,
        root: Path,
        *,
        exact_max_rows: int = 100_000,
        loader: Callable[[int], VectorRows] | None = None,
    ) -> None:
        self.root = root
        self.exact_max_rows = exact_max_rows
        self.loader = loader
        self._matrices: dict[int, _Matrix] = {}
        self._lock = threading.Lock()
        # Only looked for, not imported: numpy costs ~15 MiB and a BM25-only service never needs it.
        if importlib.util.find_spec("numpy") is None:
            self.problem: str | None = (
                "numpy is not installed: install the extra with `pip install 'companion[embeddings]'`"
            )
        else:
            self.problem = None

    def apply(self, collection_key: int, delete_documents: Iterable[int], add: VectorRows) -> None:
        """Drop the rows of `delete_documents` and append `add`, if the collection is loaded."""
        with self._lock:
            matrix = self._matrices.get(collection_key)
            if matrix is None:
                return
            import numpy as np

            keep = ~np.isin(matrix.docs, np.fromiter(delete_documents, dtype=np.int64))
            added = _to_matrix(add, matrix.vectors.shape[1] if matrix.vectors.size else None)
            self._matrices[collection_key] = _Matrix(
                np.concatenate([matrix.chunks[keep], added.chunks]),
                np.concatenate([matrix.docs[keep], added.docs]),
                np.concatenate([matrix.vectors[keep], added.vectors])
                if matrix.vectors.size
                else added.vectors,
            )

    def drop(self, collection_key: int) -> None:
        """Forget a collection's matrix (it reloads on next use)."""
        with self._lock:
            self._matrices.pop(collection_key, None)

    def reset(self) -> None:
        """Forget every matrix."""
        with self._lock:
            self._matrices.clear()

    def search(
        self,
        collection_key: int,
        vector: Sequence[float],
        k: int,
        allowed_chunks: Sequence[int] | None,
    ) -> list[ScoredChunk]:
        """The `k` chunks most similar to the unit `vector` (only `allowed_chunks` when given)."""
        import numpy as np

        matrix = self._matrix(collection_key)
        if matrix.vectors.size == 0 or (allowed_chunks is not None and not allowed_chunks):
            return []
        query = np.asarray(vector, dtype=np.float32)
        scores = matrix.vectors @ query
        if allowed_chunks is not None:
            mask = np.isin(matrix.chunks, np.asarray(allowed_chunks, dtype=np.int64))
            scores = np.where(mask, scores, -np.inf)
        count = min(k, len(scores))
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top])]
        return [
            ScoredChunk(int(matrix.chunks[i]), float(scores[i]))
            for i in top
            if np.isfinite(scores[i])
        ]

    def _matrix(self, collection_key: int) -> _Matrix:
        with self._lock:
            matrix = self._matrices.get(collection_key)
            if matrix is None:
                rows = self.loader(collection_key) if self.loader is not None else []
                matrix = _to_matrix(rows, None)
                self._matrices[collection_key] = matrix
            return matrix


def _to_matrix(rows: VectorRows, dimension: int | None) -> _Matrix:
    import numpy as np

    chunks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    docs = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    if not rows:
        vectors: Any = np.empty((0, dimension or 0), dtype=np.float32)
    else:
        vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
        vectors = vectors.reshape(len(rows), -1)
    return _Matrix(chunks, docs, vectors)
