"""companion.monitoring: see docs/monitoring.md."""

__all__: list[str] = []
