"""A run's child never inherits memory that held an earlier run's code, input or output.

CPython does not clear freed memory, so a child forked from the zygote after it handled a run could
find that run's data in its own address space. Here a later snippet scans its memory (probing each
page with write(2), which fails with EFAULT instead of crashing on an unmapped one) for what an
earlier run of the same zygote received and printed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from companion.config import load_settings
from companion.execution import ExecutionRequest, Executor
from tests.execution.conftest import SANDBOX_MODES

pytestmark = pytest.mark.sandbox

# Built at run time everywhere: the scanner must not hold the marker next to a suffix it looks for.
_MARKER = "ZQ" + "REMNANT" + "MARKQZ"
_SUFFIXES = ("-from-stdin", "-from-env", "-from-code", "-printed", "-from-file", "-written")

SCAN = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.sbrk.restype = ctypes.c_void_p
probe_r, probe_w = os.pipe()
marker = sys.argv[1].encode()
suffixes = [s.encode() for s in sys.argv[2:]]
PAGE = 4096
found = set()
def scan(start, end):
    addr = start - start % PAGE
    while addr < end:
        if libc.write(probe_w, addr, PAGE) == PAGE:
            os.read(probe_r, PAGE)
            page = ctypes.string_at(addr, PAGE)
            at = page.find(marker)
            while at >= 0:
                tail = page[at + len(marker): at + len(marker) + 16]
                found.update(s.decode() for s in suffixes if tail.startswith(s))
                at = page.find(marker, at + 1)
        addr += PAGE
top = libc.sbrk(0)
scan(top - 64 * 2**20, top)
near = id(object())
scan(near - 256 * 2**20, near + 256 * 2**20)
print(sorted(found))
"""


# With the data-science packages preloaded, the runs import numpy (so they go to those sandboxes).
_PRELOADED = "import numpy\n"


@pytest.fixture(params=[(mode, preloaded) for mode in SANDBOX_MODES for preloaded in (False, True)])
async def one_zygote(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Executor, str]]:
    mode, preloaded = request.param
    executor = Executor(
        load_settings(
            execution_pool_size=1,
            execution_data_pool_size=1 if preloaded else 0,
            execution_sandbox_mode=mode,
        )
    )
    await executor.start()
    yield executor, _PRELOADED if preloaded else ""
    await executor.close()


async def test_a_later_run_finds_nothing_of_an_earlier_one_in_its_memory(
    one_zygote: tuple[Executor, str],
) -> None:
    executor, prefix = one_zygote
    secret = ExecutionRequest(
        language="python",
        code=prefix
        + f"import sys\nprint(sys.stdin.read().strip() + '-printed')  # {_MARKER}-from-code\n"
        + "data = open('in.txt').read()\n"
        + "open('out.txt', 'w').write(data.replace('-from-file', '-written'))",
        stdin=f"{_MARKER}-from-stdin",
        env={"TOKEN": f"{_MARKER}-from-env"},
        files=[{"name": "in.txt", "content": f"{_MARKER}-from-file"}],
    )
    first = await executor.run(secret, tenant="alice")
    assert first.stdout == f"{_MARKER}-from-stdin-printed\n"
    assert [f.path for f in first.files] == ["out.txt"]
    scanner = ExecutionRequest(
        language="python",
        code=prefix + SCAN,
        args=[_MARKER, *_SUFFIXES],
        limits={"wall_time_ms": 30_000, "cpu_time_ms": 30_000},
    )
    for _ in range(2):  # the first child was forked before `secret` ran; the next ones after it
        seen = await executor.run(scanner, tenant="bob")
        assert seen.status == "ok", seen
        assert seen.stdout == "[]\n", f"an earlier run's data is readable: {seen.stdout}"
