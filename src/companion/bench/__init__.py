"""`companion bench`: every performance figure, measured side by side with its peer."""

from companion.bench._case import Case, Operation, Target

__all__ = ["Case", "Operation", "Target"]
