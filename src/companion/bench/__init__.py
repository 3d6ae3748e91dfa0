"""`companion bench`: every performance figure, measured side by side with its peer in one run."""

from companion.bench._case import Case, Operation, Target, format_ns
from companion.bench._render import to_markdown
from companion.bench._runner import FULL, QUICK, Budget, RowResult, run_case
from companion.bench._suite import GROUPS, Report, load_cases, machine_facts, run_suite

__all__ = [
    "FULL",
    "GROUPS",
    "QUICK",
    "Budget",
    "Case",
    "Operation",
    "Report",
    "RowResult",
    "Target",
    "format_ns",
    "load_cases",
    "machine_facts",
    "run_case",
    "run_suite",
    "to_markdown",
]
