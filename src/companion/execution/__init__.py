"""companion.execution: sandboxed code execution; see docs/execution.md."""

from companion.execution._host import IsolationLayer, landlock_abi, probe_isolation

__all__ = ["IsolationLayer", "landlock_abi", "probe_isolation"]
