"""Benchmark rows of the PostgreSQL store, the one several nodes share, next to the embedded store.

- BM25 latency at 100k chunks, searched through a second node that built its index from
  PostgreSQL at start (the corpus and queries of the `search` group, so the embedded row is the
  peer on the same data).
- BM25 relevance of both stores on a judged set made from this project's docs (`_docs_judged.py`).
- How soon a write acknowledged by one node is found through another: by the next search, and by
  the other node's listener alone.

PostgreSQL comes from the settings (`COMPANION_DATABASE_URL`), else the local server; each run works
in a schema of its own, dropped at the end. Without a reachable server the rows are left out, and
`companion bench` says so.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from companion.bench import cases_search
from companion.bench._case import Case, Cycling, Operation, Target
from companion.bench._docs_judged import docs_judged_set
from companion.knowledge import DocumentInput, KnowledgeBase, SqliteStore

if TYPE_CHECKING:
    from companion.knowledge._postgres_store import PostgresStore

__all__ = ["cases", "postgres_problem"]

_GROUP = "scale-out"
_LOCAL_DATABASE_URL = "postgresql://127.0.0.1:5432/test"
_LOAD_BATCH_DOCUMENTS = 2000


def _database_url() -> str:
    from companion.config import load_settings

    configured = load_settings().database_url
    return configured.get_secret_value() if configured is not None else _LOCAL_DATABASE_URL


def postgres_problem() -> str | None:
    """Why the rows cannot run here (None when PostgreSQL answers)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (the `postgres` extra)"
    try:
        with psycopg.connect(_database_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL (COMPANION_DATABASE_URL, else the local server) is unreachable: {exc}"
    return None


class _Schema:
    """A schema of the run's own, and a folder for the nodes' indexes; both removed by `drop`."""

    def __init__(self) -> None:
        import psycopg

        self.dsn = _database_url()
        self.name = f"bench_{uuid.uuid4().hex[:12]}"
        self.root = Path(tempfile.mkdtemp(prefix="companion-bench-scaleout-"))
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')

    def node(self, name: str) -> KnowledgeBase:
        """A knowledge base as one node builds it: no result cache, so every search is real."""
        from companion.knowledge._postgres_store import PostgresStore

        store = PostgresStore(self.dsn, schema=self.name, index_dir=self.root / name)
        return KnowledgeBase(store)

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
        shutil.rmtree(self.root, ignore_errors=True)


class _PostgresCorpus:
    """The `search` group's corpus in PostgreSQL, written by one node, searched through another."""

    def __init__(self, chunks: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.schema = _Schema()
        self.passages, self.queries = cases_search.generate_corpus(chunks)
        self.writer = self.schema.node("writer")
        # A node started after the writes: it builds its whole index from PostgreSQL at start.
        self.reader = self.schema.node("reader")
        try:
            self.loop.run_until_complete(self._load())
            started = time.perf_counter()
            self.loop.run_until_complete(self.reader.start())
            self.build_s = time.perf_counter() - started
        except BaseException:
            self.close()  # a failed setup must not leave its schema behind
            raise

    async def _load(self) -> None:
        await self.writer.start()
        await self.writer.store.create_collection("bench", "corpus", "", None)
        started = time.perf_counter()
        for start in range(0, len(self.passages), _LOAD_BATCH_DOCUMENTS):
            batch = self.passages[start : start + _LOAD_BATCH_DOCUMENTS]
            await self.writer.store.upsert(
                "bench",
                "corpus",
                [
                    cases_search.prepared_passage(i, text, None)
                    for i, text in enumerate(batch, start=start)
                ],
            )
        self.load_s = time.perf_counter() - started

    def search(self) -> Cycling[str]:
        """BM25, k=10 with snippets, through `self.queries` in order (as the embedded peer)."""

        def run(query: str) -> object:
            return self.loop.run_until_complete(
                self.reader.search("bench", "corpus", query, mode="bm25", k=10)
            )

        search = Cycling(self.queries, run)
        search.note = lambda: (  # type: ignore[attr-defined]
            f"{len(self.passages)} chunks written in {self.load_s:.0f} s; the searching node "
            f"built its index from PostgreSQL in {self.build_s:.1f} s"
        )
        search.close = self.close  # type: ignore[attr-defined]  # the runner closes the row's ops
        return search

    def close(self) -> None:
        """Stop both nodes and drop the schema."""
        for kb in (self.reader, self.writer):
            self.loop.run_until_complete(kb.close())
        self.loop.close()
        self.schema.drop()


class _Relevance:
    """BM25 nDCG@10 on the docs' judged set in one store (scored once: it is deterministic)."""

    def __init__(self, kind: str) -> None:
        from companion.knowledge._evaluation import evaluate

        self.kind = kind
        self.root = Path(tempfile.mkdtemp(prefix="companion-bench-relevance-"))
        corpus, queries, qrels = docs_judged_set(self.root / "judged")
        schema = _Schema() if kind == "postgres" else None
        kb = schema.node("a") if schema else KnowledgeBase(SqliteStore(self.root / "kb"))

        async def score() -> tuple[float, int]:
            await kb.start()
            try:
                [found] = await evaluate(kb, corpus, queries, qrels, ["bm25"])
                return found.ndcg_at_10, found.queries
            finally:
                await kb.close()

        try:
            self.ndcg, self.judged = asyncio.run(score())
        finally:
            if schema is not None:
                schema.drop()
            shutil.rmtree(self.root, ignore_errors=True)

    def __call__(self) -> float:
        return self.ndcg

    def note(self) -> str:
        """How many judged queries the figure averages."""
        return f"{self.kind}: {self.judged} judged queries"


class _WriteThenSearch:
    """One node writes a document; how long until another node finds it.

    `by_search`: the other node searches right after the write is acknowledged (the figure is
    that search, which first brings its index up to date). Otherwise: the time until the other
    node's listener has applied the write, with no search at all.
    """

    def __init__(self, by_search: bool) -> None:
        self.by_search = by_search
        self.loop = asyncio.new_event_loop()
        self.schema = _Schema()
        self.writer, self.reader = self.schema.node("writer"), self.schema.node("reader")
        self.count = itertools.count()
        try:
            self.loop.run_until_complete(self._start())
        except BaseException:
            self.close()  # a failed setup must not leave its schema behind
            raise

    async def _start(self) -> None:
        await self.writer.start()
        await self.reader.start()
        await self.writer.create_collection("bench", "fresh")
        # A little collection to search in, so a search does real work.
        passages, _ = cases_search.generate_corpus(2000, seed=5)
        documents = (DocumentInput(text, id=f"base{i}") for i, text in enumerate(passages))
        await self.writer.ingest("bench", "fresh", documents, batch_size=500)
        await self._reader_store().fulltext.wait_listening()

    def _reader_store(self) -> PostgresStore:
        from companion.knowledge._postgres_store import PostgresStore

        store = self.reader.store
        assert isinstance(store, PostgresStore)
        return store

    def __call__(self) -> float:
        return self.loop.run_until_complete(self._once())

    async def _once(self) -> float:
        word = _letters(next(self.count))
        await self.writer.upsert(
            "bench", "fresh", [DocumentInput(f"marker {word} arrives", id=word)]
        )
        acknowledged = time.perf_counter_ns()
        if self.by_search:
            result = await self.reader.search("bench", "fresh", word, mode="bm25", k=1)
            if [hit.document_id for hit in result.results] != [word]:
                raise AssertionError(f"the other node did not find {word!r} at once")
        else:
            store = self._reader_store()
            state = await store.collection_state("bench", "fresh")
            await asyncio.wait_for(
                store.fulltext.wait_for_version(state.key, state.version), timeout=10
            )
        return float(time.perf_counter_ns() - acknowledged)

    def close(self) -> None:
        """Stop both nodes and drop the schema."""
        for kb in (self.reader, self.writer):
            self.loop.run_until_complete(kb.close())
        self.loop.close()
        self.schema.drop()


def _letters(number: int) -> str:
    """A word the analyzer keeps whole and no generated passage contains: `zq` plus letters."""
    digits = "abcdefghij"
    return "zq" + "".join(digits[int(d)] for d in str(number))


def cases(quick: bool = False) -> list[Case]:
    """The rows above; none when PostgreSQL cannot be reached (the reason is printed)."""
    problem = postgres_problem()
    if problem is not None:
        import sys

        print(f"companion bench: scale-out rows skipped: {problem}", file=sys.stderr)
        return []
    chunk_count = cases_search.QUICK_CORPUS_CHUNKS if quick else cases_search.CORPUS_CHUNKS
    chunks = f"{chunk_count // 1000}k chunks"

    def ours() -> Operation:
        return _PostgresCorpus(chunk_count).search()

    def peer() -> Operation:
        return cases_search.embedded_corpus(chunk_count).search("bm25")

    return [
        Case(
            _GROUP,
            f"BM25 search on PostgreSQL, {chunks}, k=10 (with snippets, uncached)",
            ours=ours,
            peer=peer,
            peer_name="the embedded store (SQLite + tantivy), same data and queries",
            target=Target(max_p95_ns=20e6),
            seed_figure="154 / 290 ms (ts_rank_cd, 5k documents)",
        ),
        Case(
            _GROUP,
            "BM25 nDCG@10, PostgreSQL store, judged set from the docs",
            ours=lambda: _Relevance("postgres"),
            peer=lambda: _Relevance("embedded"),
            peer_name="the embedded store, same documents and queries",
            target=Target(max_shortfall=0.01),
            seed_figure="0.213 vs 0.660 (ts_rank_cd)",
            unit="score",
        ),
        Case(
            _GROUP,
            "write on one node, found by the next search on another (PostgreSQL)",
            ours=lambda: _WriteThenSearch(by_search=True),
            reported=True,
        ),
        Case(
            _GROUP,
            "write on one node, applied by another's listener, no search (PostgreSQL)",
            ours=lambda: _WriteThenSearch(by_search=False),
            reported=True,
        ),
    ]
