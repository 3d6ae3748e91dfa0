"""Retrieval metrics, and the evaluation harness on a small BEIR-format set written for these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.knowledge import Embedder, KnowledgeBase, SqliteStore
from companion.knowledge._evaluation import evaluate, load_qrels, ndcg_at_k, recall_at_k

DATA = Path(__file__).parent / "data" / "tiny_beir"


def test_ndcg_and_recall_by_hand() -> None:
    relevant = {"a": 2, "b": 1, "z": 0}
    assert ndcg_at_k(["a", "b"], relevant) == pytest.approx(1.0)
    swapped = (1 + 2 / 1.5849625007211563) / (2 + 1 / 1.5849625007211563)
    assert ndcg_at_k(["b", "a"], relevant) == pytest.approx(swapped)
    assert ndcg_at_k(["x", "y"], relevant) == 0.0
    assert recall_at_k(["a", "x"], relevant) == 0.5
    assert recall_at_k(["x"], {}) == 0.0


def test_qrels_skip_the_header() -> None:
    qrels = load_qrels(DATA / "qrels.tsv")
    assert qrels["q1"] == {"d01": 2, "d02": 1}
    assert len(qrels) == 8


async def test_bm25_scores_on_the_tiny_set(tmp_path: Path) -> None:
    kb = KnowledgeBase(SqliteStore(tmp_path))
    await kb.start()
    try:
        [scores] = await evaluate(
            kb, DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels.tsv", ["bm25"]
        )
    finally:
        await kb.close()
    assert scores.queries == 8
    assert 0.3 < scores.ndcg_at_10 <= 1.0
    assert scores.recall_at_100 > 0.5


async def test_vector_and_hybrid_beat_bm25_on_paraphrases(tmp_path: Path, minilm: Embedder) -> None:
    kb = KnowledgeBase(SqliteStore(tmp_path), minilm)
    await kb.start()
    try:
        bm25, vector, hybrid = await evaluate(
            kb,
            DATA / "corpus.jsonl",
            DATA / "queries.jsonl",
            DATA / "qrels.tsv",
            ["bm25", "vector", "hybrid"],
        )
    finally:
        await kb.close()
    # The queries are paraphrases: meaning beats shared words here.
    assert vector.ndcg_at_10 > bm25.ndcg_at_10
    assert hybrid.ndcg_at_10 > bm25.ndcg_at_10
    assert vector.recall_at_100 == 1.0
