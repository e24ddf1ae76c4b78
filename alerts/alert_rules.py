"""The alert rules as data: alerts/alerts.toml loaded into frozen dataclasses, and the Prometheus
rules generated from the same figures (so a threshold lives in exactly one place).

Why frozen dataclasses: folds and evaluators receive a rule object rather than reading config, so a
unit test builds its own rule with `dataclasses.replace` and a replay uses the rule it was given.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG_PATH = HERE / "alerts.toml"
PROMETHEUS_RULES_PATH = HERE / "prometheus" / "rules.yml"
HOUR_MS = 3600 * 1000

RETURN_RATE = "return_rate"
LATE_DELIVERIES = "late_deliveries"
FUNNEL_DROP = "funnel_drop"
BOLETO_SHARE = "boleto_share"
STREAM_RULES = (RETURN_RATE, LATE_DELIVERIES)  # judged by the stream processors, sent on alerts.events

RETURN_REASONS = ("defect", "not_as_described", "wrong_size", "damaged_in_transport", "regret")
# What a dominant return reason points at: the product page, logistics, the product itself, the buyer.
POINTS_AT = {"not_as_described": "page", "wrong_size": "page", "damaged_in_transport": "logistics",
             "defect": "product", "regret": "customer"}


class ConfigError(ValueError):
    """A value of alerts.toml that cannot be used; names the section and key."""


@dataclass(frozen=True)
class ProportionRule:
    """A rate (hits / units) over a sliding window of event-time days, judged at each day's close.

    Raise when at least `min_sample` units are in the window and the Wilson lower bound of the rate is
    above `threshold(baseline)`; clear when the observed rate is at or below
    `clear_rate(baseline)` or the window is empty. Wilson rather than the raw rate so that a small
    sample (1 return out of 2) cannot page anyone.
    """

    name: str
    window_days: int
    allowed_lateness_ms: int
    min_sample: int
    baseline_rate: float
    margin: float = 0.0
    baseline: str = "configured"  # or "learned" (pooled over the partition's subjects)
    learned_min_sample: int = 0
    confidence_z: float = 1.96
    clear_factor: float = 1.0
    critical_rate: float = 1.0

    def threshold(self, baseline: float) -> float:
        return baseline + self.margin

    def clear_rate(self, baseline: float) -> float:
        return self.threshold(baseline) * self.clear_factor


@dataclass(frozen=True)
class FunnelDropRule:
    pairs: tuple[tuple[str, str], ...]
    baseline_days: int
    min_baseline_sessions: int
    min_day_sessions: int
    max_drop: float
    confidence_z: float = 1.96


@dataclass(frozen=True)
class BoletoShareRule:
    window_days: int
    max_share: float
    min_paid_ratio: float
    min_orders: int


@dataclass(frozen=True)
class PrometheusSettings:
    stream_alert_for: str
    late_deliveries_for: str
    boleto_for: str
    funnel_for: str
    dead_letters_for: str
    consumer_lag_messages: int
    consumer_lag_for: str


@dataclass(frozen=True)
class AlertConfig:
    return_rate: ProportionRule
    late_deliveries: ProportionRule
    funnel_drop: FunnelDropRule
    boleto_share: BoletoShareRule
    prometheus: PrometheusSettings

    def rule(self, name: str) -> ProportionRule:
        return {RETURN_RATE: self.return_rate, LATE_DELIVERIES: self.late_deliveries}[name]


def _get(section: dict, name: str, key: str, typ, check=None, why: str = ""):
    if key not in section:
        raise ConfigError(f"alerts.toml [{name}] {key}: missing")
    value = section[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise ConfigError(f"alerts.toml [{name}] {key}: expected {typ.__name__}, got {value!r}")
    if check is not None and not check(value):
        raise ConfigError(f"alerts.toml [{name}] {key}: {value!r} {why}")
    return value


def _rate(section, name, key):
    return _get(section, name, key, float, lambda v: 0 <= v <= 1, "is not a rate in [0, 1]")


def _positive(section, name, key):
    return _get(section, name, key, int, lambda v: v > 0, "must be a positive integer")


def _section(raw: dict, name: str) -> dict:
    section = raw.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"alerts.toml: section [{name}] is missing")
    return section


def parse(raw: dict) -> AlertConfig:
    r = _section(raw, RETURN_RATE)
    return_rate = ProportionRule(
        name=RETURN_RATE, window_days=_positive(r, RETURN_RATE, "window_days"),
        allowed_lateness_ms=_get(r, RETURN_RATE, "allowed_lateness_hours", int, lambda v: v >= 0,
                                 "must not be negative") * HOUR_MS,
        min_sample=_positive(r, RETURN_RATE, "min_delivered"), baseline_rate=_rate(r, RETURN_RATE, "baseline_rate"),
        margin=_rate(r, RETURN_RATE, "margin"),
        baseline=_get(r, RETURN_RATE, "baseline", str, lambda v: v in ("configured", "learned"),
                      'must be "configured" or "learned"'),
        learned_min_sample=_positive(r, RETURN_RATE, "learned_min_delivered"),
        confidence_z=_get(r, RETURN_RATE, "confidence_z", float, lambda v: v > 0, "must be positive"),
        clear_factor=_get(r, RETURN_RATE, "clear_factor", float, lambda v: 0 < v <= 1, "must be in (0, 1]"),
        critical_rate=_rate(r, RETURN_RATE, "critical_rate"),
    )
    d = _section(raw, LATE_DELIVERIES)
    late = ProportionRule(
        name=LATE_DELIVERIES, window_days=_positive(d, LATE_DELIVERIES, "window_days"),
        allowed_lateness_ms=_get(d, LATE_DELIVERIES, "allowed_lateness_hours", int, lambda v: v >= 0,
                                 "must not be negative") * HOUR_MS,
        min_sample=_positive(d, LATE_DELIVERIES, "min_deliveries"),
        baseline_rate=_rate(d, LATE_DELIVERIES, "threshold_rate"),
        confidence_z=_get(d, LATE_DELIVERIES, "confidence_z", float, lambda v: v > 0, "must be positive"),
        clear_factor=_get(d, LATE_DELIVERIES, "clear_factor", float, lambda v: 0 < v <= 1, "must be in (0, 1]"),
        critical_rate=_rate(d, LATE_DELIVERIES, "critical_rate"),
    )
    f = _section(raw, FUNNEL_DROP)
    pairs = _get(f, FUNNEL_DROP, "pairs", list)
    if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in pairs):
        raise ConfigError(f"alerts.toml [{FUNNEL_DROP}] pairs: expected [[from_step, to_step], ...]")
    funnel = FunnelDropRule(
        pairs=tuple((a, b) for a, b in pairs), baseline_days=_positive(f, FUNNEL_DROP, "baseline_days"),
        min_baseline_sessions=_positive(f, FUNNEL_DROP, "min_baseline_sessions"),
        min_day_sessions=_positive(f, FUNNEL_DROP, "min_day_sessions"), max_drop=_rate(f, FUNNEL_DROP, "max_drop"),
        confidence_z=_get(f, FUNNEL_DROP, "confidence_z", float, lambda v: v > 0, "must be positive"),
    )
    b = _section(raw, BOLETO_SHARE)
    boleto = BoletoShareRule(
        window_days=_positive(b, BOLETO_SHARE, "window_days"), max_share=_rate(b, BOLETO_SHARE, "max_share"),
        min_paid_ratio=_rate(b, BOLETO_SHARE, "min_paid_ratio"), min_orders=_positive(b, BOLETO_SHARE, "min_orders"),
    )
    p = _section(raw, "prometheus")
    duration = {"check": lambda v: v[:-1].isdigit() and v[-1] in "smhdw", "why": "is not a duration like 15m"}
    prom = PrometheusSettings(
        stream_alert_for=_get(p, "prometheus", "stream_alert_for", str, **duration),
        late_deliveries_for=_get(p, "prometheus", "late_deliveries_for", str, **duration),
        boleto_for=_get(p, "prometheus", "boleto_for", str, **duration),
        funnel_for=_get(p, "prometheus", "funnel_for", str, **duration),
        dead_letters_for=_get(p, "prometheus", "dead_letters_for", str, **duration),
        consumer_lag_messages=_positive(p, "prometheus", "consumer_lag_messages"),
        consumer_lag_for=_get(p, "prometheus", "consumer_lag_for", str, **duration),
    )
    return AlertConfig(return_rate, late, funnel, boleto, prom)


def load(path: Path | str = CONFIG_PATH) -> AlertConfig:
    with open(path, "rb") as fh:
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return parse(raw)


@cache
def config() -> AlertConfig:
    """The repository's alerts.toml (read once, when first needed: never at import)."""
    return load(CONFIG_PATH)


