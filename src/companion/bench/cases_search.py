"""Benchmark rows of `companion.knowledge` on a 100k-chunk corpus, next to raw tantivy and raw FTS5.

The corpus is generated deterministically (seeded): Zipf-distributed words from a synthetic
vocabulary, one chunk per document, so term statistics look like text. It is built once per process
in a temporary folder. Vectors for the corpus are seeded random unit vectors (search cost does not
depend on what the vectors mean); queries in vector and hybrid rows use precomputed vectors so the
rows exclude query embedding, which has its own row when the MiniLM model is exported.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from companion.bench._case import Case, Cycling, Operation, Target
from companion.bench._vector_rows import VectorBench
from companion.knowledge import EmbeddingInfo, KnowledgeBase, SqliteStore
from companion.knowledge._models import PreparedChunk, PreparedDocument
from companion.knowledge._vectors import VectorIndex

__all__ = [
    "CORPUS_CHUNKS",
    "QUICK_CORPUS_CHUNKS",
    "cases",
    "embedded_corpus",
    "generate_corpus",
    "prepared_passage",
]

_GROUP = "search"
CORPUS_CHUNKS = 100_000
_DIMENSION = 384
_QUERIES = 200
_INFO = EmbeddingInfo("bench/seeded-random", "1", _DIMENSION)


def generate_corpus(chunks: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """`chunks` passages of 40-80 Zipf-drawn words, and `_QUERIES` 2-6 word queries, deterministic."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    syllables = "ka lo mi ne ta ru si po ve da qu ex an or ti fe".split()
    vocabulary = list(
        dict.fromkeys(
            "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(40_000)
        )
    )
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    cumulative = list(itertools.accumulate(weights))
    passages = [
        " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(40, 80)))
        for _ in range(chunks)
    ]
    # Queries are drawn from the same word distribution as the text, so like real questions they
    # mix very frequent words (long posting lists: the expensive case for BM25) with rarer ones.
    queries = [
        " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(2, 6)))
        for _ in range(_QUERIES)
    ]
    return passages, queries


def prepared_passage(number: int, text: str, vector: bytes | None) -> PreparedDocument:
    """Passage `number` as the stores take it: one document of one chunk, `n` in its metadata."""
    chunk = PreparedChunk(0, text, 0, len(text), vector)
    return PreparedDocument(
        f"d{number}", text, None, {"n": number % 10}, None, str(number), [chunk]
    )


