"""companion.execution: see docs/execution.md."""

__all__: list[str] = []
