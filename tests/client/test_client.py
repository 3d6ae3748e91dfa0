"""The Python client's code execution and sessions against a real `companion serve`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from companion_client import (
    AsyncClient,
    Client,
    Forbidden,
    InputFile,
    LocalFileRefused,
    NotFound,
    RateLimited,
    RetryPolicy,
    SessionEnded,
    SessionLimitReached,
    SessionNotFound,
    Unauthorized,
    ValidationFailed,
    WorkspaceFileNotFound,
    save_file,
)

from tests.client._service import COMPANION, SESSIONS_PER_TENANT, served

# The CLI's remote-mode tests start their service with these.
__all__ = ["COMPANION", "served"]

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def test_sync_client_executes_and_maps_errors(server: tuple[str, dict[str, str]]) -> None:
    url, keys = server
    with Client(url, keys["execute"]) as client:
        assert client.ready()["status"] == "ready"
        result = client.execute("python", "print(6 * 7)")
        assert result["stdout"] == "42\n"
        assert {r["language"] for r in client.runtimes()["runtimes"]} >= {"python", "javascript"}
        with pytest.raises(ValidationFailed) as caught:
            client.execute("cobol", "x")
        assert caught.value.errors[0].pointer == "/language"
        assert caught.value.code == "unknown_language"
        with pytest.raises(Forbidden):
            client.request("GET", "/v1/alerts")
        with pytest.raises(NotFound):
            client.request("GET", "/v1/nowhere")
    with Client(url, keys["tools"]) as client, pytest.raises(Forbidden):
        client.execute("python", "print(1)")
    with Client(url, "cmp_0123456789ab_" + "0" * 48) as client, pytest.raises(Unauthorized):
        client.execute("python", "print(1)")


async def test_async_client(server: tuple[str, dict[str, str]]) -> None:
    url, keys = server
    async with AsyncClient(url, keys["execute"]) as client:
        result = await client.execute("javascript", "console.log([1, 2].map((x) => x * 3))")
        assert result["stdout"] == "[3,6]\n"


def test_cli_remote_mode_uses_the_client(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, keys = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    script = tmp_path / "remote.py"
    script.write_text("print(sum(range(5)))")

    def cli(*args: str, key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMPANION, *args, "--url", url],
            env={**env, "COMPANION_API_KEY": key},
            capture_output=True,
            text=True,
            timeout=60,
        )

    ran = cli("exec", str(script), key=keys["execute"])
    assert (ran.returncode, ran.stdout) == (0, "10\n"), ran.stderr
    denied = cli("exec", str(script), key=keys["tools"])
    assert denied.returncode == 1
    assert "lacks the `execute` scope" in denied.stderr
    called = cli("tools", "call", "add", '{"a": 2, "b": 3}', key=keys["tools"])
    assert called.returncode == 0, called.stderr
    assert '"value": 5.0' in called.stdout


def test_run_sends_files_and_decodes_results_and_returned_files(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, keys = server
    source = tmp_path / "sales.csv"
    source.write_text("region,amount\nnorth,3\nsouth,5\nnorth,4\n")
    code = (
        "import pandas as pd\n"
        "sales = pd.read_csv('sales.csv')\n"
        "totals = sales.groupby('region').amount.sum()\n"
        "totals.plot.bar()\n"
        "totals.to_csv('totals.csv')\n"
        "totals.to_dict()"
    )
    with Client(url, keys["execute"]) as client:
        run = client.run(code, files=[InputFile.from_path(source)])
    assert run.ok, run
    assert run.value == "{'north': 7, 'south': 5}"
    [image] = run.images()
    assert image.mime_type == "image/png"
    assert image.content().startswith(b"\x89PNG")
    saved = run.save_files(tmp_path / "out")
    assert saved == [(tmp_path / "out" / "totals.csv").resolve()]
    assert saved[0].read_text() == "region,amount\nnorth,7\nsouth,5\n"


async def test_async_run_takes_files_as_a_mapping(server: tuple[str, dict[str, str]]) -> None:
    url, keys = server
    async with AsyncClient(url, keys["execute"]) as client:
        run = await client.run(
            "print(open('a.txt').read(), open('b.bin', 'rb').read())",
            files={"a.txt": "text", "b.bin": b"\x00\xff"},
        )
    assert run.stdout == "text b'\\x00\\xff'\n"
    assert run.files == []


def test_a_session_keeps_its_state_and_streams_cells_in_order(
    server: tuple[str, dict[str, str]],
) -> None:
    url, keys = server
    with Client(url, keys["execute"]) as client:
        with client.create_session(idle_timeout_s=120) as session:
            assert (session.info["state"], session.info["execution_count"]) == ("idle", 0)
            assert session.info["idle_timeout_s"] == 120
            first = session.run("import sys\nx = 41\nopen('in.txt').read()", files={"in.txt": "hi"})
            assert (first.value, first.execution_count, first.session_id) == ("'hi'", 1, session.id)
            second = session.run("x + 1")
            assert (second.value, second.execution_count, second.session_ended) == ("42", 2, None)
            code = (
                "print('one', flush=True)\n"
                "print('two', file=sys.stderr, flush=True)\n"
                "print('three')\n"
                "x"
            )
            events = list(session.run_stream(code, limits={"wall_time_ms": 4000}))
            kinds = [event.kind for event in events]
            assert kinds[-1] == "done"
            assert kinds.count("done") == 1
            assert {"stdout", "stderr", "result"} <= set(kinds)  # each channel in its own order
            assert "".join(e.text for e in events if e.kind == "stdout") == "one\nthree\n"
            assert "".join(e.text for e in events if e.kind == "stderr") == "two\n"
            [result] = [event.result for event in events if event.result is not None]
            assert result.data == "41"
            done = events[-1].execution
            assert done is not None
            assert (done.execution_count, done.stdout, done.value) == (3, "one\nthree\n", "41")
            assert session.refresh()["execution_count"] == 3
            assert session.id in [info["id"] for info in client.sessions()]
            assert client.session(session.id).run("x").value == "41"
        with pytest.raises(SessionNotFound):  # the `with` closed it
            client.session(session.id)


def test_session_files_round_trip_binary_bytes(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, keys = server
    blob = bytes(range(256)) * 4
    local = tmp_path / "local.bin"
    local.write_bytes(blob)
    with Client(url, keys["execute"]) as client, client.create_session() as session:
        assert session.upload(local) == "local.bin"
        assert session.upload(local, "my data v2.bin") == "my data v2.bin"
        assert session.upload(InputFile("data/blob.bin", blob[::-1])) == "data/blob.bin"
        listing = session.files()
        assert [(f.path, f.size_bytes) for f in listing] == [
            ("data/blob.bin", 1024),
            ("local.bin", 1024),
            ("my data v2.bin", 1024),
        ]
        assert not listing.truncated
        cell = session.run(
            "data = open('data/blob.bin', 'rb').read()\n"
            "open('out.bin', 'wb').write(data[::-1])\n"
            "data == bytes(range(255, -1, -1)) * 4"
        )
        assert cell.value == "True", cell
        assert session.download("out.bin") == blob
        assert session.download("my data v2.bin") == blob
        saved = session.save_file("data/blob.bin", tmp_path / "saved")
        assert saved.read_bytes() == blob[::-1]
        with pytest.raises(LocalFileRefused, match="exists; not replaced"):
            session.save_file("data/blob.bin", tmp_path / "saved")
        session.delete_file("data/blob.bin")
        with pytest.raises(WorkspaceFileNotFound):
            session.download("data/blob.bin")
        with pytest.raises(WorkspaceFileNotFound):
            session.delete_file("data/blob.bin")
        assert [f.path for f in session.files()] == ["local.bin", "my data v2.bin", "out.bin"]


def test_ended_closed_and_foreign_sessions_raise_the_mapped_errors(
    server: tuple[str, dict[str, str]],
) -> None:
    url, keys = server
    with Client(url, keys["execute"]) as client:
        crashed = client.create_session()
        cell = crashed.run("import os\nos._exit(3)")
        assert cell.session_ended == "its process exited with code 3"
        with pytest.raises(SessionEnded, match="has ended") as ended:
            crashed.run("1")
        assert isinstance(ended.value, NotFound)
        assert ended.value.status == 410
        with pytest.raises(SessionEnded):
            list(crashed.run_stream("1"))
        assert crashed.refresh()["state"] == "ended"
        crashed.close()
        crashed.close()

        closed = client.create_session()
        closed.close()
        closed.close()  # closing twice is fine
        with pytest.raises(SessionNotFound):
            closed.run("1")
        with pytest.raises(SessionNotFound):
            list(closed.run_stream("1"))
        with pytest.raises(SessionNotFound):
            closed.files()
        with pytest.raises(SessionNotFound):
            client.session("ses_nobody")

        with client.create_session() as mine, Client(url, keys["other"]) as other:
            with pytest.raises(SessionNotFound):
                other.session(mine.id)
            assert mine.id not in [info["id"] for info in other.sessions()]
            with pytest.raises(NotFound):
                other.request("DELETE", f"/v1/sessions/{mine.id}")
            assert mine.run("6 * 7").value == "42"  # still there


def test_a_tenant_over_its_session_limit_is_told_when_to_retry(
    server: tuple[str, dict[str, str]],
) -> None:
    url, keys = server
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:  # a fake clock: the retries' waits take no real time
        slept.append(seconds)
        now[0] += seconds

    policy = RetryPolicy(max_retries=2, budget_s=3600)
    with Client(url, keys["other"], retry=policy, sleep=sleep, clock=lambda: now[0]) as client:
        held = [client.create_session() for _ in range(SESSIONS_PER_TENANT)]
        try:
            with pytest.raises(SessionLimitReached) as caught:
                client.create_session()
            assert isinstance(caught.value, RateLimited)
            assert caught.value.retry_after_s is not None
            assert caught.value.retry_after_s >= 1
            # Refused three times: waited twice, each time at least as long as the service said.
            assert len(slept) == 2
            assert all(wait >= caught.value.retry_after_s for wait in slept)
        finally:
            for session in held:
                session.close()
        assert client.sessions() == []
        client.create_session().close()  # a closed session frees its place at once


def test_a_refused_session_is_made_when_a_place_frees_during_the_wait(
    server: tuple[str, dict[str, str]],
) -> None:
    url, keys = server
    with Client(url, keys["other"]) as holder:
        held = [holder.create_session() for _ in range(SESSIONS_PER_TENANT)]
        slept: list[float] = []

        now = [0.0]

        def sleep(seconds: float) -> None:  # while the client waits, another caller ends one
            slept.append(seconds)
            now[0] += seconds
            held.pop().close()

        # The service's hint is the next session's expiry (minutes away): a budget above it.
        policy = RetryPolicy(budget_s=3600)
        try:
            with Client(url, keys["other"], retry=policy, sleep=sleep, clock=lambda: now[0]) as c:
                made = c.create_session()
                made.close()
            assert len(slept) == 1
            assert slept[0] >= 1
            assert made.info["state"] == "idle"
        finally:
            for session in held:
                session.close()


async def test_async_sessions(server: tuple[str, dict[str, str]]) -> None:
    url, keys = server
    async with AsyncClient(url, keys["execute"]) as client:
        async with await client.create_session() as session:
            await session.run("x = 1")
            cell = await session.run("x + 1")
            assert (cell.value, cell.execution_count) == ("2", 2)
            events = [event async for event in session.run_stream("print(x * 3)")]
            assert [event.kind for event in events] == ["stdout", "done"]
            assert events[0].text == "3\n"
            assert await session.upload(InputFile("b.bin", b"\x00\xff")) == "b.bin"
            assert [f.path for f in await session.files()] == ["b.bin"]
            assert await session.download("b.bin") == b"\x00\xff"
            await session.delete_file("b.bin")
            assert len(await session.files()) == 0
            assert session.id in [info["id"] for info in await client.sessions()]
            again = await client.session(session.id)
            assert (await again.refresh())["execution_count"] == 3
        with pytest.raises(SessionNotFound):
            await session.run("x")
        await session.close()  # again: fine


@pytest.mark.parametrize(
    "path", ["../escape.txt", "/etc/evil", "a/../../b", "..\\x", "C:x", "a//b"]
)
def test_save_file_never_writes_outside_the_folder(tmp_path: Path, path: str) -> None:
    with pytest.raises(LocalFileRefused, match="not a relative path"):
        save_file(tmp_path / "out", path, b"x")
    assert not (tmp_path / "escape.txt").exists()


def test_save_file_does_not_follow_a_link_in_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "sub").symlink_to(outside)
    (folder / "file").symlink_to(outside / "target")
    with pytest.raises(LocalFileRefused, match="is a link"):
        save_file(folder, "sub/x.txt", b"x")
    with pytest.raises(LocalFileRefused, match="exists; not replaced"):
        save_file(folder, "file", b"x")
    with pytest.raises(LocalFileRefused, match="cannot write"):
        save_file(folder, "file", b"x", overwrite=True)
    assert list(outside.iterdir()) == []


def test_save_file_never_replaces_a_file_unless_asked(tmp_path: Path) -> None:
    mine = tmp_path / "Makefile"
    mine.write_text("mine")
    with pytest.raises(LocalFileRefused, match="exists; not replaced"):
        save_file(tmp_path, "Makefile", b"theirs")
    assert mine.read_text() == "mine"
    save_file(tmp_path, "Makefile", b"theirs", overwrite=True)
    assert mine.read_text() == "theirs"


def test_save_file_names_a_file_standing_where_a_folder_should(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("a file")
    with pytest.raises(LocalFileRefused, match="cannot make"):
        save_file(tmp_path / "out", "a/b.txt", b"x")
