"""The embedded store serves one process: a second one is refused by name, never half-served.

Before the lock, a second process (another uvicorn worker, `companion ingest` beside a running
service) got `LockBusy` from tantivy, logged "index update failed", and acknowledged writes that
stayed unsearchable until a later write or a restart.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.knowledge import KnowledgeBase, SqliteStore, StoreInUse
from tests.cli.test_cli import _run

HANG_S = 30.0  # a bound for a wait that ends as soon as the other process lets go

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from companion.knowledge import SqliteStore

    async def main() -> None:
        store = SqliteStore(Path(sys.argv[1]))
        await store.start()
        print("open", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the test closes our stdin
        await store.close()

    asyncio.run(main())
    """
)


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real second process with the store under `tmp_path / "knowledge"` open."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "knowledge")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "open\n"
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


def _release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=60) == 0


async def test_a_second_process_is_refused_naming_the_first(
    tmp_path: Path, other_process: subprocess.Popen[str]
) -> None:
    kb = KnowledgeBase(SqliteStore(tmp_path / "knowledge", lock_wait_s=0))
    with pytest.raises(StoreInUse, match=f"open in another process \\(pid {other_process.pid}\\)"):
        await kb.start()
    await kb.close()  # what a failed start leaves is closed cleanly
    _release(other_process)
    await kb.start()  # the lock went with the process that held it
    try:
        await kb.create_collection("t", "c")
        await kb.upsert("t", "c", [{"id": "a", "text": "apples"}])
        assert [h.document_id for h in (await kb.search("t", "c", "apples")).results] == ["a"]
    finally:
        await kb.close()


async def test_a_start_waits_for_a_process_that_is_closing_the_store(
    tmp_path: Path, other_process: subprocess.Popen[str]
) -> None:
    # A restart overlapping its predecessor's shutdown: the new store waits instead of failing.
    store = SqliteStore(tmp_path / "knowledge", lock_wait_s=HANG_S)
    starting = asyncio.ensure_future(store.start())
    done, _ = await asyncio.wait({starting}, timeout=0)
    assert not done  # waiting for the lock
    _release(other_process)
    done, _ = await asyncio.wait({starting}, timeout=HANG_S)
    assert starting in done
    starting.result()
    await store.close()


async def test_a_second_store_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path)
    await first.start()
    try:
        with pytest.raises(StoreInUse):
            await SqliteStore(tmp_path, lock_wait_s=0).start()
    finally:
        await first.close()
    second = SqliteStore(tmp_path)
    await second.start()
    await second.close()


def test_ingest_beside_a_running_store_is_one_line_and_exit_1_after_the_wait(
    tmp_path: Path, other_process: subprocess.Popen[str]
) -> None:
    (tmp_path / "a.md").write_text("apples")
    done = _run(
        "ingest", str(tmp_path / "a.md"), "-c", "c", env={"COMPANION_DATA_DIR": str(tmp_path)}
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"companion: the knowledge store in {tmp_path / 'knowledge'} is open in another process "
        f"(pid {other_process.pid}); the embedded store serves one process at a time: stop that "
        "one, or use PostgreSQL (COMPANION_DATABASE_URL) to share a store between processes"
    )
    assert "Traceback" not in done.stderr
