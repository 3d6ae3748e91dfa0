"""companion.profiling: see docs/profiling.md."""

__all__: list[str] = []
