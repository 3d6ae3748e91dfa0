"""`Executor`: validate a request, pick its runtime and limits, run it in the pool."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from companion._cpus import usable_cpus
from companion.config import Settings
from companion.errors import FieldError
from companion.execution._errors import InvalidSnippet, SandboxUnavailable
from companion.execution._host import (
    BUBBLEWRAP,
    OWN_NAMESPACES,
    IsolationLayer,
    probe_isolation,
)
from companion.execution._identities import SandboxIdentities
from companion.execution._inputs import check_code, check_files, file_triples
from companion.execution._launcher import LaunchPlan, SandboxMode, prepare_launch
from companion.execution._models import (
    ExecutionRequest,
    ExecutionResult,
    Limits,
    OutputEvent,
)
from companion.execution._node import NodePool, node_binary
from companion.execution._outcome import internal_error_result, output_listener, to_result
from companion.execution._packages import PythonPackages, packages_dir
from companion.execution._pool import PoolStats, ZygotePool
from companion.execution._runtimes import Runtime, RuntimeRegistry
from companion.execution._seccomp import build_filter_bpf, build_limits_bpf
from companion.execution._sessions import SessionManager
from companion.execution._zygote import ZygoteFailed
from companion.telemetry import NO_TELEMETRY, Telemetry, record_run, run_span

__all__ = ["Executor", "RunObserver", "choose_sandbox_mode"]

_log = logging.getLogger("companion.execution")
# The run's wall time is enforced where its output is read; this guard only bounds waiting for a
# zygote (a free one, or one that stops answering).
_GUARD_S = 5.0
_PYTHON_ENTRY = "main.py"
# Sandbox identities (uid, gid offsets) the pools and sessions share; the `node` runtime's workers
# take theirs from 1024 up.
_IDENTITIES = 1024
# Zygote numbers of the preloaded pool start here (the plain pool's at 1; sessions' at 1,000,000).
_DATA_POOL_FIRST_INDEX = 500_000  # the file a Python run executes (tracebacks name it)

RunObserver = Callable[[str, str, float], None]
"""Called after every run with (language, status, wall seconds): the metrics hook."""


@dataclass(frozen=True, slots=True)
class _Isolation:
    layers: list[IsolationLayer]

    def active(self, name: str) -> bool:
        return any(layer.name.startswith(name) and layer.available for layer in self.layers)


def choose_sandbox_mode(
    settings: Settings,
    layers: list[IsolationLayer],
    *,
    root: bool | None = None,
    bwrap_installed: bool | None = None,
) -> SandboxMode:
    """The namespace mode the settings ask for and the host offers, or `SandboxUnavailable`
    naming the steps that would let snippets run (`root`, `bwrap_installed`: this host's, unless
    given).

    A snippet must never run with privileges or see the host's filesystem: without namespaces
    and seccomp no mode guarantees that, so the executor refuses (unless the operator explicitly
    accepted running without isolation).
    """
    isolation = _Isolation(layers)
    wanted = settings.execution_sandbox_mode
    offered = {"bubblewrap": isolation.active(BUBBLEWRAP)}
    offered["namespaces"] = isolation.active(OWN_NAMESPACES)
    candidates = ["bubblewrap", "namespaces"] if wanted == "auto" else [wanted]
    chosen = next((mode for mode in candidates if offered[mode]), None)
    if chosen is not None and isolation.active("seccomp"):
        return "bubblewrap" if chosen == "bubblewrap" else "namespaces"
    if settings.execution_unsafe_no_isolation:
        _log.warning("running untrusted code WITHOUT isolation (execution_unsafe_no_isolation)")
        return "none"
    reasons = "; ".join(
        f"{layer.name}: {layer.detail}"
        for layer in layers
        if not layer.available and layer.name in {BUBBLEWRAP, OWN_NAMESPACES, "seccomp"}
    )
    root = os.geteuid() == 0 if root is None else root
    installed = shutil.which("bwrap") is not None if bwrap_installed is None else bwrap_installed
    steps = []
    if not any(offered.values()) and not root:
        steps.append("run the service as root (it uses bubblewrap when installed)")
    elif not any(offered.values()) and not installed:
        steps.append("install bubblewrap (apt install bubblewrap)")
    elif chosen is None and any(offered.values()):
        steps.append(f"COMPANION_EXECUTION_SANDBOX_MODE=auto (here {wanted} does not start)")
    if not isolation.active("seccomp"):
        steps.append("install libseccomp's Python binding (pyseccomp)")
    raise SandboxUnavailable(
        f"No sandbox mode that isolates snippets works here ({reasons}); refusing to run "
        f"untrusted code. To run snippets: {'; '.join(steps) or 'see the reasons above'}."
    )


class Executor:
    """Runs untrusted snippets in sandboxes from a warm pool; user errors are results, not raises."""

    def __init__(
        self,
        settings: Settings,
        observer: RunObserver | None = None,
        *,
        clock: Callable[[], float] = time.time,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        """`clock` (Unix seconds) times sessions' idle expiry and lifetime; with `telemetry` on,
        each run and session cell is a span (`sandbox.run`, `sandbox.cell`)."""
        self.settings = settings
        self.packages = PythonPackages.load(packages_dir(settings))
        self.runtimes = RuntimeRegistry.from_settings(settings, self.packages)
        self._observer = observer
        self._clock = clock
        self._telemetry = telemetry
        self._pool: ZygotePool | None = None
        self._data_pool: ZygotePool | None = None  # zygotes with the packages preloaded
        self._preloaded: list[str] = []
        self._node: NodePool | None = None
        self._plan: LaunchPlan | None = None
        self._isolation = _Isolation([])
        # One set of identities for the pools and the sessions: no two sandboxes share a user.
        self._identities = SandboxIdentities(_IDENTITIES)
        self._sessions: SessionManager | None = None

    @property
    def sessions(self) -> SessionManager:
        """The sessions of this node (after `start`); `SandboxUnavailable` before."""
        if self._sessions is None:
            raise SandboxUnavailable("the executor is not started")
        return self._sessions

    @property
    def layers(self) -> list[IsolationLayer]:
        """The isolation layers in force (after `start`)."""
        return self._isolation.layers

    def pool_stats(self) -> PoolStats | None:
        """Queue depth and pool size, or None before `start`."""
        return self._pool.stats() if self._pool else None

    @property
    def preloaded(self) -> list[str]:
        """The modules the data-science sandboxes import before forking (empty without them)."""
        return list(self._preloaded) if self._data_pool is not None else []

    def sandbox_pids(self) -> dict[str, list[int]]:
        """The sandboxes' top process ids by kind ("plain", "preloaded" zygotes, "sessions"):
        for memory accounting."""
        pools = {"plain": self._pool, "preloaded": self._data_pool}
        pids = {name: pool.pids() for name, pool in pools.items() if pool is not None}
        if self._sessions is not None:
            pids["sessions"] = self._sessions.pids()
        return pids

    def data_pool_stats(self) -> PoolStats | None:
        """The same for the sandboxes with the packages preloaded, or None when there are none."""
        return self._data_pool.stats() if self._data_pool else None

    async def start(self) -> None:
        """Probe the host, refuse to run without isolation, and warm the pool."""
        isolation = _Isolation(await asyncio.to_thread(probe_isolation))
        mode = choose_sandbox_mode(self.settings, isolation.layers)
        has_seccomp = isolation.active("seccomp")
        # Two stacked filters: the child loads the big one while it waits for a request.
        bpf = await asyncio.to_thread(build_filter_bpf, lock_limits=False) if has_seccomp else b""
        limits_bpf = await asyncio.to_thread(build_limits_bpf) if has_seccomp else b""
        self._plan = await asyncio.to_thread(
            prepare_launch,
            mode=mode,
            seccomp_bpf=bpf,
            seccomp_limits_bpf=limits_bpf,
            scratch_bytes=self.settings.execution_scratch_bytes,
            scratch_files=self.settings.execution_scratch_files,
            first_uid=self.settings.execution_sandbox_first_uid,
            first_gid=self.settings.execution_sandbox_first_gid,
            max_threads=self.settings.execution_max_threads,
            languages=[runtime.language for runtime in self.runtimes],
            # Python and JavaScript share the limits of the settings table.
            limit_defaults=self.runtimes.resolve("python").default_limits.model_dump(),
            limit_maxima=self.runtimes.resolve("python").max_limits.model_dump(),
            packages_dir=self.packages.path if self.packages else None,
        )
        binary = node_binary()
        if binary is not None and any(r.language == "node" for r in self.runtimes):
            node_bpf = (
                await asyncio.to_thread(build_filter_bpf, allow_exec=True) if has_seccomp else b""
            )
            self._node = NodePool(
                self._plan,
                binary,
                node_bpf,
                heap_bytes=self.settings.execution_default_memory_bytes,
                max_workers=self.settings.execution_node_max_workers,
                max_queue=self.settings.execution_max_queue,
                runs_per_worker=self.settings.execution_node_runs_per_worker,
            )
        size = self.settings.execution_pool_size or 2 * usable_cpus()
        per_tenant = self.settings.execution_max_sandboxes_per_tenant or max(size - 1, 1)
        self._pool = ZygotePool(
            self._plan,
            size,
            self.settings.execution_max_queue,
            self.settings.execution_runs_per_worker,
            identities=self._identities,
            max_per_tenant=per_tenant,
        )
        self._sessions = SessionManager(
            self.settings,
            self.runtimes,
            self._plan,
            self._identities,
            cells_at_once=(size, per_tenant),
            clock=self._clock,
            observer=self._observer,
            telemetry=self._telemetry,
            preload=self._wanted_preload() if self.settings.execution_session_preload else None,
        )
        await asyncio.gather(
            self._pool.start(), self._start_data_pool(self._plan), self._sessions.start()
        )
        in_force = {BUBBLEWRAP: mode == "bubblewrap", OWN_NAMESPACES: mode == "namespaces"}
        layers = [
            IsolationLayer(layer.name, in_force.get(layer.name, layer.available), layer.detail)
            if layer.name != "landlock"
            else IsolationLayer("landlock", self._pool.landlock_abi > 0, layer.detail)
            for layer in isolation.layers
        ]
        self._isolation = _Isolation(layers)
        active = ", ".join(layer.name for layer in layers if layer.available) or "NONE"
        _log.info("sandbox pool of %d ready (%s); isolation layers: %s", size, mode, active)

    def _wanted_preload(self) -> list[str]:
        """The preload modules the settings name that the runtime's packages offer."""
        wanted = [m.strip() for m in self.settings.execution_python_preload.split(",") if m.strip()]
        return self.packages.available(wanted) if self.packages else []

    async def _start_data_pool(self, plan: LaunchPlan) -> None:
        """Start the preloaded sandboxes; without them, runs import their packages themselves."""
        size = self.settings.execution_data_pool_size
        preload = self._wanted_preload()
        if not size or not preload:
            return
        pool = ZygotePool(
            plan.with_preload(preload),
            size,
            self.settings.execution_max_queue,
            self.settings.execution_runs_per_worker,
            identities=self._identities,
            max_per_tenant=self.settings.execution_max_sandboxes_per_tenant or max(size - 1, 1),
            first_index=_DATA_POOL_FIRST_INDEX,
        )
        try:
            await pool.start()
        except SandboxUnavailable as exc:
            _log.error("the data-science sandboxes did not start (runs import packages): %s", exc)
            await pool.close()
            return
        self._data_pool = pool
        self._preloaded = preload
        _log.info("%d sandboxes with %s preloaded ready", size, ", ".join(preload))

    async def close(self) -> None:
        """Stop the sessions and the pools, and remove the runtime directory."""
        if self._sessions is not None:
            await self._sessions.close()
            self._sessions = None
        if self._node is not None:
            await self._node.close()
            self._node = None
        if self._data_pool is not None:
            await self._data_pool.close()
            self._data_pool = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._plan is not None:
            await asyncio.to_thread(shutil.rmtree, self._plan.runtime_dir, True)
            self._plan = None

    async def run(
        self,
        request: ExecutionRequest,
        tenant: str = "default",
        on_output: Callable[[OutputEvent], None] | None = None,
    ) -> ExecutionResult:
        """Run one snippet; raises only for bad requests (4xx) and a full queue (503).

        `tenant` matters to the `node` runtime, whose warm workers never serve two tenants.
        `on_output` is called with each piece of stdout and stderr and each result as the run
        produces them (the `node` runtime gives its output at the end, in the result only).
        Cancelling the call kills the run.
        """
        runtime = self.runtimes.resolve(request.language)
        limits = runtime.limits_for(request.limits)
        frame = {
            "language": runtime.language,
            "code": request.entry_source,
            "files": self._files(request, runtime),
            "figure_format": request.figure_format,
            "stream": on_output is not None,
            "stdin": request.stdin,
            "args": request.args,
            "env": request.env,
            "limits": limits.model_dump(),
        }
        if self._pool is None:
            raise SandboxUnavailable("the executor is not started")
        span = run_span(
            self._telemetry,
            "sandbox.run",
            language=runtime.language,
            wall_time_limit_ms=limits.wall_time_ms,
            cpu_time_limit_ms=limits.cpu_time_ms,
        )
        with span:
            result = await self._run_in_sandbox(
                request, runtime, limits, frame=frame, tenant=tenant, on_output=on_output
            )
            record_run(span, result)
        if self._observer is not None:
            self._observer(runtime.language, result.status, result.usage.wall_ms / 1000)
        return result

    async def _run_in_sandbox(
        self,
        request: ExecutionRequest,
        runtime: Runtime,
        limits: Limits,
        *,
        frame: dict[str, Any],
        tenant: str,
        on_output: Callable[[OutputEvent], None] | None,
    ) -> ExecutionResult:
        """The run's result; a sandbox that fails or reports nonsense is the run's internal error."""
        try:
            if runtime.language == "node":
                raw = await self._run_node(tenant, frame, limits.wall_time_ms / 1000)
            else:
                wait_s = limits.wall_time_ms / 1000 + _GUARD_S
                pool = self._pool_for(request, runtime)
                listener = output_listener(on_output) if on_output is not None else None
                raw = await pool.run(frame, wait_s, tenant=tenant, listener=listener)
            return to_result(raw, runtime, limits)
        except ZygoteFailed as exc:
            _log.error("sandbox failed during a %s run: %s", runtime.language, exc)
            return internal_error_result(
                runtime, "The sandbox failed while running this snippet; it has been replaced."
            )
        except (ValueError, TypeError, KeyError) as exc:
            # What the sandbox reported could not be read (a pydantic error is a ValueError): the
            # snippet wrote something we did not expect. Its own run fails, never the service.
            _log.warning("unreadable report from a %s run: %s", runtime.language, exc)
            return internal_error_result(runtime, "The sandbox's report of this run was malformed.")

    def check(self, request: ExecutionRequest) -> None:
        """Raise what `run` would raise for a bad request (422), without running it: a caller
        that streams says so before its answer has begun."""
        runtime = self.runtimes.resolve(request.language)
        runtime.limits_for(request.limits)
        self._files(request, runtime)

    def _pool_for(self, request: ExecutionRequest, runtime: Runtime) -> ZygotePool:
        """The preloaded sandboxes for Python code that imports a package, else the plain ones."""
        assert self._pool is not None
        if (
            self._data_pool is not None
            and self.packages is not None
            and runtime.language == "python"
            and self.packages.imported_by(_python_sources(request))
        ):
            return self._data_pool
        return self._pool

    async def _run_node(self, tenant: str, frame: dict[str, Any], wall_s: float) -> dict[str, Any]:
        if self._node is None:
            raise SandboxUnavailable("the node runtime is not running")
        return await self._node.run(tenant, frame, wall_s)

    def _files(self, request: ExecutionRequest, runtime: Runtime) -> list[tuple[str, str, bool]]:
        """The files written to the run's directory: (path, text or base64, is base64)."""
        self._check_size(request)
        files = file_triples(request.files or ())
        if runtime.language == "python":
            if any(name.startswith(f"{_PYTHON_ENTRY}/") for name, _, _ in files):
                message = f"`{_PYTHON_ENTRY}` is the file that runs; it cannot be a folder."
                raise InvalidSnippet(message, [FieldError("/files", message, "reserved_name")])
            if any(name == _PYTHON_ENTRY for name, _, _ in files) and request.code is not None:
                message = f"`{_PYTHON_ENTRY}` holds the snippet's `code`; name the file otherwise."
                raise InvalidSnippet(message, [FieldError("/files", message, "reserved_name")])
            # Without `code`, the entry file is run as main.py (written once, below).
            files = [f for f in files if f[0] != _PYTHON_ENTRY]
            files.append((_PYTHON_ENTRY, request.entry_source, False))
        return files

    def _check_size(self, request: ExecutionRequest) -> None:
        check_code(request.entry_source, self.settings.execution_max_code_bytes)
        check_files(request.files or [], self.settings)


def _python_sources(request: ExecutionRequest) -> list[str]:
    """The code of a Python request: its snippet or entry file, and its other `.py` files."""
    files = [f.content for f in request.files or () if f.name.endswith(".py")]
    return [request.entry_source, *files]
