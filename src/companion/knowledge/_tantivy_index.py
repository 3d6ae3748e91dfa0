"""The derived full-text index: one tantivy index per collection, keyed by SQLite row keys.

Nothing here is a source of truth. Each tantivy document is one chunk: its analyzed text (not
stored; SQLite has it), its chunk key (a fast field, read back for hits) and its document key
(indexed, so a document's chunks can be deleted or a filter's documents selected).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import tantivy

from companion.knowledge._models import ScoredChunk
from companion.knowledge._query import TOKENIZER_NAME, text_analyzer

__all__ = ["INDEX_FORMAT", "INLINE_SEARCH_MAX_CHUNKS", "FullTextIndex"]

# What a chunk's index entry holds; an index of an older format is rebuilt at start.
# 1: the chunk's text. 2: its document's title, then its text.
INDEX_FORMAT = 2

# tantivy's minimum writer arena is 15 MB; a per-collection writer does not need more.
WRITER_HEAP_BYTES = 15_000_000

# An unfiltered BM25 search of a collection up to this size runs on the caller's thread: at 100k
# chunks it takes 0.9 ms p50 / 2-3 ms p95 here, and the hop to a worker thread and back added
# 0.1-0.35 ms p50 (more at p95) on this 2-core machine, a third of the search. Larger collections,
# and any search limited to a filter's documents, go to a worker thread so
# the event loop is never held long; tantivy releases the GIL there, so the loop keeps serving.
INLINE_SEARCH_MAX_CHUNKS = 150_000


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # Term frequencies are enough for BM25; positions would only serve phrase queries.
    builder.add_text_field("text", tokenizer_name=TOKENIZER_NAME, index_option="freq")
    builder.add_unsigned_field("chunk", fast=True)
    builder.add_unsigned_field("doc", indexed=True)
    return builder.build()


class FullTextIndex:
    """BM25 search over the chunks of each collection."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._schema = _schema()
        self._indexes: dict[int, tantivy.Index] = {}
        self._writers: dict[int, tantivy.IndexWriter] = {}
        self._lock = threading.Lock()

    def _index(self, collection_key: int) -> tantivy.Index:
        index = self._indexes.get(collection_key)
        if index is None:
            path = self.root / str(collection_key)
            path.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self._schema, path=str(path))
            index.register_tokenizer(TOKENIZER_NAME, text_analyzer())
            self._indexes[collection_key] = index
        return index

    def _writer(self, collection_key: int) -> tantivy.IndexWriter:
        writer = self._writers.get(collection_key)
        if writer is None:
            writer = self._index(collection_key).writer(WRITER_HEAP_BYTES, 1)
            self._writers[collection_key] = writer
        return writer

    def apply(
        self,
        collection_key: int,
        delete_documents: Iterable[int],
        add_chunks: Iterable[tuple[int, int, str | None, str]],
    ) -> None:
        """Delete the chunks of `delete_documents`, add `(chunk, doc, title, text)` rows, and
        commit. Each chunk is indexed with its document's title: a title that reached only the
        first chunk left the others unfindable by the words that name the document."""
        doomed = list(delete_documents)
        with self._lock:
            writer = self._writer(collection_key)
            if doomed:
                # Not `delete_documents_by_term`: tantivy-py turns a Python int into a signed term,
                # which never matches this unsigned field, so it deleted nothing. A query built
                # against the schema gets the type right.
                writer.delete_documents_by_query(
                    tantivy.Query.term_set_query(self._schema, "doc", doomed)
                )
            for chunk_key, doc_key, title, text in add_chunks:
                document = tantivy.Document()
                document.add_text("text", f"{title}\n{text}" if title else text)
                document.add_unsigned("chunk", chunk_key)
                document.add_unsigned("doc", doc_key)
                writer.add_document(document)
            writer.commit()
            self._index(collection_key).reload()

    def drop(self, collection_key: int) -> None:
        """Remove a collection's index entirely."""
        with self._lock:
            self._close_one(collection_key)
            shutil.rmtree(self.root / str(collection_key), ignore_errors=True)

    def reset(self) -> None:
        """Remove every index (before a rebuild from the source of truth)."""
        with self._lock:
            for key in list(self._indexes):
                self._close_one(key)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True, exist_ok=True)

    def chunk_count(self, collection_key: int) -> int:
        """How many chunks the collection's index holds (0 when it has none yet)."""
        index = self._existing(collection_key)
        return 0 if index is None else index.searcher().num_docs

    def _existing(self, collection_key: int) -> tantivy.Index | None:
        if collection_key not in self._indexes and not (self.root / str(collection_key)).exists():
            return None
        return self._index(collection_key)

    def search(
        self, collection_key: int, terms: Sequence[str], k: int, doc_keys: Sequence[int] | None
    ) -> list[ScoredChunk]:
        """The best `k` chunks for `terms` (OR), only from `doc_keys` when given."""
        if not terms or (doc_keys is not None and not doc_keys):
            return []
        index = self._existing(collection_key)
        if index is None:
            return []
        schema = self._schema
        should = [
            (tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", term, "freq"))
            for term in terms
        ]
        query = should[0][1] if len(should) == 1 else tantivy.Query.boolean_query(should)
        if doc_keys is not None:
            allowed = tantivy.Query.term_set_query(schema, "doc", list(doc_keys))
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, query), (tantivy.Occur.Must, allowed)]
            )
        searcher = index.searcher()
        hits = searcher.search(query, k, count=False).hits
        if not hits:
            return []
        keys = searcher.fast_field_values("chunk", [address for _, address in hits])
        return [
            ScoredChunk(int(key), float(score))
            for (score, _), key in zip(hits, keys, strict=True)
            if key is not None
        ]

    def close(self) -> None:
        """Drop the writers (releasing their lock files) and readers."""
        with self._lock:
            for key in list(self._indexes):
                self._close_one(key)

    def _close_one(self, collection_key: int) -> None:
        writer = self._writers.pop(collection_key, None)
        if writer is not None:
            writer.wait_merging_threads()
        self._indexes.pop(collection_key, None)
