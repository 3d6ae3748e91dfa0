"""`companion demo`: every section runs on the real subsystems and the highlights are filled in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from companion.demo import SECTIONS, run_demo

pytestmark = pytest.mark.sandbox

COMPANION = str(Path(sys.executable).parent / "companion")


def test_every_section_runs_and_the_highlights_carry_measured_values() -> None:
    seen: list[str] = []
    report = run_demo(on_section=lambda section: seen.append(section.title))
    assert len(seen) == len(SECTIONS)
    by_number = {s.title[:1]: s for s in report.sections}
    caching = by_number["2"].figures
    # The speedup is the uncached call of the same function over its cached call.
    assert caching["speedup"] == caching["uncached_ns"] / caching["cached_ns"]
    monitoring = by_number["3"].figures
    assert [a["state"] for a in monitoring["alerts"]] == ["firing", "resolved"]
    assert monitoring["active_alerts"] == 0
    assert {c["name"]: c["status"] for c in monitoring["health"]["checks"]} == {
        "database": "ok",
        "model": "failed",
    }
    assert by_number["5"].figures["python_median_ns"] > 0
    assert by_number["6"].figures["ok"] == 10
    knowledge = by_number["7"]
    assert knowledge.skipped or knowledge.figures["hits"] >= 1
    assert any(line.startswith("Python execution: ") for line in report.highlights)
    assert any(line.startswith("Cache speedup: ") for line in report.highlights)


def test_the_cli_prints_json_for_machines() -> None:
    completed = subprocess.run(
        [COMPANION, "demo", "--json"], capture_output=True, text=True, check=True,
        env={**os.environ, "COLUMNS": "200"}, timeout=120,
    )  # fmt: skip
    data = json.loads(completed.stdout)
    assert [s["title"][:1] for s in data["sections"]] == ["1", "2", "3", "4", "5", "6", "7"]
    assert data["highlights"]
    assert data["elapsed_s"] > 0
