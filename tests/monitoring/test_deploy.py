"""The shipped alert rules and dashboard parse and name only metrics the collector exports."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from companion.monitoring import Monitor

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_METRIC = re.compile(r"\b(companion_[a-z0-9_]+)\b")


def exported_names() -> set[str]:
    """Every sample name a fully populated monitor exposes (a cache source included)."""
    registry = CollectorRegistry()
    monitor = Monitor(registry=registry, max_series=1)
    monitor.record_request("/a", 0.1, 500)
    monitor.record_request("/b", 0.1, 200)  # over the limit: creates dropped-series samples
    monitor.record_cache_hit("c")
    monitor.record_error("E", "m")
    monitor.add_collector_source("cache", lambda: {"l1": {"hits": 1, "misses": 1, "size": 1}})
    monitor.add_collector_source("broken", lambda: 1 / 0)  # type: ignore[arg-type, return-value]
    monitor.register_health_check("db", lambda: True)
    asyncio.run(monitor.run_health_checks())
    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        names.update(sample.name for sample in family.samples)
        names.add(family.name)
    return names


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_names()


def test_alert_rules_parse_and_use_exported_metrics(exported: set[str]) -> None:
    yaml = pytest.importorskip("yaml")
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    seen = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert {"alert", "expr", "labels", "annotations"} <= rule.keys(), rule
            assert rule["labels"]["severity"] in {"info", "warning", "error", "critical"}
            names = set(_METRIC.findall(rule["expr"]))
            assert names, rule["alert"]
            assert names <= exported, names - exported
            seen += 1
    assert seen >= 5


def test_scrape_config_parses() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["alerts.yml"]


def test_dashboard_is_json_and_uses_exported_metrics(exported: set[str]) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "companion.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    assert used <= exported, used - exported
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
