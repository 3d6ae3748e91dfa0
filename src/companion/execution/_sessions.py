"""`SessionManager`: stateful sessions, each a sandbox of its own, with limits and a lifecycle.

A session is opened from a spare sandbox started ahead of need (a few milliseconds) or, when none
is left, from a new one. Each has its own zygote, namespaces, scratch filesystem and user, like a
pool's sandbox, and one child that keeps its interpreter between cells (`_session.py`).

Sessions end when their owner deletes them, after `idle_timeout_s` without a call, at the maximum
lifetime, or when their process dies (its memory cap, a crash, a cell that would not stop). An
ended session is remembered for a while, so calls to it say why it ended (410) instead of 404.
Time comes from an injected clock: `expire()` ends what is due, and tests advance the clock.

Sessions live in this process: a restart ends them all (see docs/execution.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from companion.config import Settings
from companion.errors import Conflict, FieldError, PayloadTooLarge
from companion.execution._child_run import Capture
from companion.execution._errors import (
    ExecutorBusy,
    InvalidSnippet,
    LimitAboveMaximum,
    SandboxUnavailable,
    SessionCapacityReached,
    SessionEnded,
    SessionLimitReached,
    SessionNotFound,
    WorkspaceFileNotFound,
)
from companion.execution._identities import SandboxIdentities
from companion.execution._inputs import check_code, check_files, file_triples
from companion.execution._launcher import LaunchPlan
from companion.execution._models import (
    CellRequest,
    CellResult,
    ExecutionResult,
    LimitOverrides,
    Limits,
    OutputEvent,
    OutputFile,
    SessionCreate,
    SessionInfo,
    SourceFile,
    WorkspaceFile,
    WorkspaceListing,
    check_relative_path,
)
from companion.execution._outcome import internal_error_result, output_listener, to_result
from companion.execution._pool import reserve_fds
from companion.execution._runtimes import Runtime, RuntimeRegistry
from companion.execution._session import INTERRUPT_GRACE_S, OperationOutcome, SessionProcess
from companion.execution._zygote import ZygoteFailed, returned_report_bytes, service_fds_per_zygote
from companion.telemetry import NO_TELEMETRY, Telemetry, record_run, run_span

__all__ = ["SessionManager", "SessionStats"]

# How long closing waits for the background tasks (idle sweeps, spare fills) it cancelled.
_CLOSE_TASKS_S = 30.0

_log = logging.getLogger("companion.execution")
SESSION_LANGUAGES = ("python", "javascript")
_START_TIMEOUT_S = 30.0
_ID_BYTES = 18  # 144 random bits: ids cannot be guessed
_ENDED_KEPT = 1024  # ended sessions remembered (to say why they ended), the oldest forgotten first
_LISTED_MAX = 10_000  # files a workspace listing returns
_ENTRY_RECORD_BYTES = 1024  # one listing record at most (a path of up to 900 characters)
_SWEEP_INTERVAL_S = 1.0
# Output a file operation keeps (a cell's thread may still print): read, never returned.
_FILE_OUTPUT_BYTES = 65536
_FILE_OPERATION_S = 30.0
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class SessionStats:
    """A snapshot for metrics and `/readyz`."""

    active: int
    max_sessions: int
    spares: int  # ready now, every language together
    spares_wanted: int  # kept ready when none are being replaced
    started: int
    ended: int


class _CellGate:
    """How many cells run at once on this node, and per tenant: each session is a process of its
    own, so without a gate a tenant's busy cells would take every core from everyone else's runs
    and cells. Waiters queue (at most `max_queue`, then `ExecutorBusy`), and a tenant at its
    share waits while others' cells go ahead."""

    def __init__(self, size: int, per_tenant: int, max_queue: int) -> None:
        self._size = size
        self._per_tenant = per_tenant
        self._max_queue = max_queue
        self._running: dict[str, int] = {}
        self._waiting = 0
        self._changed = asyncio.Condition()

    def _may_start(self, tenant: str) -> bool:
        total = sum(self._running.values())
        return total < self._size and self._running.get(tenant, 0) < self._per_tenant

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        """Hold a running cell's slot for `tenant`."""
        async with self._changed:
            if not self._may_start(tenant):
                if self._waiting >= self._max_queue:
                    raise ExecutorBusy(
                        f"{self._size} cells are running and {self._waiting} are queued on this "
                        "node.",
                        retry_after_s=1.0,
                    )
                self._waiting += 1
                try:
                    await self._changed.wait_for(lambda: self._may_start(tenant))
                finally:
                    self._waiting -= 1
            self._running[tenant] = self._running.get(tenant, 0) + 1
        try:
            yield
        finally:
            async with self._changed:
                self._running[tenant] -= 1
                if not self._running[tenant]:
                    del self._running[tenant]
                self._changed.notify_all()


