"""companion.execution: untrusted Python and JavaScript in OS sandboxes from warm pools.

See docs/execution.md for the layers, the limits and the measured costs.
"""

from companion.execution._errors import (
    ExecutorBusy,
    InvalidSnippet,
    LimitAboveMaximum,
    SandboxUnavailable,
    UnknownLanguage,
)
from companion.execution._executor import Executor, RunObserver, choose_sandbox_mode
from companion.execution._host import IsolationLayer, landlock_abi, probe_isolation
from companion.execution._models import (
    ErrorInfo,
    ExecutionRequest,
    ExecutionResult,
    LimitOverrides,
    Limits,
    OutputEvent,
    OutputFile,
    RichResult,
    SourceFile,
    Status,
    Usage,
)
from companion.execution._packages import (
    Package,
    PythonPackages,
    packages_dir,
    python_package_names,
)
from companion.execution._pool import PoolStats
from companion.execution._runtimes import Runtime, RuntimeRegistry
from companion.execution._sync import SyncExecutor

__all__ = [
    "ErrorInfo",
    "ExecutionRequest",
    "ExecutionResult",
    "Executor",
    "ExecutorBusy",
    "InvalidSnippet",
    "IsolationLayer",
    "LimitAboveMaximum",
    "LimitOverrides",
    "Limits",
    "OutputEvent",
    "OutputFile",
    "Package",
    "PoolStats",
    "PythonPackages",
    "RichResult",
    "RunObserver",
    "Runtime",
    "RuntimeRegistry",
    "SandboxUnavailable",
    "SourceFile",
    "Status",
    "SyncExecutor",
    "UnknownLanguage",
    "Usage",
    "choose_sandbox_mode",
    "landlock_abi",
    "packages_dir",
    "probe_isolation",
    "python_package_names",
]
