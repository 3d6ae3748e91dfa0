"""companion.knowledge: see docs/knowledge.md."""

__all__: list[str] = []
