"""Several nodes on one PostgreSQL: each node's BM25 index follows every write, and ranks as the
embedded store does."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from companion.cache import TieredCache
from companion.knowledge import DocumentInput, KnowledgeBase, SearchHit, SqliteStore
from companion.knowledge._errors import SearchTimeout
from companion.knowledge._postgres_store import PostgresStore

pytestmark = pytest.mark.postgres

DOCS_DIR = Path(__file__).parents[2] / "docs"

NodeFactory = Callable[[str], PostgresStore]


@pytest.fixture
async def nodes(database_url: str, pg_schema: str, tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Builds stores on the test's schema, one index directory per node name; closes them all."""
    made: list[PostgresStore] = []

    def node(name: str) -> PostgresStore:
        store = PostgresStore(
            database_url, schema=pg_schema, max_connections=4, index_dir=tmp_path / name
        )
        made.append(store)
        return store

    yield node
    for store in made:
        await store.close()


async def _kb(store: PostgresStore) -> KnowledgeBase:
    kb = KnowledgeBase(store)  # no cache: each search reaches the store

    await kb.start()
    return kb


async def _ids(kb: KnowledgeBase, query: str) -> list[str]:
    result = await kb.search("t", "c", query, mode="bm25", k=20, with_snippets=False)
    return [hit.document_id for hit in result.results]


async def test_a_write_through_one_node_is_found_through_another_at_once(
    nodes: NodeFactory,
) -> None:
    a, b = await _kb(nodes("a")), await _kb(nodes("b"))
    await a.create_collection("t", "c")
    await a.upsert("t", "c", [DocumentInput("the heron waits in the reeds", id="heron")])
    assert await _ids(b, "heron") == ["heron"]  # the very next search, no waiting

    await a.upsert("t", "c", [DocumentInput("the kingfisher dives", id="heron")])
    assert await _ids(b, "heron") == []
    assert await _ids(b, "kingfisher") == ["heron"]

    await b.delete_document("t", "c", "heron")
    assert await _ids(a, "kingfisher") == []


async def test_a_cached_result_is_not_served_after_another_nodes_write(
    nodes: NodeFactory,
) -> None:
    """Each node has its own cache and hears of the other's writes only later (pub/sub, never
    delivered here): a result cached before the write must not answer after it."""
    a = KnowledgeBase(nodes("a"), cache=TieredCache())
    b = KnowledgeBase(nodes("b"), cache=TieredCache())
    for kb in (a, b):
        await kb.start()
    await a.create_collection("t", "c")
    before = await b.search("t", "c", "heron", mode="bm25")
    assert before.results == []
    assert (await b.search("t", "c", "heron", mode="bm25")).cached
    await a.upsert("t", "c", [DocumentInput("the heron waits", id="heron")])
    after = await b.search("t", "c", "heron", mode="bm25")
    assert [hit.document_id for hit in after.results] == ["heron"]
    assert not after.cached
    assert (await b.search("t", "c", "heron", mode="bm25")).cached  # cached again, anew


async def test_the_listener_applies_writes_before_any_search(
    nodes: NodeFactory, database_url: str, pg_schema: str
) -> None:
    store_b = nodes("b")
    a, b = await _kb(nodes("a")), await _kb(store_b)
    await asyncio.wait_for(store_b.fulltext.wait_listening(), timeout=10)
    await a.create_collection("t", "c")
    await a.upsert("t", "c", [DocumentInput("an otter in the river", id="otter")])
    key, version = _key_version(database_url, pg_schema)
    # Node b never searched: only its listener can have brought its index to the new version.
    await asyncio.wait_for(store_b.fulltext.wait_for_version(key, version), timeout=10)
    assert store_b.fulltext.applied_version(key) == version
    assert await _ids(b, "otter") == ["otter"]


