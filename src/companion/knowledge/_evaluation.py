"""Retrieval quality on BEIR-format data: nDCG@10 and recall@100 for each search mode.

BEIR's layout: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`) and a qrels
TSV (`query-id`, `corpus-id`, `score`, with a header line). A search ranks documents (its hits are
their passages, in document order: each document counts once, where it first appears), and nDCG uses
linear gains with a log2 discount, as BEIR's evaluator does.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from companion.knowledge._errors import InvalidDocument
from companion.knowledge._knowledge_base import KnowledgeBase
from companion.knowledge._models import DocumentInput, SearchMode

__all__ = ["ModeScores", "evaluate", "load_qrels", "ndcg_at_k", "read_jsonl", "recall_at_k"]

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class ModeScores:
    """Mean metrics of one search mode over the judged queries."""

    mode: str
    ndcg_at_10: float
    recall_at_100: float
    queries: int


def ndcg_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of `ranked` document ids, cut at `k`."""
    gain = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal_gains = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal_gains))
    return gain / ideal if ideal > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    """The share of relevant documents found in the first `k`."""
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def read_jsonl(path: Path) -> Iterator[dict[str, object]]:
    """The objects of a JSON-lines file (blank lines skipped)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                row = orjson.loads(line)
                if not isinstance(row, dict):
                    raise InvalidDocument(f"{path}:{number}: not a JSON object")
                yield row


def load_qrels(path: Path) -> Qrels:
    """`{query id: {document id: grade}}` from a BEIR qrels TSV."""
    qrels: Qrels = {}
    with path.open(newline="") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def _documents(corpus: Path) -> Iterator[DocumentInput]:
    for row in read_jsonl(corpus):
        title = str(row.get("title") or "") or None
        text = str(row.get("text") or "")
        body = f"{title}\n\n{text}" if title else text
        yield DocumentInput(text=body or "(empty)", id=str(row["_id"]), title=title)


async def evaluate(
    kb: KnowledgeBase,
    corpus: Path,
    queries: Path,
    qrels_path: Path,
    modes: Sequence[SearchMode],
    *,
    tenant: str = "eval",
    collection: str = "beir",
    on_progress: Callable[[str], None] | None = None,
) -> list[ModeScores]:
    """Ingest `corpus` into a fresh collection and score every judged query in each mode."""
    qrels = load_qrels(qrels_path)
    texts = {str(row["_id"]): str(row["text"]) for row in read_jsonl(queries)}
    judged = [qid for qid in qrels if qid in texts]
    await kb.create_collection(tenant, collection)
    await kb.ingest(tenant, collection, _documents(corpus), batch_size=256)
    await kb.wait_for_embeddings(tenant, collection)  # score complete rankings only
    scores: list[ModeScores] = []
    for mode in modes:
        ndcg = recall = 0.0
        for qid in judged:
            result = await kb.search(
                tenant, collection, texts[qid], mode=mode, k=100, with_snippets=False
            )
            ranked = list(dict.fromkeys(hit.document_id for hit in result.results))
            ndcg += ndcg_at_k(ranked, qrels[qid], 10)
            recall += recall_at_k(ranked, qrels[qid], 100)
        count = max(1, len(judged))
        scores.append(ModeScores(mode, ndcg / count, recall / count, len(judged)))
        if on_progress is not None:
            on_progress(mode)
    return scores
