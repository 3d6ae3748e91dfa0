"""The search rows' peers do the same work as ours on the same inputs (on a small corpus)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from companion.bench.cases_search import _Corpus
from companion.knowledge import SqliteStore


class _SearcherSpy:
    """A tantivy searcher that records the arguments of each `search` call."""

    def __init__(self, searcher: Any, calls: list[dict[str, Any]]) -> None:
        self._searcher, self._calls = searcher, calls

    def search(self, query: Any, limit: int = 10, **options: Any) -> Any:
        self._calls.append({"limit": limit, **options})
        return self._searcher.search(query, limit, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._searcher, name)


class _IndexSpy:
    """A tantivy index whose searchers are `_SearcherSpy`s."""

    def __init__(self, index: Any, calls: list[dict[str, Any]]) -> None:
        self._index, self._calls = index, calls

    def searcher(self) -> _SearcherSpy:
        return _SearcherSpy(self._index.searcher(), self._calls)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


@pytest.fixture(scope="module")
def corpus() -> Iterator[_Corpus]:
    built = _Corpus(chunks=300)
    try:
        yield built
    finally:
        built.close()


def test_each_pair_of_sides_cycles_the_same_inputs(corpus: _Corpus) -> None:
    # `Cycling` operations: the runner rewinds both sides after calibration, so sample i of ours
    # and of the peer run the same inputs in the same order (tests/bench/test_runner.py).
    ours, tantivy, fts5 = corpus.search("bm25"), corpus.raw_tantivy(), corpus.raw_fts5()
    assert ours.inputs == tantivy.inputs == fts5.inputs == tuple(corpus.queries)
    graph, exact = corpus.vector_bench.graph_search(), corpus.vector_bench.exact_search()
    assert np.array_equal(np.stack(graph.inputs), corpus.query_vectors)
    assert np.array_equal(np.stack(exact.inputs), corpus.query_vectors)


def test_the_tantivy_peer_finds_what_ours_finds_with_the_same_k_and_no_count(
    corpus: _Corpus,
) -> None:
    ours_calls: list[dict[str, Any]] = []
    peer_calls: list[dict[str, Any]] = []
    store = corpus.kb.store
    assert isinstance(store, SqliteStore)
    fulltext: dict[int, Any] = store._fulltext._indexes
    real_ours = dict(fulltext)
    real_peer = corpus.raw_index
    fulltext.update({key: _IndexSpy(index, ours_calls) for key, index in real_ours.items()})
    corpus.raw_index = _IndexSpy(real_peer, peer_calls)  # type: ignore[assignment]
    try:
        ours, peer = corpus.search("bm25"), corpus.raw_tantivy()
        repeated = 0
        for query in corpus.queries[:40]:
            repeated += len(set(query.split())) < len(query.split())
            hits = ours().results  # type: ignore[attr-defined]
            peer_hits: list[tuple[float, Any]] = peer()  # type: ignore[assignment]
            # The same query over the same texts: the same BM25 scores, best first (ours rounds
            # its scores to 6 decimals).
            assert [hit.score for hit in hits] == pytest.approx(
                [score for score, _ in peer_hits], abs=1e-5
            ), query
    finally:
        fulltext.update(real_ours)
        corpus.raw_index = real_peer
    assert repeated  # queries that repeat a word were among them, scored alike too
    assert ours_calls == peer_calls == [{"limit": 10, "count": False}] * 40
