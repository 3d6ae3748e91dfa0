"""How the zygote's raw report becomes one status (no sandbox needed)."""

from __future__ import annotations

import signal

import pytest

from companion.execution._models import Limits
from companion.execution._outcome import to_result
from companion.execution._runtimes import Runtime

_MiB = 1024 * 1024
_LIMITS = Limits(
    wall_time_ms=1000,
    cpu_time_ms=1000,
    memory_bytes=128 * _MiB,
    max_output_bytes=1024,
    max_file_bytes=1024,
    max_open_files=16,
    max_returned_files=4,
    max_returned_bytes=1024,
)
_RUNTIME = Runtime(
    language="javascript",
    aliases=("js",),
    version="test",
    engine="quickjs",
    default_limits=_LIMITS,
    max_limits=_LIMITS,
)


_BASE = 14 * _MiB  # resident pages a child inherits from its zygote


def _status(**raw: object) -> str:
    report = {"exit_code": None, "cpu_ms": 10.0, "memory_base_bytes": _BASE, **raw}
    return to_result(report, _RUNTIME, _LIMITS).status


@pytest.mark.parametrize("crash", [signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS])
def test_a_crash_at_the_memory_cap_is_the_memory_limit(crash: int) -> None:
    assert _status(signal=crash, memory_bytes=114 * _MiB) == "memory_limit"


def test_a_crash_far_below_the_memory_cap_stays_a_runtime_error() -> None:
    assert _status(signal=signal.SIGSEGV, memory_bytes=20 * _MiB) == "runtime_error"


def test_inherited_pages_do_not_count_toward_the_cap() -> None:
    small = _LIMITS.model_copy(update={"memory_bytes": 8 * _MiB})
    report = {"signal": signal.SIGSEGV, "memory_bytes": _BASE, "memory_base_bytes": _BASE}
    assert to_result(report, _RUNTIME, small).status == "runtime_error"


def test_an_ordinary_exit_with_high_memory_is_still_ok() -> None:
    assert _status(exit_code=0, memory_bytes=120 * _MiB) == "ok"


def test_sigxcpu_is_a_timeout_even_with_high_memory() -> None:
    assert _status(signal=signal.SIGXCPU, memory_bytes=120 * _MiB) == "timeout"
