"""Session rows: a cell's round trip and a session's start against a local Jupyter kernel (the
same cells over its own protocol, unsandboxed), and the memory an idle session holds."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from companion.bench._case import Case, Operation, Target, format_bytes
from companion.bench._memory import tree_pss_bytes
from companion.config import load_settings
from companion.errors import FeatureUnavailable
from companion.execution import CellRequest, Executor, SessionCreate

__all__ = ["cases"]

# The same trivial cells on both sides: state kept between them, the last value shown.
FIRST_CELL = "x = 1\nx"
NEXT_CELL = "x += 1\nx"
_TENANT = "bench"
_SPARE_WAIT_S = 30.0


class _Sessions:
    """A started executor on a private event loop, with `spares` sessions kept ready."""

    def __init__(self, spares: int, *, preload: bool = False) -> None:
        self._loop = asyncio.new_event_loop()
        settings = load_settings(
            execution_pool_size=1,
            execution_data_pool_size=0,
            execution_session_preload=preload,
            execution_session_spares=spares,
            execution_max_sessions=64,
            execution_max_sessions_per_tenant=64,
        )
        self.executor = Executor(settings)
        self._loop.run_until_complete(self.executor.start())

    def call(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def open(self) -> str:
        info = self.call(self.executor.sessions.create(_TENANT, SessionCreate()))
        return str(info.id)

    def cell(self, session_id: str, code: str) -> object:
        request = CellRequest(code=code)
        result = self.call(self.executor.sessions.execute(_TENANT, session_id, request))
        if result.status != "ok" or not result.results:
            raise RuntimeError(f"benchmark cell failed: {result}")
        return result

    def wait_for_spares(self) -> None:
        """Until the spares taken are replaced (untimed: the steady state of an idle node)."""
        sessions = self.executor.sessions
        deadline = time.monotonic() + _SPARE_WAIT_S
        while (stats := sessions.stats()).spares < stats.spares_wanted:
            if time.monotonic() > deadline:
                raise RuntimeError("the spare session sandboxes were not replaced")
            self.call(asyncio.sleep(0.005))  # real time: sandboxes starting in the background

    def close(self) -> None:
        self.call(self.executor.close())
        self._loop.close()


class _WarmCell(_Sessions):
    """One open session; each call runs the next trivial cell in it."""

    def __init__(self) -> None:
        super().__init__(spares=0)
        self._session = self.open()
        self.cell(self._session, FIRST_CELL)

    def __call__(self) -> object:
        return self.cell(self._session, NEXT_CELL)


class _SessionStart(_Sessions):
    """Each call opens a session and runs its first cell, timed; then closes it and waits for
    the spares to be back, untimed. With no spares, each start is a sandbox's cold start."""

    def __init__(self, spares: int) -> None:
        super().__init__(spares=spares)
        self.wait_for_spares()

    def __call__(self) -> float:
        started = time.perf_counter_ns()
        session = self.open()
        self.cell(session, FIRST_CELL)
        elapsed = time.perf_counter_ns() - started
        self.call(self.executor.sessions.delete(_TENANT, session))
        self.wait_for_spares()
        return float(elapsed)


class _IdleSessionMemory(_Sessions):
    """The PSS of one idle session's whole sandbox (bubblewrap, zygote, template, interpreter),
    after its first cell; `preload`: a session started with the data-science packages."""

    def __init__(self, *, preload: bool = False) -> None:
        super().__init__(spares=0, preload=preload)
        self._session = self.open()
        self.cell(self._session, FIRST_CELL)

    def __call__(self) -> float:
        pid = self.executor.sessions.sandbox_pid(_TENANT, self._session)
        assert pid is not None
        return float(tree_pss_bytes(pid))

    def note(self) -> str:
        pss = self()
        return f"{format_bytes(pss)} per idle session: {2**30 / pss:.0f} sessions per GiB"


