"""`companion demo`: the seed's Phase 5 demo replayed on the real system, with measured figures."""

from companion.demo._run import SECTIONS, DemoReport, run_demo
from companion.demo._section import Section

__all__ = ["SECTIONS", "DemoReport", "Section", "run_demo"]