# --- Prometheus rules, generated --------------------------------------------------------------

def _pct(rate: float) -> str:
    return f"{rate * 100:g}%"


def _confidence(z: float) -> str:
    from statistics import NormalDist

    return f"{2 * NormalDist().cdf(z) - 1:.0%}"


def prometheus_rules(c: AlertConfig) -> dict:
    """The Prometheus rule groups, built from the config (see render_prometheus_rules)."""
    r, d, b, f, p = c.return_rate, c.late_deliveries, c.boleto_share, c.funnel_drop, c.prometheus
    late_range, boleto_range = f"{d.window_days}d", f"{b.window_days}d"
    deliveries = f"sum by (carrier) (increase(posvenda_deliveries_total[{late_range}]))"
    placed = f"sum(increase(posvenda_placed_orders_total[{boleto_range}]))"
    return {"groups": [
        {"name": "posvenda-business", "rules": [
            {"alert": "PosvendaReturnRateHigh",
             "expr": f'sum(posvenda_alerts_active{{rule="{RETURN_RATE}"}}) > 0',
             "for": p.stream_alert_for,
             "labels": {"severity": "warning", "team": "catalogue"},
             "annotations": {
                 "summary": "{{ $value }} product page(s) with an abnormal return rate",
                 "description": (f"Wilson {_confidence(r.confidence_z)} lower bound of returned/delivered units above "
                                 f"baseline {_pct(r.baseline_rate)} + {_pct(r.margin)} with at least "
                                 f"{r.min_sample} delivered units in {r.window_days} days. GET /alerts on a worker "
                                 "says which page, the dominant reason and whether it points at the page, "
                                 "logistics or the product.")}},
            {"alert": "PosvendaCarrierLateDeliveriesJudged",
             "expr": f'sum(posvenda_alerts_active{{rule="{LATE_DELIVERIES}"}}) > 0',
             "for": p.stream_alert_for,
             "labels": {"severity": "warning", "team": "logistics"},
             "annotations": {
                 "summary": "{{ $value }} carrier(s) delivering late above the threshold (event time)",
                 "description": (f"Late share of deliveries over {d.window_days} days: Wilson "
                                 f"{_confidence(d.confidence_z)} lower bound above "
                                 f"{_pct(d.baseline_rate)} with at least {d.min_sample} deliveries. See GET /alerts.")}},
            {"alert": "PosvendaCarrierLateShareHigh",
             "expr": (f"(sum by (carrier) (increase(posvenda_late_deliveries_total[{late_range}])) / {deliveries}"
                      f" > {d.baseline_rate:g}) and on (carrier) ({deliveries} >= {d.min_sample})"),
             "for": p.late_deliveries_for,
             "labels": {"severity": "warning", "team": "logistics"},
             "annotations": {
                 "summary": "Carrier {{ $labels.carrier }} delivers {{ $value | humanizePercentage }} late",
                 "description": f"More than {_pct(d.baseline_rate)} of the last {late_range} of deliveries "
                                "arrived after the promised date."}},
            {"alert": "PosvendaBoletoRevenueNotFollowing",
             "expr": (f'(sum(increase(posvenda_placed_orders_total{{payment_method="boleto"}}[{boleto_range}]))'
                      f" / {placed} > {b.max_share:g})"
                      f" and (sum(increase(posvenda_paid_order_value_brl_total[{boleto_range}]))"
                      f" / sum(increase(posvenda_placed_order_value_brl_total[{boleto_range}])) < {b.min_paid_ratio:g})"
                      f" and ({placed} >= {b.min_orders})"),
             "for": p.boleto_for,
             "labels": {"severity": "warning", "team": "payments"},
             "annotations": {
                 "summary": "High boleto share while paid revenue does not follow",
                 "description": f"Boleto above {_pct(b.max_share)} of orders placed in {boleto_range} and paid "
                                f"revenue below {_pct(b.min_paid_ratio)} of placed revenue: check boleto recovery."}},
            {"alert": "PosvendaFunnelConversionDrop",
             "expr": (f"posvenda_funnel_conversion_upper_ratio < {1 - f.max_drop:g} * "
                      "posvenda_funnel_conversion_baseline_ratio"),
             "for": p.funnel_for,
             "labels": {"severity": "warning", "team": "growth"},
             "annotations": {
                 "summary": "Funnel {{ $labels.from_step }} -> {{ $labels.to_step }} below its recent baseline",
                 "description": f"The last complete day converts more than {_pct(f.max_drop)} below the previous "
                                f"{f.baseline_days} days (shipping -> payment: freight driving customers away)."}},
        ]},
        {"name": "posvenda-pipeline", "rules": [
            {"alert": "PosvendaDeadLetters",
             "expr": "sum by (topic, reason) (increase(posvenda_dead_letters_total[15m])) > 0",
             "for": p.dead_letters_for,
             "labels": {"severity": "warning", "team": "platform"},
             "annotations": {"summary": "Messages of {{ $labels.topic }} dead-lettered ({{ $labels.reason }})",
                             "description": "Read the .dlq topic beside the source: the headers say why."}},
            {"alert": "PosvendaConsumerLagHigh",
             "expr": f"max by (topic) (posvenda_consumer_lag_messages) > {p.consumer_lag_messages}",
             "for": p.consumer_lag_for,
             "labels": {"severity": "critical", "team": "platform"},
             "annotations": {"summary": "Workers are {{ $value }} messages behind on {{ $labels.topic }}",
                             "description": "Projections and alerts are stale: add partitions and workers."}},
        ]},
    ]}


