"""The derived full-text indexes: two tantivy indexes per collection, keyed by the store's row keys.

Nothing here is a source of truth. A collection has
- a documents index: one entry per document, its title and whole text, which ranks documents (a
  document is found by all its words together, wherever its chunks were cut), and
- a chunks index: one entry per chunk (its document's title, then its text), which says where in a
  ranked document to read: its best passages for the query.

Entries hold analyzed text only (the store has the text), the row key as a fast field read back for
hits, and the document key (indexed, so a document's entries can be deleted or a filter's
documents selected).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tantivy

from companion.knowledge._models import ScoredChunk, ScoredDocument
from companion.knowledge._query import TOKENIZER_NAME, text_analyzer

__all__ = [
    "INDEX_FORMAT",
    "INLINE_SEARCH_MAX_CHUNKS",
    "DocumentRow",
    "FullTextIndex",
    "document_rows",
]

# A document's entry: its key, title, text, first chunk's key and number of chunks.
DocumentRow = tuple[int, str | None, str, int, int]

# What the indexes hold; an index of an older format is rebuilt at start.
# 1: the chunk's text. 2: its document's title, then its text. 3: documents whole, beside chunks.
INDEX_FORMAT = 3

# tantivy's minimum writer arena is 15 MB; a per-collection writer does not need more.
WRITER_HEAP_BYTES = 15_000_000

# An unfiltered BM25 search of a collection up to this size runs on the caller's thread: at 100k
# chunks it takes 0.9 ms p50 / 2-3 ms p95 here, and the hop to a worker thread and back added
# 0.1-0.35 ms p50 (more at p95) on this 2-core machine, a third of the search. Larger collections,
# and any search limited to a filter's documents, go to a worker thread so
# the event loop is never held long; tantivy releases the GIL there, so the loop keeps serving.
INLINE_SEARCH_MAX_CHUNKS = 150_000

# Passages are looked for among the ranked documents' chunks, this many per document at a time; a
# document whose passages were all crowded out by another's gets a query of its own.
_PASSAGES_PER_DOCUMENT = 4

_CHUNKS, _DOCUMENTS = "chunks", "documents"


def _schema(kind: str) -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # Term frequencies are enough for BM25; positions would only serve phrase queries.
    builder.add_text_field("text", tokenizer_name=TOKENIZER_NAME, index_option="freq")
    if kind == _CHUNKS:
        builder.add_unsigned_field("chunk", fast=True)
    else:
        # A document of one chunk (most short ones) needs no search for its passage: it is that.
        builder.add_unsigned_field("first_chunk", fast=True)
        builder.add_unsigned_field("chunk_count", fast=True)
    builder.add_unsigned_field("doc", indexed=True, fast=True)
    return builder.build()


def _document_text(title: str | None, text: str) -> str:
    # A text that already opens with its title (as many do) would count the title's words twice.
    return f"{title}\n{text}" if title and not text.startswith(title) else text


class FullTextIndex:
    """BM25 search over the documents of each collection, with the best chunks of each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._schemas = {kind: _schema(kind) for kind in (_CHUNKS, _DOCUMENTS)}
        self._indexes: dict[tuple[int, str], tantivy.Index] = {}
        self._writers: dict[tuple[int, str], tantivy.IndexWriter] = {}
        self._lock = threading.Lock()
        # Commits the documents index while the caller's thread commits the chunks index: each
        # commit ends in an fsync, and the two overlap rather than add up.
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="fulltext-commit")

    def _path(self, collection_key: int, kind: str) -> Path:
        return self.root / (str(collection_key) if kind == _CHUNKS else f"{collection_key}.{kind}")

    def _index(self, collection_key: int, kind: str) -> tantivy.Index:
        index = self._indexes.get((collection_key, kind))
        if index is None:
            path = self._path(collection_key, kind)
            path.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self._schemas[kind], path=str(path))
            index.register_tokenizer(TOKENIZER_NAME, text_analyzer())
            self._indexes[(collection_key, kind)] = index
        return index

    def _writer(self, collection_key: int, kind: str) -> tantivy.IndexWriter:
        writer = self._writers.get((collection_key, kind))
        if writer is None:
            writer = self._index(collection_key, kind).writer(WRITER_HEAP_BYTES, 1)
            self._writers[(collection_key, kind)] = writer
        return writer

    def apply(
        self,
        collection_key: int,
        delete_documents: Iterable[int],
        add_chunks: Iterable[tuple[int, int, str | None, str]],
        add_documents: Iterable[DocumentRow],
        *,
        commit: bool = True,
    ) -> None:
        """Delete every entry of `delete_documents`, add `(chunk, doc, title, text)` chunk rows
        and `(doc, title, text, first chunk, chunk count)` document rows, and commit (unless
        `commit` is false: a build adds page after page, then calls `commit` once).

        Each chunk is indexed with its document's title: a title that reached only the first chunk
        left the others unfindable by the words that name the document.
        """
        doomed = list(delete_documents)
        chunk_rows, document_rows = list(add_chunks), list(add_documents)
        with self._lock:
            touched: list[str] = []
            if doomed or document_rows:
                documents = self._writer(collection_key, _DOCUMENTS)
                if doomed:
                    documents.delete_documents_by_query(self._owned_by(_DOCUMENTS, doomed))
                for doc_key, title, text, first_chunk, chunk_count in document_rows:
                    entry = tantivy.Document()
                    entry.add_text("text", _document_text(title, text))
                    entry.add_unsigned("doc", doc_key)
                    entry.add_unsigned("first_chunk", first_chunk)
                    entry.add_unsigned("chunk_count", chunk_count)
                    documents.add_document(entry)
                touched.append(_DOCUMENTS)
            if doomed or chunk_rows:
                chunks = self._writer(collection_key, _CHUNKS)
                if doomed:
                    chunks.delete_documents_by_query(self._owned_by(_CHUNKS, doomed))
                for chunk_key, doc_key, title, text in chunk_rows:
                    entry = tantivy.Document()
                    entry.add_text("text", f"{title}\n{text}" if title else text)
                    entry.add_unsigned("chunk", chunk_key)
                    entry.add_unsigned("doc", doc_key)
                    chunks.add_document(entry)
                touched.append(_CHUNKS)
            if commit:
                self._commit(collection_key, touched)

    def commit(self, collection_key: int) -> None:
        """Commit what `apply(..., commit=False)` added to the collection's indexes."""
        with self._lock:
            self._commit(
                collection_key,
                [k for k in (_DOCUMENTS, _CHUNKS) if (collection_key, k) in self._writers],
            )

    def _commit(self, collection_key: int, kinds: list[str]) -> None:
        # Each commit ends in an fsync: the documents' runs on a thread beside the chunks'.
        committed = None
        if _DOCUMENTS in kinds:
            committed = self._committer.submit(self._writers[(collection_key, _DOCUMENTS)].commit)
        if _CHUNKS in kinds:
            self._writers[(collection_key, _CHUNKS)].commit()
            self._index(collection_key, _CHUNKS).reload()
        if committed is not None:
            committed.result()
            self._index(collection_key, _DOCUMENTS).reload()

    def _owned_by(self, kind: str, doc_keys: list[int]) -> tantivy.Query:
        # Not `delete_documents_by_term`: tantivy-py turns a Python int into a signed term, which
        # never matches this unsigned field, so it deleted nothing. A query built against the
        # schema gets the type right.
        return tantivy.Query.term_set_query(self._schemas[kind], "doc", doc_keys)

    def drop(self, collection_key: int) -> None:
        """Remove a collection's indexes entirely."""
        with self._lock:
            self._close_one(collection_key)
            for kind in (_CHUNKS, _DOCUMENTS):
                shutil.rmtree(self._path(collection_key, kind), ignore_errors=True)

    def reset(self) -> None:
        """Remove every index (before a rebuild from the source of truth)."""
        with self._lock:
            for key in {key for key, _ in self._indexes}:
                self._close_one(key)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True, exist_ok=True)

    def chunk_count(self, collection_key: int) -> int:
        """How many chunks the collection's index holds (0 when it has none yet)."""
        index = self._existing(collection_key, _CHUNKS)
        return 0 if index is None else index.searcher().num_docs

    def _existing(self, collection_key: int, kind: str) -> tantivy.Index | None:
        if (collection_key, kind) not in self._indexes and not self._path(
            collection_key, kind
        ).exists():
            return None
        return self._index(collection_key, kind)

    def _query(
        self, kind: str, terms: Sequence[str], doc_keys: Sequence[int] | None
    ) -> tantivy.Query:
        """An OR of `terms`, only among the entries of `doc_keys` when given."""
        schema = self._schemas[kind]
        should = [
            (tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", term, "freq"))
            for term in terms
        ]
        query = should[0][1] if len(should) == 1 else tantivy.Query.boolean_query(should)
        if doc_keys is None:
            return query
        allowed = self._owned_by(kind, list(doc_keys))
        return tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, query), (tantivy.Occur.Must, allowed)]
        )

    def _passage_query(self, terms: Sequence[str], doc_keys: Sequence[int]) -> tantivy.Query:
        """The chunks of `doc_keys`, scored by `terms`.

        The documents' chunks drive the search and the terms only score them: a few entries are
        visited, where `Must(OR of terms)` walked every posting of every term (as long as the
        ranking query itself, measured). The filter scores 0, so the order is BM25's and a chunk
        matching none of the terms scores exactly 0.
        """
        schema = self._schemas[_CHUNKS]
        owned = tantivy.Query.const_score_query(self._owned_by(_CHUNKS, list(doc_keys)), 0.0)
        return tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, owned),
                *(
                    (tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", term, "freq"))
                    for term in terms
                ),
            ]
        )

    def search(
        self,
        collection_key: int,
        terms: Sequence[str],
        k: int,
        doc_keys: Sequence[int] | None,
        passages: int | None = None,
    ) -> list[ScoredDocument]:
        """The best `k` documents for `terms` (OR), only from `doc_keys` when given, each with
        its best chunks: one when `passages` (default `k`) documents match, else up to
        `passages` (so that a search of a collection of one long document still finds them)."""
        if not terms or (doc_keys is not None and not doc_keys):
            return []
        documents = self._existing(collection_key, _DOCUMENTS)
        chunks = self._existing(collection_key, _CHUNKS)
        if documents is None or chunks is None:
            return []
        searcher = documents.searcher()
        hits = searcher.search(self._query(_DOCUMENTS, terms, doc_keys), k, count=False).hits
        if not hits:
            return []
        addresses = [address for _, address in hits]
        keys = searcher.fast_field_values("doc", addresses)
        firsts = searcher.fast_field_values("first_chunk", addresses)
        counts = searcher.fast_field_values("chunk_count", addresses)
        # Passages enough for the hits the result shows: a second one of any document is only
        # shown when fewer documents than that match.
        shown = k if passages is None else passages
        per_document = 1 if len(hits) >= shown else shown
        ranked: list[tuple[int, float]] = []
        found: dict[int, list[ScoredChunk]] = {}
        for (score, _), key, first, count in zip(hits, keys, firsts, counts, strict=True):
            if key is None or first is None or count is None:
                continue
            ranked.append((int(key), float(score)))
            if count == 1:
                found[int(key)] = [ScoredChunk(int(first), float(score))]
        wanted = [key for key, _ in ranked if key not in found]
        if wanted:
            found.update(self._passages(chunks, terms, wanted, per_document))
        return [ScoredDocument(key, score, tuple(found.get(key, ()))) for key, score in ranked]

    def _passages(
        self, index: tantivy.Index, terms: Sequence[str], doc_keys: list[int], per_document: int
    ) -> dict[int, list[ScoredChunk]]:
        """Up to `per_document` best chunks of each of `doc_keys`, best first."""
        searcher = index.searcher()
        found: dict[int, list[ScoredChunk]] = {}
        wanted = doc_keys
        limit = len(doc_keys) * max(per_document, _PASSAGES_PER_DOCUMENT)
        while wanted:
            query = self._passage_query(terms, wanted)
            hits = searcher.search(query, limit, count=False).hits
            addresses = [address for _, address in hits]
            chunk_keys = searcher.fast_field_values("chunk", addresses)
            owners = searcher.fast_field_values("doc", addresses)
            for (score, _), chunk, owner in zip(hits, chunk_keys, owners, strict=True):
                if chunk is None or owner is None:
                    continue
                best = found.setdefault(int(owner), [])
                # A further passage must match the query: a chunk that matches none of its terms
                # (a lone heading, the next page) is no passage of it, though its document is.
                if len(best) < per_document and (not best or score > 0.0):
                    best.append(ScoredChunk(int(chunk), float(score)))
            # A document with many matching chunks can fill the limit alone; the others that got
            # no passage ask again by themselves (rare, and each such query is small).
            wanted = [key for key in wanted if key not in found] if len(hits) == limit else []
            limit = len(wanted) * _PASSAGES_PER_DOCUMENT
        return found

    def close(self) -> None:
        """Drop the writers (releasing their lock files) and readers."""
        with self._lock:
            for key in {key for key, _ in self._indexes}:
                self._close_one(key)

    def _close_one(self, collection_key: int) -> None:
        for kind in (_CHUNKS, _DOCUMENTS):
            writer = self._writers.pop((collection_key, kind), None)
            if writer is not None:
                writer.wait_merging_threads()
            self._indexes.pop((collection_key, kind), None)


def document_rows(
    documents: Iterable[tuple[int, str | None, str]],
    chunks: Sequence[tuple[int, int, str | None, str]],
) -> list[DocumentRow]:
    """`documents`' entries, with their first chunk and chunk count read from `chunks` (all the
    chunk rows of those documents)."""
    first: dict[int, int] = {}
    count: dict[int, int] = {}
    for chunk_key, doc_key, _, _ in chunks:
        first[doc_key] = min(first.get(doc_key, chunk_key), chunk_key)
        count[doc_key] = count.get(doc_key, 0) + 1
    return [
        (doc_key, title, text, first.get(doc_key, 0), count.get(doc_key, 0))
        for doc_key, title, text in documents
    ]
