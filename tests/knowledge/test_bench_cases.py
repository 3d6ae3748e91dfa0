"""The search benchmark's corpus and operations, on a small corpus (the 100k one is for the bench)."""

from __future__ import annotations

from companion.bench import load_cases
from companion.bench.cases_search import _Corpus, generate_corpus


def test_corpus_is_deterministic() -> None:
    assert generate_corpus(20) == generate_corpus(20)
    passages, queries = generate_corpus(20)
    assert len(passages) == 20
    assert all(40 <= len(p.split()) <= 80 for p in passages)
    assert len(queries) == 200


def test_every_operation_runs_on_a_small_corpus() -> None:
    corpus = _Corpus(chunks=300)
    try:
        for mode in ("bm25", "vector", "hybrid"):
            result = corpus.search(mode)()
            assert result.results  # type: ignore[attr-defined]
        assert corpus.raw_tantivy()()
        corpus.raw_fts5()()
        vectors = corpus.vector_bench
        assert vectors.graph._collections[1].graph is not None
        assert vectors.recall >= 0.95
        assert len(vectors.graph_search()()) == 10  # type: ignore[arg-type]
        assert "recall@10" in vectors.graph_search().note()
        assert len(vectors.exact_search()()) == 10  # type: ignore[arg-type]
        assert corpus.reopen_vector_files()()
        assert len(corpus.load_vectors_from_sqlite()()) == 300 * 384  # type: ignore[arg-type]
    finally:
        corpus.close()


def test_the_search_group_is_registered() -> None:
    names = [case.name for case in load_cases(["search"])]
    assert any(name.startswith("BM25 search, 100k chunks") for name in names)
    assert any(name.startswith("hybrid search") for name in names)
