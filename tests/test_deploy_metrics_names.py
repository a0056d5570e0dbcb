"""The Grafana dashboard and the Prometheus rules name only metrics the worker exposes.

Fast, no broker: reads deploy/grafana/rating-engine.json and deploy/prometheus/*.yml
(YAML by regex, so no YAML dependency) and compares every `rating_*` series name
with what `prometheus_client.REGISTRY` exposes once `rating_engine.stream.metrics` is imported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import rating_engine.stream.metrics  # noqa: F401  (registers the worker's metrics)

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "rating-engine.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"

METRIC = re.compile(r"\brating_[a-z_]+\b")
# an identifier directly followed by a selector or a range: a series name (or a label name in
# `by (...)`, which is never followed by `{` or `[`)
SERIES = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
FOREIGN_OK = {"up"}  # Prometheus's own per-target metric
EXPECTED_ALERTS = {
    "DisconnectLatenessHigh",
    "DeadLettersSpike",
    "WorkerDown",
    "NoInputEvents",
    "ProcessingSlow",
}

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def exposed_names() -> dict[str, str]:
    """Sample name -> family name, for the worker's families.

    A labelled metric has no samples until its first `.labels()`, so the names come
    from the family type as well as from whatever samples exist.
    """
    names: dict[str, str] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("rating_"):
            continue
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = family.name
        for sample in family.samples:
            names[sample.name] = family.name
    return names


def dashboard_queries() -> list[str]:
    """Every PromQL text in the dashboard: panel targets and templating queries."""
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                promql = key in ("expr", "definition") or (
                    key == "query" and node.get("type") != "datasource"
                )  # not `query: prometheus`
                if promql and isinstance(value, str):
                    out.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dash)
    return out


def yaml_exprs(path: Path) -> list[str]:
    """The `expr:` values of a rules file: one-line values and `|`/`>` blocks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:-\s+)?expr:\s*(.*?)\s*$", lines[i])
        i += 1
        if not m:
            continue
        indent, rest = len(m.group(1)), m.group(2)
        if rest and rest[0] in "|>":
            block = []
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                block.append(lines[i].strip())
                i += 1
            out.append("\n".join(block).strip())
        else:
            out.append(rest.strip("'\""))
    return out


def names_in(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC.findall(expr)}


def test_registry_has_the_worker_metrics() -> None:
    names = exposed_names()
    for sample in (
        "rating_events_in_total",
        "rating_records_out_total",
        "rating_dead_letters_total",
        "rating_disconnect_lateness_seconds_bucket",
        "rating_event_processing_seconds_count",
        "rating_live_calls",
        "rating_tenants",
        "rating_timers_pending",
        "rating_timer_fires_total",
    ):
        assert sample in names


def test_dashboard_names_only_exposed_metrics() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    used = names_in(queries)
    unknown = sorted(used - exposed_names().keys())
    assert not unknown, f"dashboard uses metrics the worker does not expose: {unknown}"


def test_dashboard_shows_every_worker_metric() -> None:
    # the worker's own families (the bridge's share the process in a test run)
    families = {f for f in exposed_names().values() if not f.startswith("rating_engine_bridge_")}
    shown = {exposed_names()[n] for n in names_in(dashboard_queries()) if n in exposed_names()}
    assert families - shown == set(), f"metrics with no panel: {sorted(families - shown)}"


@pytest.mark.parametrize("path", [ALERTS], ids=["alerts.yml"])
def test_alert_rules_name_only_exposed_metrics(path: Path) -> None:
    exprs = yaml_exprs(path)
    assert len(exprs) == len(EXPECTED_ALERTS)
    used = names_in(exprs)
    assert used, "no rating_* metric found in the rules"
    unknown = sorted(used - exposed_names().keys())
    assert not unknown, f"{path.name} uses metrics the worker does not expose: {unknown}"


def test_no_foreign_series_in_queries() -> None:
    for expr in dashboard_queries() + yaml_exprs(ALERTS):
        for name in SERIES.findall(expr):
            if name in ("by", "without", "on", "ignoring", "group_left", "group_right"):
                continue
            assert name.startswith("rating_") or name in FOREIGN_OK, f"{name!r} in {expr!r}"


def test_alerts_file_has_the_expected_alerts() -> None:
    text = ALERTS.read_text(encoding="utf-8")
    assert set(re.findall(r"^\s*-\s+alert:\s*(\w+)\s*$", text, re.MULTILINE)) == EXPECTED_ALERTS
    assert re.search(r'up\{job="rating-engine"\}\s*==\s*0', text)


def test_prometheus_scrapes_the_worker_and_loads_the_rules() -> None:
    text = PROMETHEUS.read_text(encoding="utf-8")
    assert re.search(r"^\s*-\s+job_name:\s*rating-engine\s*$", text, re.MULTILINE)
    assert "127.0.0.1:9108" in text
    assert re.search(r"^rule_files:\s*\n\s+-\s+alerts\.yml\b", text, re.MULTILINE)


def test_dashboard_shape() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_yaml_parse_agrees_when_pyyaml_is_there() -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    exprs = [" ".join(r["expr"].split()) for g in doc["groups"] for r in g["rules"]]
    assert [" ".join(e.split()) for e in yaml_exprs(ALERTS)] == exprs
