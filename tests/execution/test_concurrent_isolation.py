"""Runs that overlap in time see nothing of each other; oversized argv/env are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from companion.config import load_settings
from companion.execution import ExecutionRequest, Executor
from tests.execution.conftest import SANDBOX_MODES

pytestmark = pytest.mark.sandbox


@pytest.fixture(params=SANDBOX_MODES)
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    executor = Executor(load_settings(execution_pool_size=2, execution_sandbox_mode=request.param))
    await executor.start()
    yield executor
    await executor.close()


async def _overlapping(
    executor: Executor, victim: ExecutionRequest, attacker: ExecutionRequest
) -> tuple[str, str]:
    """Run `attacker` while `victim` runs, with proof: both print wall-clock times (one host
    clock), and the attacker's must fall inside the victim's window. Retried until it does."""
    for _ in range(5):
        running = asyncio.create_task(executor.run(victim, tenant="alice"))
        for _ in range(500):  # dispatched: the victim holds a zygote
            stats = executor.pool_stats()
            if stats is not None and stats.idle < stats.size:
                break
            await asyncio.sleep(0.005)  # real-time: the run starts in a real process
        attack = await executor.run(attacker, tenant="bob")
        victim_result = await running
        assert victim_result.status == "ok", victim_result
        assert attack.status == "ok", attack
        started, ended, victim_out = victim_result.stdout.split(" ", 2)
        at, attack_out = attack.stdout.split(" ", 1)
        if float(started) < float(at) < float(ended):
            return victim_out, attack_out
    raise AssertionError("the attacker never ran while the victim ran")


async def test_a_run_cannot_read_another_runs_scratch_while_it_runs(executor: Executor) -> None:
    writer = ExecutionRequest(
        language="python",
        code=(
            "import time\nopen('secret.txt', 'w').write('alice')\nstarted = time.time()\n"
            "time.sleep(1)\nprint(started, time.time(), 'done')"
        ),
    )
    snoop = ExecutionRequest(
        language="python",
        code=(
            "import os, time\nfound = []\n"
            "for root in ('/tmp', '/proc', '..', '/'):\n"
            "    try:\n"
            "        for path, dirs, files in os.walk(root):\n"
            "            found += [f for f in files if f == 'secret.txt']\n"
            "    except OSError:\n"
            "        pass\n"
            "print(time.time(), found)"
        ),
    )
    written, seen = await _overlapping(executor, writer, snoop)
    assert written == "done\n"
    assert seen == "[]\n"


async def test_signals_cannot_reach_a_concurrent_run(executor: Executor) -> None:
    victim = ExecutionRequest(
        language="python",
        code="import time\nstarted = time.time()\ntime.sleep(1)\nprint(started, time.time(), 'alive')",
    )
    attacker = ExecutionRequest(
        language="python",
        code=(
            "import os, signal, time\nhits = 0\nat = time.time()\n"
            "for pid in range(2, 400):\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "        hits += 1\n"
            "    except OSError:\n"
            "        pass\n"
            "print(at, hits)"
        ),
    )
    alive, hits = await _overlapping(executor, victim, attacker)
    assert hits == "0\n"
    assert alive == "alive\n"


@pytest.mark.parametrize(
    "fields",
    [
        {"args": ["x" * 5000]},
        {"args": ["x"] * 65},
        {"env": {f"K{i}": "v" for i in range(65)}},
        {"env": {"BIG": "x" * 5000}},
        {"stdin": "x" * 2_000_000},
    ],
    ids=["long-arg", "many-args", "many-env", "long-env", "huge-stdin"],
)
def test_huge_argv_env_and_stdin_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExecutionRequest.model_validate({"language": "python", "code": "pass", **fields})


async def test_the_largest_allowed_argv_and_env_still_run(executor: Executor) -> None:
    request = ExecutionRequest(
        language="python",
        code="import os, sys\nprint(len(sys.argv) - 1, len([k for k in os.environ if k[0] == 'K']))",
        args=["a" * 4096] * 64,
        env={f"K{i}": "v" * 4096 for i in range(64)},
    )
    assert (await executor.run(request)).stdout == "64 64\n"