async def test_a_restarted_node_applies_only_what_it_missed(
    nodes: NodeFactory, database_url: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = await _kb(nodes("a"))
    await a.create_collection("t", "c")
    await a.upsert("t", "c", [DocumentInput(f"stone number {i}", id=f"s{i}") for i in range(30)])
    b = await _kb(nodes("b"))
    assert len(await _ids(b, "stone")) == 20
    await b.close()

    await a.upsert("t", "c", [DocumentInput("a pebble while b was away", id="pebble")])
    await a.delete_document("t", "c", "s0")
    restarted = nodes("b")  # the same index directory as before
    caplog.set_level(logging.INFO, "companion.knowledge")
    caplog.clear()
    b = await _kb(restarted)
    assert "building the BM25 index" not in caplog.text
    key, version = _key_version(database_url, pg_schema)
    assert restarted.fulltext.applied_version(key) == version
    assert await _ids(b, "pebble") == ["pebble"]
    assert "s0" not in await _ids(b, "stone number 0")

    # An index lost with its disk is built again from PostgreSQL.
    await b.close()
    for path in _index_dirs(restarted):
        shutil.rmtree(path)
    caplog.clear()
    b = await _kb(nodes("b"))
    assert "building the BM25 index" in caplog.text
    assert await _ids(b, "pebble") == ["pebble"]


async def test_concurrent_writers_on_two_nodes_lose_no_document(nodes: NodeFactory) -> None:
    a, b = await _kb(nodes("a")), await _kb(nodes("b"))
    await a.create_collection("t", "c")

    async def write(kb: KnowledgeBase, node: str, i: int) -> None:
        await kb.upsert("t", "c", [DocumentInput(f"lantern {node} {i}", id=f"{node}{i}")])

    await asyncio.gather(
        *(write(a, "a", i) for i in range(15)), *(write(b, "b", i) for i in range(15))
    )
    for kb in (a, b):
        result = await kb.search("t", "c", "lantern", mode="bm25", k=100, with_snippets=False)
        assert sorted(hit.document_id for hit in result.results) == sorted(
            [f"a{i}" for i in range(15)] + [f"b{i}" for i in range(15)]
        )


async def test_a_deleted_collection_leaves_no_index_behind(
    nodes: NodeFactory, database_url: str, pg_schema: str
) -> None:
    store_b = nodes("b")
    a, b = await _kb(nodes("a")), await _kb(store_b)
    await a.create_collection("t", "c")
    await a.upsert("t", "c", [DocumentInput("a moth at the window", id="moth")])
    assert await _ids(b, "moth") == ["moth"]
    key, _ = _key_version(database_url, pg_schema)
    await a.delete_collection("t", "c")
    await b.create_collection("t", "c")  # a new collection of the same name: a new key
    assert await _ids(b, "moth") == []
    await store_b.fulltext.catch_up_all()
    assert store_b.fulltext.applied_version(key) == -1


async def test_filters_limit_the_derived_index_to_matching_documents(
    nodes: NodeFactory,
) -> None:
    a, b = await _kb(nodes("a")), await _kb(nodes("b"))
    await a.create_collection("t", "c")
    await a.upsert(
        "t",
        "c",
        [
            DocumentInput("salt marsh birds", id="m1", metadata={"site": "north"}),
            DocumentInput("salt marsh plants", id="m2", metadata={"site": "south"}),
        ],
    )
    result = await b.search("t", "c", "salt marsh", mode="bm25", filter={"site": "south"})
    assert [hit.document_id for hit in result.results] == ["m2"]


def _above(hits: Sequence[SearchHit], last: float) -> dict[str, float]:
    """Each hit scoring above `last` (beyond rounding), by document id."""
    return {hit.document_id: hit.score for hit in hits if hit.score > last * (1 + 1e-5)}


async def test_postgres_ranks_exactly_as_the_embedded_store(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    """The same documents and queries give the same ranking and scores in both stores."""
    documents = _docs_corpus()
    embedded = KnowledgeBase(SqliteStore(tmp_path / "embedded"))
    postgres = await _kb(nodes("a"))
    await embedded.start()
    try:
        for kb in (embedded, postgres):
            await kb.create_collection("t", "c")
            await kb.ingest("t", "c", iter(documents), batch_size=64)
        queries = [
            "sandbox seccomp filter",
            "redis cache invalidation",
            "session idle timeout",
            "bm25 hybrid search",
            "prometheus metrics percentiles",
            "api key revoked",
            "tool batch parallel",
            "python javascript runtime",
        ]
        for query in queries:
            want = await embedded.search("t", "c", query, mode="bm25", k=10, with_snippets=False)
            got = await postgres.search("t", "c", query, mode="bm25", k=10, with_snippets=False)
            assert want.results, query
            assert [h.score for h in got.results] == pytest.approx(
                [h.score for h in want.results], rel=1e-5
            )
            # Documents of equal score may come in either order (each index keeps its own
            # insertion order), and a tie at the 10th place may keep either document.
            last = want.results[-1].score
            above = _above(want.results, last)
            assert _above(got.results, last) == pytest.approx(above, rel=1e-5), query
    finally:
        await embedded.close()


def _docs_corpus() -> list[DocumentInput]:
    """The project's own docs, a document per section: real prose, in many chunks."""
    documents: list[DocumentInput] = []
    for path in sorted(DOCS_DIR.glob("*.md")):
        for number, section in enumerate(re.split(r"\n(?=#+ )", path.read_text())):
            if section.strip():
                title = section.splitlines()[0].lstrip("# ").strip()
                documents.append(
                    DocumentInput(section, id=f"{path.stem}-{number}", title=title or None)
                )
    assert len(documents) > 50
    return documents


def _key_version(database_url: str, schema: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            f'SELECT key, version FROM "{schema}".kb_collections WHERE tenant = %s AND name = %s',
            ("t", "c"),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _index_dirs(store: PostgresStore) -> list[Path]:
    return list(store.fulltext.root.iterdir())


async def test_a_database_restored_to_an_earlier_state_rebuilds_the_index(
    nodes: NodeFactory, database_url: str, pg_schema: str
) -> None:
    import psycopg

    store_b = nodes("b")
    a, b = await _kb(nodes("a")), await _kb(store_b)
    await a.create_collection("t", "c")
    for word in ("alpha", "beta", "gamma"):
        await a.upsert("t", "c", [DocumentInput(f"{word} note", id=word)])
    assert await _ids(b, "note") != []  # node b now holds version 3
    # What a restore to version 1 looks like: later documents, changes and the version gone.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute("DELETE FROM kb_documents WHERE id IN ('beta', 'gamma')")
        conn.execute("DELETE FROM kb_changes WHERE version > 1")
        conn.execute("UPDATE kb_collections SET version = 1")
    await a.upsert("t", "c", [DocumentInput("delta note", id="delta")])  # version 2 again
    await store_b.fulltext.catch_up_all()  # as after the listener's reconnect
    assert sorted(await _ids(b, "note")) == ["alpha", "delta"]


async def test_a_recreated_collection_is_never_answered_from_the_old_ones_cache(
    nodes: NodeFactory,
) -> None:
    a = KnowledgeBase(nodes("a"), cache=TieredCache())
    b = KnowledgeBase(nodes("b"), cache=TieredCache())
    for kb in (a, b):
        await kb.start()
    await a.create_collection("t", "c")
    await a.upsert("t", "c", [DocumentInput("an old heron", id="old-heron")])
    assert [h.document_id for h in (await b.search("t", "c", "heron")).results] == ["old-heron"]
    await a.delete_collection("t", "c")
    await a.create_collection("t", "c")
    await a.upsert("t", "c", [DocumentInput("a new heron", id="new-heron")])
    assert [h.document_id for h in (await b.search("t", "c", "heron")).results] == ["new-heron"]


async def test_processes_sharing_an_index_directory_each_hold_a_slot(
    database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    """The workers of one node share its data directory; tantivy allows one writer per index."""
    first = KnowledgeBase(PostgresStore(database_url, schema=pg_schema, index_dir=tmp_path))
    second = KnowledgeBase(PostgresStore(database_url, schema=pg_schema, index_dir=tmp_path))
    for kb in (first, second):
        await kb.start()
    try:
        await first.create_collection("t", "c")
        await first.upsert("t", "c", [DocumentInput("a shared heron", id="heron")])
        assert await _ids(second, "heron") == ["heron"]
        assert await _ids(first, "heron") == ["heron"]
        assert sorted(_slots(tmp_path)) == ["slot-0", "slot-1"]
    finally:
        for kb in (first, second):
            await kb.close()
    # A restarted process takes a free slot back, with what it had indexed.
    again = PostgresStore(database_url, schema=pg_schema, index_dir=tmp_path)
    await again.start()
    try:
        assert again.fulltext.applied_version((await again.collection_state("t", "c")).key) >= 1
    finally:
        await again.close()


async def test_a_search_waiting_on_a_long_catch_up_times_out_and_the_catch_up_goes_on(
    nodes: NodeFactory, database_url: str, pg_schema: str
) -> None:
    # No listener on node b: only its searches catch it up, so nothing races the lock below.
    store_b = PostgresStore(database_url, schema=pg_schema, follow=False)
    a, b = await _kb(nodes("a")), await _kb(store_b)
    try:
        await a.create_collection("t", "c")
        await a.upsert("t", "c", [DocumentInput("a slow heron", id="heron")])
        assert await _ids(b, "heron") == ["heron"]
        await a.upsert("t", "c", [DocumentInput("a slower heron", id="heron2")])
        later = await store_b.collection_state("t", "c")
        async with store_b.fulltext._lock(later.key):  # as a catch-up in progress holds it
            with pytest.raises(SearchTimeout, match="catching up"):
                await store_b.fulltext.ensure_current_within(later, timeout_ms=50)
        # The catch-up the search started went on without it.
        await asyncio.wait_for(store_b.fulltext.wait_for_version(later.key, later.version), 10)
        assert sorted(await _ids(b, "heron")) == ["heron", "heron2"]
    finally:
        await b.close()


def _slots(index_dir: Path) -> list[str]:
    [database] = index_dir.iterdir()
    return [slot.name for slot in database.iterdir()]
