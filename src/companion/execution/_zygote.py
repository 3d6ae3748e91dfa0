"""One zygote process seen from the service: start it, send it runs, notice when it dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any

import orjson

from companion.execution._launcher import LaunchPlan
from companion.execution.sandbox.protocol import MAX_FRAME_BYTES, encode_frame

__all__ = ["Zygote", "ZygoteFailed"]

_log = logging.getLogger("companion.execution")
_HEADER = struct.Struct(">I")
_STDERR_TAIL_BYTES = 4096


class ZygoteFailed(Exception):
    """The zygote died, hung or broke the protocol; it must be replaced."""


class Zygote:
    """A running zygote and its pipes; one run at a time."""

    def __init__(self, plan: LaunchPlan, index: int) -> None:
        self.plan = plan
        self.index = index
        self.runs = 0
        self.landlock_abi = 0
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_tail = b""
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The zygote's process id (the bubblewrap process under bubblewrap)."""
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self._process is not None and self._process.returncode is None

    async def start(self, timeout_s: float) -> None:
        """Start the process, send the init frame and wait for it to be ready."""
        argv, env, cwd = self.plan.argv(self.index)
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            limit=MAX_FRAME_BYTES,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        ready = await self._exchange(self.plan.init_frame(self.index), timeout_s)
        if not ready.get("ready"):
            raise ZygoteFailed(f"zygote {self.index} did not get ready: {ready}")
        self.landlock_abi = int(ready.get("landlock_abi", 0))

    async def run(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one run and wait for its result (the zygote enforces the run's own limits)."""
        self.runs += 1
        return await self._exchange(request, timeout_s)

    async def _exchange(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise ZygoteFailed("zygote is not running")
        try:
            process.stdin.write(encode_frame(message))
            await process.stdin.drain()
            async with asyncio.timeout(timeout_s):
                header = await process.stdout.readexactly(_HEADER.size)
                (size,) = _HEADER.unpack(header)
                body = await process.stdout.readexactly(size)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            await self.kill()
            tail = self._stderr_tail.decode(errors="replace").strip()[-500:]
            raise ZygoteFailed(f"zygote {self.index}: {type(exc).__name__} {tail}") from exc
        result: dict[str, Any] = orjson.loads(body)
        return result

    async def _drain_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        while chunk := await self._process.stderr.read(4096):
            self._stderr_tail = (self._stderr_tail + chunk)[-_STDERR_TAIL_BYTES:]

    async def kill(self) -> None:
        """Kill the process group member and reap it."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task

    async def close(self) -> None:
        """Ask the zygote to exit (stdin closed), then make sure it did."""
        process = self._process
        if process is not None and process.returncode is None and process.stdin is not None:
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 2)
            except TimeoutError:
                _log.warning("zygote %d did not exit on close; killing it", self.index)
        await self.kill()
