"""Dashboards as code: the committed JSON is exactly what the builder generates, UIDs are stable, and
every panel query reads metrics that the workers export (the registry after importing every module
the worker imports) and parses as PromQL (promtool)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import dashboards

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "infra" / "grafana" / "dashboards"
PROVISIONING = REPO / "infra" / "grafana" / "provisioning"
RULES = REPO / "alerts" / "prometheus" / "rules.yml"

# Stable: Grafana links, bookmarks and pushes address dashboards by these. Changing one is a decision.
EXPECTED_UIDS = {"posvenda-operations", "posvenda-funnel", "posvenda-payments", "posvenda-returns",
                 "posvenda-pipeline"}
# Series Prometheus itself adds to every scrape, not exported by the worker.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def exported_names() -> set[str]:
    """Every sample name the worker's registry can export, including labelled metrics with no child yet."""
    from prometheus_client import REGISTRY

    import streams.worker  # noqa: F401  (imports every module that declares metrics)

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",),
                "stateset": ("",), "gaugehistogram": ("_bucket", "_gcount", "_gsum"), "unknown": ("",)}
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def test_committed_json_is_exactly_what_the_builder_generates():
    generated = dashboards.build_all()
    committed = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARD_DIR.glob("*.json")}
    assert sorted(committed) == sorted(generated), "run: posvenda dashboards build"
    for name, text in generated.items():
        assert committed[name] == text, f"{name} was edited by hand or is stale: run posvenda dashboards build"


def test_builder_output_is_deterministic():
    assert dashboards.build_all() == dashboards.build_all()


def test_dashboards_have_the_stable_uids_titles_and_unique_panel_ids():
    models = [dashboards.render(d) for d in dashboards.dashboards()]
    assert {m["uid"] for m in models} == EXPECTED_UIDS
    assert len({m["title"] for m in models}) == len(models)
    for model in models:
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)), model["uid"]
        for panel in model["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (model["uid"], panel["title"])
            assert panel["targets"], (model["uid"], panel["title"])


def test_every_panel_reads_the_provisioned_datasource():
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in provisioned["datasources"] if d["type"] == "prometheus"}
    assert uids == {dashboards.DATASOURCE_UID}
    for d in dashboards.dashboards():
        for panel in dashboards.render(d)["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": dashboards.DATASOURCE_UID}
            assert all(t["datasource"]["uid"] == dashboards.DATASOURCE_UID for t in panel["targets"])


def test_dashboard_provider_loads_the_generated_directory_into_the_posvenda_folder():
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "posvenda.yml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["folder"] == "posvenda"
    compose = yaml.safe_load((REPO / "infra" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


def test_the_five_dashboards_cover_what_operations_asked_for():
    panels = {d.uid: [p.title for p in d.panels] for d in dashboards.dashboards()}
    text = {uid: " ".join(titles).lower() for uid, titles in panels.items()}
    assert all(w in text["posvenda-operations"] for w in ("events processed", "lag", "errors", "dead letters"))
    assert all(w in text["posvenda-funnel"] for w in ("per step", "conversion", "drop-off", "device", "channel"))
    assert all(w in text["posvenda-payments"]
               for w in ("pending", "recovery actions", "reminders", "recovered revenue"))
    assert all(w in text["posvenda-returns"]
               for w in ("return rate by product page", "late delivery share by carrier", "handling time"))
    assert all(w in text["posvenda-pipeline"] for w in ("latency", "duplicate", "workers up"))


def test_metric_names_are_extracted_from_promql():
    assert dashboards.metric_names(
        'sum by (le, topic) (rate(posvenda_x_bucket{step="cart", le!="1"}[5m])) / ignoring (a) b_total offset 1h'
    ) == {"posvenda_x_bucket", "b_total"}
    assert dashboards.metric_names('1 - sum(up{job="posvenda"}) / count(process_start_time_seconds)') == {
        "up", "process_start_time_seconds"}
    assert dashboards.metric_names("histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))") == {"h_bucket"}


def test_every_dashboard_query_reads_metrics_the_worker_exports():
    known = exported_names() | PROMETHEUS_SERIES
    unknown = {(uid, title, name) for uid, title, expr in dashboards.all_queries()
               for name in dashboards.metric_names(expr) if name not in known}
    assert not unknown, f"dashboard queries read metrics no module exports: {sorted(unknown)}"


@pytest.mark.skipif(not RULES.exists(), reason="alerts/prometheus/rules.yml not written yet")
def test_every_alert_rule_reads_metrics_the_worker_exports():
    known = exported_names() | PROMETHEUS_SERIES
    rules = yaml.safe_load(RULES.read_text())
    exprs = [(r.get("alert") or r.get("record"), r["expr"]) for group in rules["groups"] for r in group["rules"]]
    recorded = {r["record"] for group in rules["groups"] for r in group["rules"] if "record" in r}
    unknown = {(name, metric) for name, expr in exprs for metric in dashboards.metric_names(str(expr))
               if metric not in known | recorded}
    assert not unknown, f"alert rules read metrics no module exports: {sorted(unknown)}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (infra/install-prometheus.sh)")
def test_every_dashboard_query_is_valid_promql(tmp_path):
    # promtool parses every expression of a rules file: each query becomes a recording rule.
    rules = [{"record": f"posvenda:dashboard_query_{i}", "expr": expr}
             for i, (_, _, expr) in enumerate(dashboards.all_queries())]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_build_command_check_mode_detects_a_hand_edit(tmp_path):
    from posvenda import cli

    assert cli.main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    assert cli.main(["dashboards", "build", "--check", "--out", str(tmp_path)]) == 0
    victim = tmp_path / "posvenda-funnel.json"
    model = json.loads(victim.read_text())
    model["title"] = "hand edited"
    victim.write_text(json.dumps(model))
    assert cli.main(["dashboards", "build", "--check", "--out", str(tmp_path)]) == 1
