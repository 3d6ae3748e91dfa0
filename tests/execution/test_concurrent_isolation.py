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


async def test_a_run_cannot_read_another_runs_scratch_while_it_runs(executor: Executor) -> None:
    writer = ExecutionRequest(
        language="python",
        code="open('secret.txt', 'w').write('alice')\nimport time\ntime.sleep(0.6)",
    )
    snoop = ExecutionRequest(
        language="python",
        code=(
            "import os\nfound = []\n"
            "for root in ('/tmp', '/proc', '..', '/'):\n"
            "    try:\n"
            "        for path, dirs, files in os.walk(root):\n"
            "            found += [f for f in files if f == 'secret.txt']\n"
            "    except OSError:\n"
            "        pass\n"
            "print(found)"
        ),
    )
    running = asyncio.create_task(executor.run(writer, tenant="alice"))
    await asyncio.sleep(0.2)  # real-time: the writer must be mid-run in the other zygote
    seen = await executor.run(snoop, tenant="bob")
    assert (await running).status == "ok"
    assert seen.status == "ok", seen
    assert seen.stdout == "[]\n"


async def test_signals_cannot_reach_a_concurrent_run(executor: Executor) -> None:
    victim = ExecutionRequest(
        language="python", code="import time\ntime.sleep(0.6)\nprint('alive')"
    )
    attacker = ExecutionRequest(
        language="python",
        code=(
            "import os, signal\nhits = 0\n"
            "for pid in range(2, 400):\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "        hits += 1\n"
            "    except OSError:\n"
            "        pass\n"
            "print(hits)"
        ),
    )
    running = asyncio.create_task(executor.run(victim))
    await asyncio.sleep(0.2)  # real-time: the victim must be mid-run
    attack = await executor.run(attacker)
    assert attack.stdout == "0\n"
    assert (await running).stdout == "alive\n"


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
        code="import os, sys\nprint(len(sys.argv) - 1, len(os.environ))",
        args=["a" * 4096] * 64,
        env={f"K{i}": "v" * 4096 for i in range(64)},
    )
    assert (await executor.run(request)).stdout == "64 64\n"
