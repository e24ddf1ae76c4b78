"""alerts/alerts.toml as data: it loads, bad values are refused with section and key, the CLI renders."""
from __future__ import annotations

import tomllib

import pytest

from alerts import alert_rules
from alerts.alert_rules import ConfigError


def raw() -> dict:
    with open(alert_rules.CONFIG_PATH, "rb") as fh:
        return tomllib.load(fh)


def test_the_repository_config_loads_with_sound_values():
    c = alert_rules.config()
    assert c.return_rate.window_days == 30 and c.return_rate.min_sample >= 20
    assert c.return_rate.threshold(c.return_rate.baseline_rate) > c.return_rate.baseline_rate
    assert c.return_rate.allowed_lateness_ms == 24 * 3600 * 1000
    assert c.late_deliveries.threshold(c.late_deliveries.baseline_rate) == c.late_deliveries.baseline_rate
    assert ("shipping", "payment") in c.funnel_drop.pairs
    assert c.rule("return_rate") is c.return_rate


@pytest.mark.parametrize("section, key, value, message", [
    ("return_rate", "baseline_rate", 1.5, "[return_rate] baseline_rate: 1.5 is not a rate"),
    ("return_rate", "min_delivered", 0, "[return_rate] min_delivered: 0 must be a positive integer"),
    ("return_rate", "baseline", "guessed", '[return_rate] baseline: \'guessed\' must be "configured" or "learned"'),
    ("late_deliveries", "window_days", "7", "[late_deliveries] window_days: expected int"),
    ("prometheus", "boleto_for", "an hour", "[prometheus] boleto_for: 'an hour' is not a duration"),
])
def test_bad_values_are_refused_naming_section_and_key(section, key, value, message):
    config = raw()
    config[section][key] = value
    with pytest.raises(ConfigError) as exc:
        alert_rules.parse(config)
    assert message in str(exc.value)


def test_missing_key_and_section_are_named():
    config = raw()
    del config["return_rate"]["margin"]
    with pytest.raises(ConfigError, match=r"\[return_rate\] margin: missing"):
        alert_rules.parse(config)
    config = raw()
    del config["boleto_share"]
    with pytest.raises(ConfigError, match=r"section \[boleto_share\] is missing"):
        alert_rules.parse(config)


def test_a_threshold_changed_in_the_config_reaches_the_prometheus_rules(tmp_path):
    config = raw()
    config["late_deliveries"]["threshold_rate"] = 0.2
    config["boleto_share"]["window_days"] = 5
    rendered = alert_rules.render_prometheus_rules(alert_rules.parse(config))
    assert "> 0.2) and on (carrier)" in rendered
    assert "[5d]" in rendered and "[3d]" not in rendered


def test_cli_checks_and_renders(tmp_path, capsys):
    from posvenda.cli import main

    out = tmp_path / "rules.yml"
    assert main(["alerts", "render-rules", "--out", str(out)]) == 0
    assert out.read_text() == alert_rules.PROMETHEUS_RULES_PATH.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text("[return_rate\n")
    assert main(["alerts", "check", "--config", str(bad)]) == 2
    assert "bad.toml" in capsys.readouterr().err
