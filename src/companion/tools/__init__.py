"""companion.tools: see docs/tools.md."""

__all__: list[str] = []
