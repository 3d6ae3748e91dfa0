"""The opt-in `node` runtime: warm Node.js workers in the same OS sandbox, one per tenant.

Node's `vm` module is not a boundary between runs, so a worker only ever serves one tenant, and it
is replaced after any timeout, crash or protocol error, and after `runs_per_worker` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from companion.execution._errors import ExecutorBusy, SandboxUnavailable
from companion.execution._launcher import LaunchPlan

__all__ = ["NodePool", "node_binary", "node_version"]

_log = logging.getLogger("companion.execution")
_START_TIMEOUT_S = 30.0
_STDERR_TAIL_BYTES = 4096
_LOADER = "/lib64/ld-linux-x86-64.so.2"
# Node workers' sandbox identities come after every zygote's (a pool has at most 3 x 256 + 1).
_NODE_SLOTS = 1024
_SEAL_KEYS = ("seal", "scratch_bytes", "scratch_files", "devices")


def node_binary() -> str | None:
    """The real path of `node` when it lives under /usr (the only tree the sandbox exposes)."""
    found = shutil.which("node", path="/usr/local/bin:/usr/bin:/bin")
    if found is None:
        return None
    real = os.path.realpath(found)
    return real if real.startswith("/usr/") else None


def node_version(binary: str) -> str:
    """`node --version` without the leading v."""
    import subprocess

    done = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=30, env={}
    )
    return done.stdout.strip().lstrip("v")


@dataclass
class _Worker:
    tenant: str
    process: asyncio.subprocess.Process
    slot: int
    runs: int = 0
    disposed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stderr_tail: bytes = b""
    drain: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        if self.drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.drain


class NodePool:
    """Node.js workers by tenant, at most `max_workers` (the least recently used idle one goes)."""

    def __init__(
        self,
        plan: LaunchPlan,
        binary: str,
        seccomp_bpf: bytes,
        *,
        heap_bytes: int,
        max_workers: int,
        max_queue: int,
        runs_per_worker: int,
    ) -> None:
        self._plan = plan
        self._binary = binary
        self._seccomp_hex = seccomp_bpf.hex()
        self._heap_mb = max(16, heap_bytes // 2**20)
        self._max_workers = max_workers
        self._max_queue = max_queue
        self._runs_per_worker = runs_per_worker
        self._loader = os.path.realpath(_LOADER)
        self._workers: OrderedDict[str, _Worker] = OrderedDict()
        self._waiting = 0
        self._next_id = 0
        self._free_slots = list(range(max_workers + 1))  # identities; +1: one retiring at a time

    async def run(self, tenant: str, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Run on this tenant's worker (started on first use); the result has the zygote's shape."""
        if self._waiting >= self._max_queue:
            raise ExecutorBusy("Every Node.js worker is busy.", retry_after_s=1.0)
        self._waiting += 1
        try:
            worker = await self._worker_for(tenant)
            await worker.lock.acquire()
        finally:
            self._waiting -= 1
        try:
            return await self._exchange(worker, request, timeout_s)
        finally:
            worker.lock.release()

    async def _worker_for(self, tenant: str) -> _Worker:
        worker = self._workers.get(tenant)
        if worker is not None and worker.alive:
            self._workers.move_to_end(tenant)
            return worker
        if worker is not None:
            await self._retire(worker)
        while len(self._workers) >= self._max_workers:
            idle = next((w for w in self._workers.values() if not w.lock.locked()), None)
            if idle is None:
                raise ExecutorBusy("Every Node.js worker is serving a tenant.", retry_after_s=1.0)
            await self._retire(idle)
        worker = await self._start(tenant)
        self._workers[tenant] = worker
        return worker

    async def _start(self, tenant: str) -> _Worker:
        self._next_id += 1
        if not self._free_slots:
            raise ExecutorBusy("Every Node.js worker is starting or serving.", retry_after_s=1.0)
        slot = self._free_slots.pop(0)
        uid, gid = self._plan.identity(_NODE_SLOTS + slot)
        config = {
            "node": self._binary,
            "worker": str(self._plan.lib_path() / "sandbox" / "node_worker.js"),
            "heap_mb": self._heap_mb,
            "read_only": self._plan.read_only_paths(),
            "read_write": [self._plan.scratch_root(f"node-{self._next_id}")],
            "executable": [self._binary, self._loader],
            "seccomp_bpf": self._seccomp_hex,
            "uid": uid,
            "gid": gid,
            **{key: self._plan.init[key] for key in _SEAL_KEYS},
        }
        argv, env, cwd = self._plan.launcher_argv("node_launcher", json.dumps(config))
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=cwd,
                limit=64 * 2**20,
            )
        except BaseException:
            self._free_slots.append(slot)
            raise
        worker = _Worker(tenant, process, slot)
        worker.drain = asyncio.create_task(self._drain_stderr(worker))
        try:
            assert process.stdout is not None
            async with asyncio.timeout(_START_TIMEOUT_S):
                ready = orjson.loads(await process.stdout.readline())
        except (TimeoutError, orjson.JSONDecodeError) as exc:
            await self._dispose(worker)
            tail = worker.stderr_tail.decode(errors="replace")[-300:]
            raise SandboxUnavailable(f"a Node.js worker failed to start: {tail}") from exc
        if not ready.get("ready"):
            await self._dispose(worker)
            raise SandboxUnavailable("a Node.js worker did not get ready")
        return worker

    async def _exchange(
        self, worker: _Worker, request: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        process = worker.process
        assert process.stdin is not None
        assert process.stdout is not None
        worker.runs += 1
        try:
            process.stdin.write(orjson.dumps(request) + b"\n")
            await process.stdin.drain()
            async with asyncio.timeout(timeout_s):
                line = await process.stdout.readline()
            if not line:
                raise EOFError
            result: dict[str, Any] = orjson.loads(line)
        except TimeoutError:
            await self._retire(worker)
            return {"killed": "timeout", "wall_ms": timeout_s * 1000, "stdout": "", "stderr": ""}
        except (EOFError, ConnectionError, orjson.JSONDecodeError):
            await self._retire(worker)
            return self._crash_result(worker)
        if result.get("limit") == "time" or worker.runs >= self._runs_per_worker:
            await self._retire(worker)  # a timed-out vm may have left work behind: never reuse it
        return result

    @staticmethod
    def _crash_result(worker: _Worker) -> dict[str, Any]:
        tail = worker.stderr_tail.decode(errors="replace")
        if "heap out of memory" in tail or "Allocation failed" in tail:
            report = {
                "name": "RangeError",
                "value": "JavaScript heap out of memory",
                "traceback": "",
            }
            return {
                "exit_code": None,
                "signal": None,
                "error": json.dumps({**report, "limit": "memory"}),
            }
        _log.error("node worker of %s stopped: %s", worker.tenant, tail[-500:])
        return {"internal_error": "the Node.js worker stopped unexpectedly; it has been replaced"}

    async def _drain_stderr(self, worker: _Worker) -> None:
        stream = worker.process.stderr
        assert stream is not None
        while chunk := await stream.read(4096):
            worker.stderr_tail = (worker.stderr_tail + chunk)[-_STDERR_TAIL_BYTES:]

    async def _retire(self, worker: _Worker) -> None:
        if self._workers.get(worker.tenant) is worker:
            del self._workers[worker.tenant]
        await self._dispose(worker)

    async def _dispose(self, worker: _Worker) -> None:
        """Kill the worker, then free its identity (once, however often it is retired)."""
        await worker.kill()
        if not worker.disposed:
            worker.disposed = True
            self._free_slots.append(worker.slot)
            self._free_slots.sort()

    async def close(self) -> None:
        """Stop every worker."""
        for worker in list(self._workers.values()):
            await self._retire(worker)

    @property
    def workers(self) -> int:
        """Workers running now."""
        return len(self._workers)