def _yaml(value, indent: int = 0) -> list[str]:
    """A minimal YAML emitter for the rule structure (strings JSON-quoted: valid YAML scalars)."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            inner = _yaml(item, indent + 1)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def render_prometheus_rules(c: AlertConfig) -> str:
    header = ("# GENERATED from alerts/alerts.toml by `posvenda alerts render-rules`: do not edit by hand.\n"
              "# Tested by alerts/prometheus/rules_test.yml (promtool test rules).\n")
    return header + "\n".join(_yaml(prometheus_rules(c))) + "\n"


# --- CLI --------------------------------------------------------------------------------------

def add_parser(sub) -> None:
    p = sub.add_parser("alerts", help="alert rules: check alerts.toml, render the Prometheus rules")
    p.add_argument("action", choices=["check", "render-rules"],
                   help="check: load and print the config; render-rules: write alerts/prometheus/rules.yml")
    p.add_argument("--config", default=str(CONFIG_PATH), help="alerts.toml to load (default: the repository's)")
    p.add_argument("--out", default=str(PROMETHEUS_RULES_PATH), help="where render-rules writes")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import sys

    try:
        c = load(args.config)
    except (ConfigError, OSError) as exc:
        print(f"posvenda alerts: {exc}", file=sys.stderr)
        return 2
    if args.action == "check":
        for name in (RETURN_RATE, LATE_DELIVERIES, FUNNEL_DROP, BOLETO_SHARE):
            print(f"{name}: {getattr(c, name)}")
        return 0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(render_prometheus_rules(c), encoding="utf-8")
    print(f"alerts: wrote {args.out}")
    return 0