class _Kernel:
    """A local IPython kernel (ipykernel), unsandboxed, driven by `jupyter_client` over ZeroMQ:
    each cell is an `execute_request`, answered when its reply has come and the kernel is idle
    again (its output published), as a notebook waits for it."""

    def __init__(self, *, first_cell: bool = True) -> None:
        try:
            from jupyter_client.manager import KernelManager
        except ImportError:
            raise FeatureUnavailable(
                "the session rows' peer needs jupyter_client and ipykernel: install the "
                "`bench` extra (uv sync --extra bench)"
            ) from None
        self._manager = KernelManager(kernel_cmd=_kernel_command())
        self._manager.start_kernel(env=_kernel_env())
        self._client = self._manager.client()
        self._client.start_channels()
        self._client.wait_for_ready(timeout=60)
        if first_cell:
            self.cell(FIRST_CELL)

    def cell(self, code: str) -> object:
        reply = self._client.execute_interactive(
            code, store_history=False, timeout=30, output_hook=_ignore
        )
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the kernel's cell failed: {reply['content']}")
        return reply

    def pid(self) -> int:
        provisioner = self._manager.provisioner
        return int(provisioner.process.pid)  # type: ignore[union-attr]

    def close(self) -> None:
        self._client.stop_channels()
        self._manager.shutdown_kernel(now=True)


class _KernelCell(_Kernel):
    def __call__(self) -> object:
        return self.cell(NEXT_CELL)


class _KernelStart:
    """Each call starts a kernel, waits for it and runs the first cell (timed), then stops it."""

    def __init__(self) -> None:
        _Kernel(first_cell=True).close()  # fails here, not mid-measurement, if it cannot start

    def __call__(self) -> float:
        started = time.perf_counter_ns()
        kernel = _Kernel(first_cell=True)
        elapsed = time.perf_counter_ns() - started
        kernel.close()
        return float(elapsed)


class _KernelMemory(_Kernel):
    def __call__(self) -> float:
        return float(tree_pss_bytes(self.pid()))


def _kernel_command() -> list[str]:
    # The same interpreter as the sandbox's, with the kernel's own connection file.
    return [os.path.realpath(sys.executable), "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def _kernel_env() -> dict[str, str]:
    # The kernel needs the venv's packages (ipykernel); everything else stays as clean as ours.
    return {"PATH": "/usr/bin", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def _ignore(_: object) -> None:
    return None


def _session_start(spares: int) -> Operation:
    return _SessionStart(spares)


def cases() -> list[Case]:
    """The session rows of issue [4/7]."""
    return [
        Case(
            "sessions",
            "session cell round trip (trivial cell, in process)",
            ours=_WarmCell,
            peer=_KernelCell,
            peer_name="local ipykernel over jupyter_client (unsandboxed)",
            target=Target(max_ratio=1.0),
        ),
        Case(
            "sessions",
            "session start: open + first trivial cell (a spare ready)",
            ours=lambda: _session_start(spares=1),
            peer=_KernelStart,
            peer_name="start an ipykernel, wait for it, first cell",
            target=Target(max_median_ns=20e6),
            reported=True,
        ),
        Case(
            "sessions",
            "session start with no spare (a sandbox's cold start)",
            ours=lambda: _session_start(spares=0),
            peer=_KernelStart,
            peer_name="start an ipykernel, wait for it, first cell",
            reported=True,
        ),
        Case(
            "sessions",
            "memory per idle session (PSS of its whole sandbox)",
            ours=_IdleSessionMemory,
            peer=_KernelMemory,
            peer_name="an idle ipykernel",
            unit="bytes",
        ),
        Case(
            "sessions",
            "memory per idle session started with the packages (COMPANION_EXECUTION_SESSION_PRELOAD)",
            ours=lambda: _IdleSessionMemory(preload=True),
            peer=_KernelMemory,
            peer_name="an idle ipykernel",
            unit="bytes",
        ),
    ]
