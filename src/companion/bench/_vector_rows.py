"""Vector-index operations for the search rows: exact numpy against the HNSW graph.

Both indexes hold the same seeded unit vectors in files of their own, so the rows time the index
alone (no SQLite fetch, no snippets); the KB-level rows in `cases_search` include those.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from companion.bench._case import Cycling
from companion.knowledge._vectors import VectorIndex

__all__ = ["VectorBench"]

_KEY = 1


class _Search(Cycling[Any]):
    """One k=10 query per call, through the query vectors in order (the same for both indexes)."""

    def __init__(self, index: VectorIndex, queries: Any) -> None:
        super().__init__(list(queries), self._search)
        self._index = index

    def _search(self, query: Any) -> object:
        return self._index.search(_KEY, query, 10, None)


class _NotedSearch(_Search):
    """A search whose row carries a note (the runner prints it next to the figures)."""

    def __init__(self, index: VectorIndex, queries: Any, note: str) -> None:
        super().__init__(index, queries)
        self._note = note

    def note(self) -> str:
        """What the runner prints next to the row."""
        return self._note


class VectorBench:
    """An exact index and an HNSW index over `vectors`, built once under `root`."""

    def __init__(self, root: Path, vectors: Any, queries: Any) -> None:
        self.rows = [(i + 1, i + 1, vectors[i].tobytes()) for i in range(len(vectors))]
        self.queries = queries
        self.exact = VectorIndex(root / "exact", exact_max_rows=len(vectors), loader=self._load)
        self.exact.prepare(_KEY)
        limit = min(1000, len(vectors) // 2)  # past the limit: the graph answers
        self.graph = VectorIndex(root / "hnsw", exact_max_rows=limit, loader=self._load)
        started = time.perf_counter()
        self.graph.prepare(_KEY)  # starts the build in a thread
        self.graph.wait_for_graphs()
        self.build_s = time.perf_counter() - started
        self.recall = self._recall()

    def _load(self, key: int) -> list[tuple[int, int, bytes]]:
        return self.rows

    def _recall(self) -> float:
        found = 0
        for query in self.queries:
            truth = {hit.key for hit in self.exact.search(_KEY, query, 10, None)}
            found += len(truth & {hit.key for hit in self.graph.search(_KEY, query, 10, None)})
        return found / (10 * len(self.queries))

    def exact_search(self) -> _Search:
        """Exact numpy search over the memory-mapped matrix."""
        return _Search(self.exact, self.queries)

    def graph_search(self) -> _NotedSearch:
        """HNSW search, noting its recall@10 against exact search and the graph's build time."""
        note = f"recall@10 {self.recall:.3f} vs exact; graph built in {self.build_s:.1f} s"
        return _NotedSearch(self.graph, self.queries, note)
