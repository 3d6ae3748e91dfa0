"""companion.profiling: bounded per-name timing statistics and call-tree traces; see docs/profiling.md."""

from companion.profiling._profiler import OVERFLOW_NAME, Profiler
from companion.profiling._stats import ProfileStats
from companion.profiling._trace import Trace

__all__ = ["OVERFLOW_NAME", "ProfileStats", "Profiler", "Trace"]
