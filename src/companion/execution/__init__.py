"""companion.execution: untrusted Python and JavaScript in OS sandboxes from warm pools.

See docs/execution.md for the layers, the limits and the measured costs.
"""

from companion.execution._errors import (
    ExecutorBusy,
    InvalidSnippet,
    LimitAboveMaximum,
    SandboxUnavailable,
    SessionCapacityReached,
    SessionEnded,
    SessionLimitReached,
    SessionNotFound,
    UnknownLanguage,
    WorkspaceFileNotFound,
)
from companion.execution._executor import Executor, RunObserver, choose_sandbox_mode
from companion.execution._host import IsolationLayer, landlock_abi, probe_isolation
from companion.execution._models import (
    CellLimitOverrides,
    CellRequest,
    CellResult,
    ErrorInfo,
    ExecutionRequest,
    ExecutionResult,
    LimitOverrides,
    Limits,
    OutputEvent,
    OutputFile,
    RichResult,
    SessionCreate,
    SessionInfo,
    SourceFile,
    Status,
    Usage,
    WorkspaceFile,
    WorkspaceListing,
    WorkspaceUpload,
)
from companion.execution._packages import (
    Package,
    PythonPackages,
    packages_dir,
    python_package_names,
)
from companion.execution._pool import PoolStats
from companion.execution._runtimes import Runtime, RuntimeRegistry
from companion.execution._sessions import SessionManager, SessionStats
from companion.execution._sync import SyncExecutor

__all__ = [
    "CellLimitOverrides",
    "CellRequest",
    "CellResult",
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
    "SessionCapacityReached",
    "SessionCreate",
    "SessionEnded",
    "SessionInfo",
    "SessionLimitReached",
    "SessionManager",
    "SessionNotFound",
    "SessionStats",
    "SourceFile",
    "Status",
    "SyncExecutor",
    "UnknownLanguage",
    "Usage",
    "WorkspaceFile",
    "WorkspaceFileNotFound",
    "WorkspaceListing",
    "WorkspaceUpload",
    "choose_sandbox_mode",
    "landlock_abi",
    "packages_dir",
    "probe_isolation",
    "python_package_names",
]