@dataclass(eq=False)
class _Session:
    id: str
    tenant: str
    runtime: Runtime
    limits: Limits
    idle_timeout_s: float
    created_at: float
    process: SessionProcess | None
    last_used_at: float = 0.0
    execution_count: int = 0
    ended: str | None = None
    busy: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def expires_at(self, max_lifetime_s: float) -> float:
        return min(self.last_used_at + self.idle_timeout_s, self.created_at + max_lifetime_s)


class SessionManager:
    """Every session of this node: create, run cells, files, list, end, and expire them."""

    def __init__(
        self,
        settings: Settings,
        runtimes: RuntimeRegistry,
        plan: LaunchPlan,
        identities: SandboxIdentities,
        *,
        cells_at_once: tuple[int, int],
        clock: Clock = time.time,
        observer: Callable[[str, str, float], None] | None = None,
        node: str | None = None,
        preload: list[str] | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        """`cells_at_once`: cells running at once in all and per tenant (the plain pool's size
        and share: cells take the same cores); `preload`: modules Python sessions' sandboxes
        import before their first cell; `telemetry`: each cell is a `sandbox.cell` span when
        on."""
        self._settings = settings
        self._runtimes = runtimes
        self._identities = identities
        self._clock = clock
        self._observer = observer
        self._telemetry = telemetry
        self.node = node or settings.node
        self._max = settings.execution_max_sessions
        self._max_per_tenant = settings.execution_max_sessions_per_tenant
        self._max_lifetime_s = settings.execution_session_max_lifetime_s
        self._cpu_budget_ms = int(self._max_lifetime_s * 1000)
        languages = [r.language for r in runtimes if r.language in SESSION_LANGUAGES]
        self._plans = {
            lang: plan.for_session(lang, self._cpu_budget_ms, preload if lang == "python" else None)
            for lang in languages
        }
        self._spares: dict[str, deque[SessionProcess]] = {lang: deque() for lang in languages}
        self._sessions: dict[str, _Session] = {}
        self._ended: OrderedDict[str, _Session] = OrderedDict()
        self._opening: dict[str, int] = {}  # sessions each tenant is opening now
        self._filling: set[str] = set()  # languages whose spares are being started
        self._cells = _CellGate(*cells_at_once, settings.execution_max_queue)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sandboxes = 0  # numbers the session sandboxes (their scratch, their log lines)
        self._started = 0
        self._ended_count = 0
        self._closed = False

    @property
    def enabled(self) -> bool:
        """False when the settings turn sessions off (`execution_max_sessions` = 0)."""
        return self._max > 0

    @property
    def closed(self) -> bool:
        """True once `close` was called (it may be called while a session opens)."""
        return self._closed

    async def start(self) -> None:
        """Start the spare sandboxes and the task that ends idle sessions."""
        if not self.enabled:
            return
        spares = self._settings.execution_session_spares
        reserve_fds((self._max + spares * len(self._plans)) * service_fds_per_zygote(["python"]))
        await asyncio.gather(*(self._fill_spares(lang) for lang in self._plans))
        self._spawn(self._sweep_forever())

    def stats(self) -> SessionStats:
        """Sessions open now, the cap, the spares ready, and the totals opened and ended."""
        return SessionStats(
            active=len(self._sessions),
            max_sessions=self._max,
            spares=sum(len(spares) for spares in self._spares.values()),
            spares_wanted=self._settings.execution_session_spares * len(self._spares),
            started=self._started,
            ended=self._ended_count,
        )

    def pids(self) -> list[int]:
        """The top process of every session's sandbox and every spare's: for memory accounting."""
        processes = [s.process for s in self._sessions.values() if s.process is not None]
        processes += [p for spares in self._spares.values() for p in spares]
        return [pid for process in processes if (pid := process.pid) is not None]

    def sandbox_pid(self, tenant: str, session_id: str) -> int | None:
        """The top process of the session's sandbox (bubblewrap's, under bubblewrap), None once
        it has ended: for operators and memory accounting."""
        process = self._find(tenant, session_id).process
        return process.pid if process is not None else None

    # Opening, listing, ending.

    async def create(self, tenant: str, request: SessionCreate) -> SessionInfo:
        """Open a session for `tenant`; 429 at the tenant's cap, 503 at the node's."""
        if not self.enabled or self._closed:
            raise SandboxUnavailable("sessions are turned off on this node")
        runtime = self._runtimes.resolve(request.language)
        if runtime.language not in self._plans:
            message = f"Sessions run {' or '.join(self._plans)}, not {runtime.language!r}."
            raise InvalidSnippet(message, [FieldError("/language", message, "unsupported")])
        limits = runtime.limits_for(request.limits)
        idle_timeout_s = self._idle_timeout(request.idle_timeout_s)
        self._check_capacity(tenant)
        self._opening[tenant] = self._opening.get(tenant, 0) + 1
        try:
            process = await self._open_process(runtime.language, limits)
        finally:
            self._opening[tenant] -= 1
            if not self._opening[tenant]:
                del self._opening[tenant]
        now = self._clock()
        session = _Session(
            id=f"ses_{secrets.token_urlsafe(_ID_BYTES)}",
            tenant=tenant,
            runtime=runtime,
            limits=limits,
            idle_timeout_s=idle_timeout_s,
            created_at=now,
            last_used_at=now,
            process=process,
        )
        self._sessions[session.id] = session
        self._started += 1
        if self.closed:  # closed while it opened: never leave a sandbox behind
            await self._end(session, "the service is shutting down")
        return self._info(session)

    def get(self, tenant: str, session_id: str) -> SessionInfo:
        """The session (ended ones too, saying why); 404 for another tenant's or an unknown id."""
        return self._info(self._find(tenant, session_id))

    def holds(self, session_id: str) -> bool:
        """Whether this node holds the session, or remembers it ended here (any tenant's)."""
        return session_id in self._sessions or session_id in self._ended

    def list_sessions(self, tenant: str) -> list[SessionInfo]:
        """The tenant's open sessions, oldest first."""
        return [self._info(s) for s in self._sessions.values() if s.tenant == tenant]

    async def delete(self, tenant: str, session_id: str) -> None:
        """End the session (at once, even mid-cell) and forget it; idempotent for ended ones."""
        session = self._find(tenant, session_id)
        await self._end(session, "it was deleted by its owner")
        self._ended.pop(session.id, None)

    async def expire(self) -> list[str]:
        """End every session that is due: idle past its timeout (unless a call is using it or
        waiting for it), past its maximum lifetime, or whose process has died. Returns their ids.
        Each is checked again right before it is ended: ending one takes a moment, and a call may
        have come for another meanwhile."""
        ended: list[str] = []
        for session in list(self._sessions.values()):
            reason = self._due(session, self._clock())
            if reason is not None:
                await self._end(session, reason)
                ended.append(session.id)
        return ended

    def _due(self, session: _Session, now: float) -> str | None:
        """Why `session` must end now, or None."""
        if session.ended is not None:
            return None
        in_use = session.busy or session.lock.locked()
        process = session.process
        if process is not None and process.ended is not None and not in_use:
            return process.ended
        if now >= session.created_at + self._max_lifetime_s:
            return f"it reached its maximum lifetime ({self._max_lifetime_s:g} s)"
        if not in_use and now >= session.last_used_at + session.idle_timeout_s:
            return f"it was idle for {session.idle_timeout_s:g} s"
        return None

    async def close(self) -> None:
        """End every session and stop the spares."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a spare's start that is cancelled kills its sandbox, which is bounded
            # too; a shutdown never waits forever on one.
            done, pending = await asyncio.wait(tasks, timeout=_CLOSE_TASKS_S)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved, as gather would: each logs its own failure
            for task in pending:
                _log.error(
                    "session task %s did not stop within %g s", task.get_name(), _CLOSE_TASKS_S
                )
        for session in list(self._sessions.values()):
            await self._end(session, "the service shut down")
        for spares in self._spares.values():
            while spares:
                await self._close_process(spares.popleft())

    # Cells and files.

    async def execute(
        self,
        tenant: str,
        session_id: str,
        request: CellRequest,
        on_output: Callable[[OutputEvent], None] | None = None,
    ) -> CellResult:
        """Run one cell in the session (cells of one session run one at a time, in order)."""
        session, limits = self._checked_cell(tenant, session_id, request)
        span = run_span(
            self._telemetry,
            "sandbox.cell",
            language=session.runtime.language,
            wall_time_limit_ms=limits.wall_time_ms,
            cpu_time_limit_ms=limits.cpu_time_ms,
        )
        with span:
            result, number = await self._run_cell(session, limits, request, tenant, on_output)
            record_run(span, result)
        if self._observer is not None:
            self._observer(session.runtime.language, result.status, result.usage.wall_ms / 1000)
        return CellResult(
            **result.model_dump(),
            session_id=session.id,
            execution_count=number,
            session_ended=session.ended,
        )

    async def _run_cell(
        self,
        session: _Session,
        limits: Limits,
        request: CellRequest,
        tenant: str,
        on_output: Callable[[OutputEvent], None] | None,
    ) -> tuple[ExecutionResult, int]:
        """The cell's result and number in its session."""
        # The session first, then a running cell's slot: calls queued on one session hold no
        # slot while they wait for it.
        async with self._using(session) as process, self._cells.slot(tenant):
            number = session.execution_count + 1
            session.execution_count = number  # taken even if the cell is cancelled
            frame = {
                "op": "cell",
                "number": number,
                "language": session.runtime.language,
                "code": request.code,
                "stdin": request.stdin,
                "files": file_triples(request.files or ()),
                "figure_format": request.figure_format,
                "stream": on_output is not None,
                "limits": limits.model_dump(),
            }
            capture = Capture(
                limits.max_output_bytes,
                returned_report_bytes(limits.model_dump()),
                max_files=limits.max_returned_files,
                listener=output_listener(on_output) if on_output is not None else None,
            )
            wall_s = limits.wall_time_ms / 1000
            # QuickJS stops on its own CPU clock, not on SIGINT: a JavaScript cell starved of CPU
            # gets longer to reach it before it is killed.
            javascript = session.runtime.language == "javascript"
            grace_s = max(INTERRUPT_GRACE_S, 2 * wall_s) if javascript else INTERRUPT_GRACE_S
            outcome = await self._operate(session, process, frame, wall_s, capture, grace_s=grace_s)
        try:
            return to_result(outcome.raw, session.runtime, limits), number
        except (ValueError, TypeError, KeyError) as exc:
            _log.warning("unreadable report from a session cell: %s", exc)
            malformed = "The sandbox's report of this cell was malformed."
            return internal_error_result(session.runtime, malformed), number

    def check(self, tenant: str, session_id: str, request: CellRequest) -> None:
        """Raise what `execute` would before running the cell (404, 410, 422), without running
        it: a caller that streams says so before its answer has begun."""
        self._checked_cell(tenant, session_id, request)

    def _checked_cell(
        self, tenant: str, session_id: str, request: CellRequest
    ) -> tuple[_Session, Limits]:
        """The live session and the cell's limits (the session's, with the cell's own)."""
        session = self._live(tenant, session_id)
        check_code(request.code, self._settings.execution_max_code_bytes)
        check_files(request.files or [], self._settings)
        overrides = session.limits.model_dump() | request.limits.model_dump(exclude_none=True)
        return session, session.runtime.limits_for(LimitOverrides(**overrides))

    async def put_files(self, tenant: str, session_id: str, files: list[SourceFile]) -> None:
        """Write files into the session's workspace (replacing any of the same path)."""
        session = self._live(tenant, session_id)
        check_files(files, self._settings)
        outcome = await self._file_operation(
            session, {"op": "put", "files": file_triples(files)}, Capture(_FILE_OUTPUT_BYTES)
        )
        self._raise_for_file_error(outcome, ", ".join(f.name for f in files[:3]), writing=True)

    async def list_files(self, tenant: str, session_id: str) -> WorkspaceListing:
        """The regular files of the session's workspace, in path order."""
        session = self._live(tenant, session_id)
        capture = Capture(
            _FILE_OUTPUT_BYTES, _LISTED_MAX * _ENTRY_RECORD_BYTES, max_entries=_LISTED_MAX
        )
        frame = {"op": "list", "max_entries": _LISTED_MAX}
        outcome = await self._file_operation(session, frame, capture)
        self._raise_for_file_error(outcome, "")
        try:
            files = [WorkspaceFile.model_validate(entry) for entry in capture.entries]
            for entry in files:
                check_relative_path(entry.path)
        except ValueError as exc:  # written by a process that runs user code: checked
            raise Conflict(f"the session's file listing was malformed: {exc}") from None
        files.sort(key=lambda entry: entry.path)
        return WorkspaceListing(files=files, truncated="entries" in capture.truncated)

    async def read_file(self, tenant: str, session_id: str, path: str) -> OutputFile:
        """One file of the session's workspace; 404 when there is none at `path`."""
        session = self._live(tenant, session_id)
        _checked_path(path)
        max_bytes = self.max_download_bytes
        capture = Capture(
            _FILE_OUTPUT_BYTES, returned_report_bytes(_download_limits(max_bytes)), max_files=1
        )
        frame = {"op": "get", "path": path, "max_bytes": max_bytes}
        outcome = await self._file_operation(session, frame, capture)
        self._raise_for_file_error(outcome, path)
        try:
            (record,) = capture.files
            file = OutputFile.model_validate(record)
        except ValueError as exc:
            raise Conflict(f"the session's file {path!r} came back malformed: {exc}") from None
        if file.path != path:
            raise Conflict(f"the session answered with {file.path!r} for {path!r}")
        return file

    async def delete_file(self, tenant: str, session_id: str, path: str) -> None:
        """Remove one file of the session's workspace; 404 when there is none at `path`."""
        session = self._live(tenant, session_id)
        _checked_path(path)
        outcome = await self._file_operation(
            session, {"op": "delete", "path": path}, Capture(_FILE_OUTPUT_BYTES)
        )
        self._raise_for_file_error(outcome, path)

    @property
    def max_download_bytes(self) -> int:
        """The largest workspace file a download returns: as large as a file can be written."""
        settings = self._settings
        return max(settings.execution_max_file_bytes, settings.execution_max_input_bytes)

    # Internals.

    def _idle_timeout(self, asked_s: float | None) -> float:
        most = self._settings.execution_session_max_idle_timeout_s
        if asked_s is None:
            return self._settings.execution_session_idle_timeout_s
        if asked_s > most:
            message = f"idle_timeout_s={asked_s:g} is above the maximum of {most:g}."
            raise LimitAboveMaximum(message, [FieldError("/idle_timeout_s", message, "too_large")])
        return asked_s

    def _check_capacity(self, tenant: str) -> None:
        now = self._clock()
        mine = [s for s in self._sessions.values() if s.tenant == tenant]
        if len(mine) + self._opening.get(tenant, 0) >= self._max_per_tenant:
            raise SessionLimitReached(
                f"This tenant holds {len(mine)} sessions, the most it may; delete one or let one "
                "expire.",
                retry_after_s=self._next_expiry_s(mine, now),
            )
        if len(self._sessions) + sum(self._opening.values()) >= self._max:
            raise SessionCapacityReached(
                f"This node holds {len(self._sessions)} sessions, the most it may.",
                retry_after_s=self._next_expiry_s(list(self._sessions.values()), now),
            )

    def _next_expiry_s(self, sessions: list[_Session], now: float) -> float:
        """Seconds until the first of `sessions` is due to expire (at least one)."""
        soonest = min((s.expires_at(self._max_lifetime_s) for s in sessions), default=now + 1)
        return float(max(1, math.ceil(soonest - now)))

    async def _open_process(self, language: str, limits: Limits) -> SessionProcess:
        """A spare sandbox (a new one when none is ready), given the session's limits."""
        spares = self._spares[language]
        process = None
        while spares:
            candidate = spares.popleft()
            if candidate.alive:
                process = candidate
                break
            self._spawn(self._close_process(candidate))
        self._spawn(self._fill_spares(language))
        if process is None:
            try:
                process = await self._start_process(language)
            except (ZygoteFailed, OSError) as exc:
                raise SandboxUnavailable(f"a session's sandbox could not start: {exc}") from None
        session_limits = {**limits.model_dump(), "cpu_time_ms": self._cpu_budget_ms}
        try:
            await process.begin(session_limits)
        except BaseException as exc:
            await self._close_process(process)
            if isinstance(exc, ZygoteFailed):
                raise SandboxUnavailable(f"a session's sandbox failed to start: {exc}") from None
            raise
        return process

    async def _start_process(self, language: str) -> SessionProcess:
        slot = self._identities.take()
        self._sandboxes += 1
        try:
            # Numbered apart from the pools' zygotes, whose scratch directories (mode `none`)
            # are named by number too.
            index = 1_000_000 + self._sandboxes
            plan = self._plans[language]
            return await SessionProcess.start(plan, index, slot, language, _START_TIMEOUT_S)
        except BaseException:
            self._identities.give(slot)
            raise

    async def _fill_spares(self, language: str) -> None:
        """Start spares until `language` has its number; one fill per language at a time (each
        open asks for one: concurrent fills overshot)."""
        if language in self._filling:
            return
        self._filling.add(language)
        try:
            spares = self._spares[language]
            while not self._closed and len(spares) < self._settings.execution_session_spares:
                try:
                    process = await self._start_process(language)
                except Exception as exc:  # the next session starts one itself, and says why
                    _log.error("could not start a spare %s session sandbox: %s", language, exc)
                    return
                if self.closed:
                    await self._close_process(process)
                    return
                spares.append(process)
        finally:
            self._filling.discard(language)

    async def _close_process(self, process: SessionProcess) -> None:
        """Close a session's sandbox, then free its identity. Shielded: a caller cancelled
        meanwhile (a hung-up client) leaves it closing, never half-closed with its identity
        given to another sandbox."""
        closing = asyncio.ensure_future(process.close())
        closing.add_done_callback(lambda _: self._identities.give(process.zygote.slot))
        await asyncio.shield(closing)

    def _find(self, tenant: str, session_id: str) -> _Session:
        session = self._sessions.get(session_id) or self._ended.get(session_id)
        if session is None or session.tenant != tenant:
            raise SessionNotFound(f"No session {session_id!r}.")
        return session

    def _live(self, tenant: str, session_id: str) -> _Session:
        session = self._find(tenant, session_id)
        if session.ended is not None:
            raise SessionEnded(f"Session {session_id!r} has ended: {session.ended}.")
        return session

    @contextlib.asynccontextmanager
    async def _using(self, session: _Session) -> Any:
        """The session's process, held for one operation (operations queue in order)."""
        async with session.lock:
            process = session.process
            if session.ended is not None or process is None:
                raise SessionEnded(f"Session {session.id!r} has ended: {session.ended}.")
            if process.ended is not None:
                await self._end(session, process.ended)
                raise SessionEnded(f"Session {session.id!r} has ended: {session.ended}.")
            session.busy = True
            session.last_used_at = self._clock()
            try:
                yield process
            finally:
                session.busy = False
                session.last_used_at = self._clock()

    async def _operate(
        self,
        session: _Session,
        process: SessionProcess,
        frame: dict[str, Any],
        wall_s: float,
        capture: Capture,
        *,
        grace_s: float = INTERRUPT_GRACE_S,
    ) -> OperationOutcome:
        try:
            outcome = await process.operate(frame, wall_s=wall_s, capture=capture, grace_s=grace_s)
        except ZygoteFailed as exc:
            await self._end(session, process.ended or f"its sandbox failed ({exc})")
            raise SessionEnded(f"Session {session.id!r} has ended: {session.ended}.") from None
        if outcome.ended:
            await self._end(session, process.ended or "its process ended")
        return outcome

    async def _file_operation(
        self, session: _Session, frame: dict[str, Any], capture: Capture
    ) -> OperationOutcome:
        async with self._using(session) as process:
            outcome = await self._operate(session, process, frame, _FILE_OPERATION_S, capture)
        if outcome.ended:
            raise SessionEnded(f"Session {session.id!r} has ended: {session.ended}.")
        return outcome

    def _raise_for_file_error(
        self, outcome: OperationOutcome, path: str, *, writing: bool = False
    ) -> None:
        """The typed error for a file operation that failed in the sandbox: 404 for no such
        file, 413 for a full workspace or a file over its size limit, 409 for the rest (a folder
        where a file goes, say)."""
        if outcome.raw.get("exit_code") == 0 and not outcome.raw.get("killed"):
            return
        name, message = _error_of(outcome.raw.get("error", ""))
        if "No space left" in message or "Disk quota" in message:
            raise PayloadTooLarge(f"The session's workspace is full: {message}.")
        if "File too large" in message:
            raise PayloadTooLarge(
                f"{path!r} is larger than the session's max_file_bytes allows: {message}."
            )
        if "above the" in message and name == "OSError":
            raise PayloadTooLarge(f"File {path!r} is too large to download: {message}.")
        missing = {"FileNotFoundError", "IsADirectoryError", "NotADirectoryError"}
        if name in missing and not writing:
            raise WorkspaceFileNotFound(f"No file {path!r} in the session's workspace ({message}).")
        raise Conflict(
            f"Could not do that to {path!r} in the session's workspace: {name}: {message}"
        )

    async def _end(self, session: _Session, reason: str) -> None:
        """End a session (idempotent): its sandbox is closed and its identity freed."""
        if session.ended is not None:
            return
        session.ended = reason
        self._sessions.pop(session.id, None)
        self._ended[session.id] = session
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        self._ended_count += 1
        process, session.process = session.process, None
        if process is not None:
            await self._close_process(process)
        _log.info("session %s ended: %s", session.id, reason)

    def _info(self, session: _Session) -> SessionInfo:
        busy = session.busy or session.lock.locked()
        return SessionInfo(
            id=session.id,
            language=session.runtime.language,
            version=session.runtime.version,
            state="ended" if session.ended is not None else "busy" if busy else "idle",
            ended_reason=session.ended,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            expires_at=session.expires_at(self._max_lifetime_s),
            idle_timeout_s=session.idle_timeout_s,
            execution_count=session.execution_count,
            limits=session.limits,
            node=self.node,
        )

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL_S)
            try:
                await self.expire()
            except Exception:  # logged; the next sweep tries again
                _log.exception("ending expired sessions failed")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _checked_path(path: str) -> None:
    try:
        check_relative_path(path)
    except ValueError as exc:
        raise InvalidSnippet(str(exc), [FieldError("/path", str(exc), "invalid_path")]) from None


def _download_limits(max_bytes: int) -> dict[str, int]:
    return {"max_output_bytes": 0, "max_returned_bytes": max_bytes, "max_returned_files": 1}


def _error_of(raw: str) -> tuple[str, str]:
    """The name and message of a child's error report ("", "" without one)."""
    try:
        report = orjson.loads(raw) if raw else {}
        return str(report.get("name", "")), str(report.get("value", ""))
    except (orjson.JSONDecodeError, AttributeError):
        return "", ""