def _unit_vectors(count: int, seed: int) -> Any:
    """Unit vectors shaped like sentence embeddings: a 32-dimensional latent space, projected.

    Isotropic random 384-d vectors would have no neighbourhood structure at all (the worst case
    for any graph index, unlike real embeddings); a shared low-dimensional latent space keeps
    the HNSW recall figure meaningful. The exact rows cost the same either way.
    """
    import numpy as np

    basis = np.random.default_rng(5).standard_normal((32, _DIMENSION), dtype=np.float32)
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((count, 32), dtype=np.float32) @ basis
    matrix += 0.5 * rng.standard_normal((count, _DIMENSION), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


class _FixedEmbedder:
    """Returns precomputed query vectors: the search rows exclude embedding time."""

    def __init__(self, vectors: Any) -> None:
        self._vectors = vectors
        self._next = itertools.cycle(range(len(vectors)))
        self.info = _INFO

    def embed(self, texts: Sequence[str]) -> Any:
        return [self._vectors[next(self._next)] for _ in texts]


class _Corpus:
    """The 100k-chunk knowledge base and its raw peers, built once."""

    def __init__(self, chunks: int = CORPUS_CHUNKS) -> None:
        import tantivy

        self.loop = asyncio.new_event_loop()
        self.root = Path(tempfile.mkdtemp(prefix="companion-bench-search-"))
        self.passages, self.queries = generate_corpus(chunks)
        self.vectors = _unit_vectors(chunks, seed=11)
        self.query_vectors = _unit_vectors(_QUERIES, seed=13)
        # No result cache (`cache=None`): the queries cycle, and every search must do the full work.
        self.kb = KnowledgeBase(SqliteStore(self.root / "kb"), _FixedEmbedder(self.query_vectors))
        self.loop.run_until_complete(self._load(self.vectors))
        if self.kb.embedding_queue is not None:  # vectors come preloaded: nothing to embed later
            self.loop.run_until_complete(self.kb.embedding_queue.close())
        # Raw tantivy: the same texts, its built-in English analyzer, an OR of the query's words.
        # Stored, so the peer returns the passages as a search does (ours returns their text).
        schema = (
            tantivy.SchemaBuilder()
            .add_text_field("text", stored=True, tokenizer_name="en_stem")
            .build()
        )
        self.raw_index = tantivy.Index(schema, path=str(self._mkdir("raw-tantivy")))
        writer = self.raw_index.writer(100_000_000, 1)
        for passage in self.passages:
            writer.add_document(tantivy.Document(text=passage))
        writer.commit()
        writer.wait_merging_threads()
        self.raw_index.reload()
        # Raw SQLite FTS5 with its BM25, the same OR queries.
        self.fts = sqlite3.connect(str(self.root / "fts.sqlite3"))
        self.fts.execute("CREATE VIRTUAL TABLE passages USING fts5(text, tokenize='porter')")
        self.fts.executemany(
            "INSERT INTO passages (text) VALUES (?)", ((p,) for p in self.passages)
        )
        self.fts.commit()

    def close(self) -> None:
        """Close the knowledge base, the loop and the FTS5 database, and delete the files."""
        import shutil

        self.loop.run_until_complete(self.kb.close())
        self.loop.close()
        self.fts.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _mkdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path

    async def _load(self, vectors: Any) -> None:
        await self.kb.start()
        await self.kb.store.create_collection("bench", "corpus", "", _INFO)
        started = time.perf_counter()
        batch = 5000
        for start in range(0, len(self.passages), batch):
            await self.kb.store.upsert(
                "bench",
                "corpus",
                [
                    prepared_passage(i, text, vectors[i].tobytes())
                    for i, text in enumerate(self.passages[start : start + batch], start=start)
                ],
            )
        self.load_s = time.perf_counter() - started

    def search(self, mode: str) -> Cycling[str]:
        """Our search, k=10, through `self.queries` in order (as the raw peers)."""

        def run(query: str) -> object:
            return self.loop.run_until_complete(
                self.kb.search("bench", "corpus", query, mode=mode, k=10)
            )

        return Cycling(self.queries, run)

    @functools.cached_property
    def vector_bench(self) -> VectorBench:
        """Exact and HNSW indexes over the corpus vectors (built on first use)."""
        return VectorBench(self.root / "vector-bench", self.vectors, self.query_vectors)

    def reopen_vector_files(self) -> Operation:
        """A restarted process opening the collection's vector files, checked against SQLite."""
        store = self.kb.store
        assert isinstance(store, SqliteStore)
        store._vectors.prepare(1)  # the files exist once the collection has been searched

        def rebuilt(key: int) -> list[tuple[int, int, bytes]]:
            raise AssertionError("the vector files should have been reused, not rebuilt")

        def run() -> object:
            index = VectorIndex(store._vectors.root, loader=rebuilt, checker=store._check_vectors)
            index.prepare(1)
            return index

        return run

    def load_vectors_from_sqlite(self) -> Operation:
        """What a restart cost before the vector files: every BLOB read back out of SQLite."""
        import numpy as np

        store = self.kb.store
        assert isinstance(store, SqliteStore)

        def run() -> object:
            rows = store._load_vectors(1)
            return np.frombuffer(b"".join(row[2] for row in rows), dtype=np.float32)

        return run

    def raw_tantivy(self) -> Cycling[str]:
        """The best 10 passages for an OR of the query's distinct words, through `self.queries`.

        The same work as our search asks of tantivy: each distinct term once (as ours, and as
        tantivy's parser would anyway), no hit count (ours passes `count=False`; counting cost
        ~14 % of this query); and, as a search must, the 10 passages themselves (ours reads
        their text to return it; a peer returning bare addresses skipped that).
        """
        index = self.raw_index

        def run(query: str) -> object:
            words = dict.fromkeys(query.split())
            parsed = index.parse_query(" OR ".join(words), ["text"])
            searcher = index.searcher()
            hits = searcher.search(parsed, 10, count=False).hits
            return [(score, searcher.doc(address)["text"][0]) for score, address in hits]

        return Cycling(self.queries, run)

    def raw_fts5(self) -> Cycling[str]:
        """FTS5's BM25 top 10 for the same OR of distinct words, through `self.queries` in order."""

        def run(query: str) -> object:
            match = " OR ".join(f'"{w}"' for w in dict.fromkeys(query.split()))
            return self.fts.execute(
                "SELECT rowid FROM passages WHERE passages MATCH ? ORDER BY bm25(passages) LIMIT 10",
                (match,),
            ).fetchall()

        return Cycling(self.queries, run)


QUICK_CORPUS_CHUNKS = 20_000  # `--quick` is a smoke run: the rows say which size they measured
_corpus_chunks = CORPUS_CHUNKS


@functools.cache
def embedded_corpus(chunks: int) -> _Corpus:
    """The embedded store over `chunks` generated passages, built once per size (the scale-out
    group searches the same one as its peer)."""
    return _Corpus(chunks)


def _corpus() -> _Corpus:
    return embedded_corpus(_corpus_chunks)


def _ingest(with_embeddings: bool) -> Operation:
    """Ingest 64 fresh one-chunk documents per operation (a new collection each time)."""
    from companion.config import load_settings
    from companion.knowledge import load_embedder

    embedder = load_embedder(load_settings()) if with_embeddings else None
    return _Ingest(embedder)


class _Ingest:
    """64 one-chunk documents into a new collection per call (64 chunks: embedded inline)."""

    def __init__(self, embedder: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.root = Path(tempfile.mkdtemp(prefix="companion-bench-ingest-"))
        self.kb = KnowledgeBase(SqliteStore(self.root), embedder)
        self.loop.run_until_complete(self.kb.start())
        self.passages, _ = generate_corpus(64, seed=3)
        self.counter = itertools.count()

    def __call__(self) -> object:
        name = f"c{next(self.counter)}"
        docs = [{"id": str(i), "text": p} for i, p in enumerate(self.passages)]
        self.loop.run_until_complete(self.kb.create_collection("bench", name))
        return self.loop.run_until_complete(self.kb.upsert("bench", name, docs))

    def close(self) -> None:
        """Stop the knowledge base (and its embedding queue) and delete the files."""
        import shutil

        self.loop.run_until_complete(self.kb.close())
        self.loop.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _query_embedding() -> Operation:
    from companion.config import load_settings
    from companion.errors import FeatureUnavailable
    from companion.knowledge import load_embedder

    embedder = load_embedder(load_settings(knowledge_embedder="minilm"))
    if embedder is None:
        raise FeatureUnavailable("the MiniLM model is not exported")
    _, queries = generate_corpus(1)
    cycle = itertools.cycle(queries)
    return lambda: embedder.embed([next(cycle)])


def _embedding_throughput(side: str) -> Operation:
    """Our embedder as the service loads it (`fp32` or `int8`), or the plain onnxruntime peer."""
    from companion.bench._embedding_rows import PlainOnnx, Throughput, docs_chunks, slices
    from companion.config import load_settings
    from companion.errors import FeatureUnavailable
    from companion.knowledge import load_embedder
    from companion.knowledge._embedding_loader import model_dir

    inputs = slices(docs_chunks())
    if side == "peer":
        return Throughput("peer", inputs, PlainOnnx(model_dir(load_settings())).embed)
    settings = load_settings(knowledge_embedder="minilm", knowledge_embedding_precision=side)
    embedder = load_embedder(settings)
    if embedder is None:
        raise FeatureUnavailable("the MiniLM model is not exported")
    return Throughput(f"ours {side}", inputs, embedder.embed)


def _int8_exported() -> bool:
    from companion.config import load_settings
    from companion.knowledge._embedding_loader import model_dir

    return (model_dir(load_settings()) / "model.int8.onnx").exists()


def _lazy(make: Callable[[_Corpus], Operation]) -> Callable[[], Operation]:
    return lambda: make(_corpus())


def _model_exported() -> bool:
    from companion.config import load_settings
    from companion.knowledge._embedding_loader import model_dir

    return (model_dir(load_settings()) / "manifest.json").exists()


def cases(quick: bool = False) -> list[Case]:
    """The search rows of SPEC section 6, plus ingest throughput and query embedding.

    `quick` builds a 20k-chunk corpus instead of 100k (building is most of the group's time).
    """
    global _corpus_chunks  # noqa: PLW0603 - the corpus is built lazily, once, at the chosen size
    _corpus_chunks = QUICK_CORPUS_CHUNKS if quick else CORPUS_CHUNKS
    chunks = f"{_corpus_chunks // 1000}k chunks"
    model_rows = [
        Case(_GROUP, "MiniLM query embedding (onnxruntime)", ours=_query_embedding),
        Case(_GROUP, "ingest 64 one-chunk documents, with MiniLM", ours=lambda: _ingest(True)),
        Case(
            _GROUP,
            "embedding ingest, MiniLM, 64-chunk calls over the docs' chunks (30-256 tokens)",
            ours=lambda: _embedding_throughput("fp32"),
            peer=lambda: _embedding_throughput("peer"),
            peer_name="plain onnxruntime, same model.onnx and tokenizer, fixed unsorted batches of 32",
            target=Target(max_ratio=0.5),
        ),
    ]
    if _int8_exported():
        model_rows.append(
            Case(
                _GROUP,
                "embedding ingest, MiniLM int8 (quantized export), same chunks",
                ours=lambda: _embedding_throughput("int8"),
                peer=lambda: _embedding_throughput("fp32"),
                peer_name="ours, fp32 model",
            )
        )
    return [
        Case(
            _GROUP,
            f"BM25 search, {chunks}, k=10 (with snippets, uncached)",
            ours=_lazy(lambda c: c.search("bm25")),
            peer=_lazy(lambda c: c.raw_tantivy()),
            peer_name="raw tantivy OR query returning the 10 passages, same data",
            target=Target(max_ratio=1.5, max_p95_ns=10e6),
            seed_figure="< 30 ms",
        ),
        Case(
            _GROUP,
            f"raw SQLite FTS5 OR query, {chunks}",
            ours=_lazy(lambda c: c.raw_fts5()),
            peer=_lazy(lambda c: c.raw_tantivy()),
            peer_name="raw tantivy OR query, same data",
        ),
        Case(
            _GROUP,
            f"vector search (exact numpy, memory-mapped), {chunks} x {_DIMENSION}",
            ours=_lazy(lambda c: c.search("vector")),
            target=Target(max_median_ns=20e6),
        ),
        Case(
            _GROUP,
            f"vector index alone, HNSW (usearch), {chunks} x {_DIMENSION}, k=10",
            ours=_lazy(lambda c: c.vector_bench.graph_search()),
            peer=_lazy(lambda c: c.vector_bench.exact_search()),
            peer_name="exact numpy over the memory-mapped matrix, same vectors",
            # Exact search grows with the corpus, the graph barely: 0.5 holds even at --quick's 20k.
            target=Target(max_ratio=0.5),
        ),
        Case(
            _GROUP,
            f"vector files reopened after a restart, {chunks} x {_DIMENSION}",
            ours=_lazy(lambda c: c.reopen_vector_files()),
            peer=_lazy(lambda c: c.load_vectors_from_sqlite()),
            peer_name="every vector read back from SQLite (the former first use)",
            target=Target(max_ratio=0.5),
        ),
        Case(
            _GROUP,
            f"hybrid search (convex fusion of the document rankings), {chunks}, query embedding "
            "excluded",
            ours=_lazy(lambda c: c.search("hybrid")),
            target=Target(max_p95_ns=20e6),
            seed_figure="< 30 ms",
        ),
        Case(_GROUP, "ingest 64 one-chunk documents, BM25 only", ours=lambda: _ingest(False)),
        *(model_rows if _model_exported() else []),
    ]
