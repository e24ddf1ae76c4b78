"""The Prometheus alerting rules: generated from alerts/alerts.toml without drift, valid for promtool,
and behaving as rules_test.yml says (each alert silent just before its `for` boundary, firing at it).

promtool is required, not optional: without it these rules would ship untested. It comes from
Debian's `prometheus` package (apt-get install -y prometheus).
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from alerts import alert_rules

RULES = alert_rules.PROMETHEUS_RULES_PATH
RULES_TEST = RULES.parent / "rules_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install it (Debian: apt-get update && apt-get install -y prometheus); "
                    "the alerting rules must not ship untested")
    return subprocess.run([exe, *args], check=False, capture_output=True, text=True, cwd=RULES.parent, timeout=120)


def test_rules_file_is_what_alerts_toml_generates():
    assert RULES.read_text(encoding="utf-8") == alert_rules.render_prometheus_rules(alert_rules.config()), (
        "alerts/prometheus/rules.yml is stale: run `posvenda alerts render-rules`")


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass():
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_of_the_rules_is_exercised_by_rules_test():
    names = {rule["alert"] for group in alert_rules.prometheus_rules(alert_rules.config())["groups"]
             for rule in group["rules"]}
    tested = RULES_TEST.read_text(encoding="utf-8")
    assert {n for n in names if f"alertname: {n}\n" not in tested} == set()
