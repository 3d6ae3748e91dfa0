"""Benchmark rows of retrieval quality: nDCG@10 on a judged set made from the project's docs.

Ours is the embedded knowledge base (chunks, the title in each, documents ranked by their best
chunk), BM25 and, when the MiniLM model is exported, hybrid. The peer is what the issue names as
the bar: a plain tantivy index of the same documents whole, with tantivy's English stemmer, the
same OR query. Both score the same queries against the same judgements, once each (the figure is
deterministic).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from companion.bench._case import Case, Target
from companion.bench._docs_judged import docs_judged_set
from companion.knowledge._evaluation import evaluate, load_qrels, ndcg_at_k, read_jsonl

__all__ = ["cases"]

_GROUP = "relevance"


class _Ours:
    """nDCG@10 of the knowledge base in one mode, scored once."""

    def __init__(self, mode: str) -> None:
        from companion.config import load_settings
        from companion.knowledge import KnowledgeBase, SqliteStore, load_embedder

        root = Path(tempfile.mkdtemp(prefix="companion-bench-relevance-"))
        try:
            corpus, queries, qrels = docs_judged_set(root / "judged")
            embedder = load_embedder(load_settings()) if mode != "bm25" else None
            kb = KnowledgeBase(SqliteStore(root / "kb"), embedder)

            async def score() -> tuple[float, int]:
                await kb.start()
                try:
                    [found] = await evaluate(kb, corpus, queries, qrels, [mode])  # type: ignore[list-item]
                    return found.ndcg_at_10, found.queries
                finally:
                    await kb.close()

            self.ndcg, self.judged = asyncio.run(score())
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def __call__(self) -> float:
        return self.ndcg

    def note(self) -> str:
        """How many judged queries the figure averages."""
        return f"{self.judged} judged queries"


class _WholeDocuments:
    """nDCG@10 of plain tantivy over the same documents whole (title and text in one field)."""

    def __init__(self) -> None:
        import tantivy

        root = Path(tempfile.mkdtemp(prefix="companion-bench-relevance-peer-"))
        try:
            corpus, queries, qrels_path = docs_judged_set(root / "judged")
            schema = (
                tantivy.SchemaBuilder()
                .add_text_field("id", stored=True, tokenizer_name="raw")
                .add_text_field("text", tokenizer_name="en_stem")
                .build()
            )
            index = tantivy.Index(schema)
            writer = index.writer(50_000_000, 1)
            for row in read_jsonl(corpus):
                text = f"{row.get('title') or ''}\n{row.get('text') or ''}"
                writer.add_document(tantivy.Document(id=str(row["_id"]), text=text))
            writer.commit()
            index.reload()
            qrels = load_qrels(qrels_path)
            texts = {str(row["_id"]): str(row["text"]) for row in read_jsonl(queries)}
            judged = [qid for qid in qrels if qid in texts]
            searcher = index.searcher()
            total = 0.0
            for qid in judged:
                words = "".join(c if c.isalnum() else " " for c in texts[qid]).split()
                query = index.parse_query(" OR ".join(dict.fromkeys(words)), ["text"])
                hits = searcher.search(query, 100, count=False).hits
                ranked = [searcher.doc(address)["id"][0] for _, address in hits]
                total += ndcg_at_k(ranked, qrels[qid], 10)
            self.ndcg = total / max(1, len(judged))
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def __call__(self) -> float:
        return self.ndcg


def _model_exported() -> bool:
    from companion.config import load_settings
    from companion.knowledge._embedding_loader import model_dir

    return (model_dir(load_settings()) / "manifest.json").exists()


def cases() -> list[Case]:
    """BM25 (and hybrid, with the model) against plain tantivy over whole documents."""
    peer_name = "plain tantivy over the same documents whole, same queries"
    rows = [
        Case(
            _GROUP,
            "BM25 nDCG@10, judged set from the docs",
            ours=lambda: _Ours("bm25"),
            peer=_WholeDocuments,
            peer_name=peer_name,
            target=Target(max_shortfall=0.0),
            unit="score",
        )
    ]
    if _model_exported():
        rows.append(
            Case(
                _GROUP,
                "hybrid nDCG@10, judged set from the docs",
                ours=lambda: _Ours("hybrid"),
                peer=_WholeDocuments,
                peer_name=peer_name,
                target=Target(max_shortfall=0.0),
                unit="score",
            )
        )
    return rows
