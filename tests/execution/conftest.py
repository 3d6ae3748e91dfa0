"""A real sandbox pool shared by the tests of a module (starting one costs ~100 ms per zygote).

Every test that takes `sandbox` runs four times: under bubblewrap, and in the service's own
namespaces (what a root service gets on a host without bubblewrap), each on plain zygotes and on
zygotes with the data-science packages preloaded (the escape corpus must hold there too). CI has
both modes: `make test` installs bubblewrap where it can, and a mode that cannot start fails the
test instead of skipping it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from companion.config import load_settings
from companion.execution import (
    CellRequest,
    CellResult,
    ExecutionRequest,
    ExecutionResult,
    SessionCreate,
    SessionInfo,
    SyncExecutor,
)

SANDBOX_MODES = ["bubblewrap", "namespaces"]


def sandbox_settings(mode: str, **overrides: object) -> dict[str, object]:
    """Settings of the shared test pool: two zygotes with short limits, so abuse ends quickly."""
    return {
        "execution_sandbox_mode": mode,
        "execution_pool_size": 2,
        "execution_default_wall_time_ms": 2000,
        "execution_default_cpu_time_ms": 2000,
        "execution_default_memory_bytes": 128 * 1024 * 1024,
        "execution_default_output_bytes": 64 * 1024,
        "execution_max_file_bytes": 1024 * 1024,
        "execution_scratch_bytes": 8 * 1024 * 1024,
        **overrides,
    }


# A comment naming a package routes a Python run to the preloaded zygotes (the executor reads
# imports as text) without changing what the snippet does or its line numbers.
_TO_PRELOADED = "\n# import numpy"


class PreloadedSandbox(SyncExecutor):
    """Runs every Python request on the zygotes that preloaded the packages."""

    def run(self, request: ExecutionRequest) -> ExecutionResult:
        """`SyncExecutor.run`, routed to the preloaded zygotes."""
        if request.language in {"python", "py", "python3"} and (request.code or "").strip():
            request = request.model_copy(update={"code": request.code + _TO_PRELOADED})
        return super().run(request)


@pytest.fixture(
    scope="module",
    params=[*SANDBOX_MODES, *(f"{mode}-preloaded" for mode in SANDBOX_MODES)],
)
def sandbox(request: pytest.FixtureRequest) -> Iterator[SyncExecutor]:
    """A started pool in each sandbox mode, plain or with the packages preloaded."""
    mode, _, preloaded = str(request.param).partition("-")
    if preloaded:
        settings = sandbox_settings(mode, execution_pool_size=1, execution_data_pool_size=2)
        with PreloadedSandbox(load_settings(**settings)) as executor:
            yield executor
        return
    with SyncExecutor(load_settings(**sandbox_settings(mode))) as executor:
        yield executor


def assert_healthy(sandbox: SyncExecutor) -> None:
    """After any abuse, both zygotes still answer factorial(10) correctly."""
    for _ in range(2):
        result = run(sandbox, "import math\nprint(math.factorial(10))")
        assert result.status == "ok", result
        assert result.stdout == "3628800\n"


def run(
    sandbox: SyncExecutor, code: str, language: str = "python", **fields: object
) -> ExecutionResult:
    """Run `code` with optional request fields (limits, stdin, env, ...)."""
    return sandbox.run(
        ExecutionRequest.model_validate({"language": language, "code": code, **fields})
    )


class Sessions:
    """Blocking calls to a started executor's `SessionManager`, for tests."""

    def __init__(self, executor: SyncExecutor) -> None:
        self.executor = executor
        self.manager = executor.executor.sessions

    def create(self, tenant: str = "tenant-a", **fields: object) -> SessionInfo:
        """Open a session (`fields` as `POST /v1/sessions` takes them)."""
        request = SessionCreate.model_validate(fields)
        return self.executor.call(self.manager.create(tenant, request))

    def cell(
        self, session_id: str, code: str, tenant: str = "tenant-a", **fields: object
    ) -> CellResult:
        """Run one cell (`fields` as `POST /v1/sessions/{id}/execute` takes them)."""
        request = CellRequest.model_validate({"code": code, **fields})
        return self.executor.call(self.manager.execute(tenant, session_id, request))

    def delete(self, session_id: str, tenant: str = "tenant-a") -> None:
        """End a session."""
        self.executor.call(self.manager.delete(tenant, session_id))


def session_settings(mode: str, **overrides: object) -> dict[str, object]:
    """The shared test pool's settings, with sessions ready ahead of need."""
    return sandbox_settings(
        mode, **{"execution_pool_size": 1, "execution_session_spares": 1, **overrides}
    )


@pytest.fixture(scope="module", params=SANDBOX_MODES)
def sessions(request: pytest.FixtureRequest) -> Iterator[Sessions]:
    """A started executor in each sandbox mode, for session tests."""
    with SyncExecutor(load_settings(**session_settings(str(request.param)))) as executor:
        yield Sessions(executor)
