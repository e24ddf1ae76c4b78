"""Observability end to end: a worker folds a small explicit scenario from the real broker, a real
Prometheus (infra/prometheus.sh, own port and data dir) scrapes it, and then

  - the pipeline's own figures in Prometheus equal those computed here from the same events
    (events processed per topic, dead letters, funnel sessions per step, order handling time);
  - EVERY query of EVERY dashboard panel, sent to Prometheus' HTTP API, returns data with a number;
  - every metric name the dashboards and alerts/prometheus/rules.yml read is on the worker's /metrics.

Events are published in two waves with a scrape in between, so that counters grow while Prometheus
watches (a ratio of two increase()s over series that never grew is 0/0).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, wait_until
from topics import catalogue, events

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
PRODUCT = "p-obs-1"
CARRIER = "jadlog"
ANDROID = ("Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/119.0.0.0 Mobile Safari/537.36")
DESKTOP = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Safari/537.36")
CHANNELS = ("organic", "paid_search", "social")
RULES = REPO / "alerts" / "prometheus" / "rules.yml"
SOURCES = '{topic=~"visits.events|cart.events|checkout.events|orders.events"}'
SOURCE_OF_FAMILY = {"VisitEvent": "visits.events", "CartEvent": "cart.events", "CheckoutEvent": "checkout.events",
                    "OrderEvent": "orders.events"}


# --- the scenario -----------------------------------------------------------------------------------

class Story:
    """Events of one session and/or order, in event-time order, and what the test expects of them."""

    def __init__(self):
        self.events: list[events.Event] = []
        self.steps: set[str] = set()  # funnel steps the session reaches
        self.handling_seconds: float | None = None

    def add(self, type_, at, payload, source="web", session=None, order=None):
        self.events.append(events.Event(str(uuid.uuid4()), type_, at, source, session, None, order, payload))


def order_lifecycle(story: Story, order: str, placed_at: int, session: str | None, *, method="credit_card",
                    promised_in_ms=3 * DAY_MS, returned=False, paid_after_ms: int | None = 20 * MINUTE_MS,
                    ship=True):
    story.add("order_placed", placed_at, {
        "items": [{"product_id": PRODUCT, "quantity": 1, "unit_price": 120.0}], "total": 135.0, "freight": 15.0,
        "payment_method": method, "installments": 1, "uf": "SP", "city": "Campinas", "carrier": CARRIER,
        "promised_delivery_at": placed_at + promised_in_ms}, "web", session, order)
    if paid_after_ms is not None:
        story.add("order_paid", placed_at + paid_after_ms, {"charge_id": None, "method": method, "amount": 135.0},
                  "psp", None, order)
    if not ship:
        return
    shipped_at = placed_at + 5 * HOUR_MS
    story.add("order_invoiced", placed_at + 2 * HOUR_MS, {"invoice_number": f"NF-{order}"}, "erp", None, order)
    story.add("order_shipped", shipped_at, {"carrier": CARRIER, "tracking_code": f"TR{order}"}, "erp", None, order)
    story.add("order_delivered", placed_at + 12 * HOUR_MS, {"receiver": None}, "carrier", None, order)
    if returned:
        story.add("order_returned", placed_at + 13 * HOUR_MS,
                  {"items": [{"product_id": PRODUCT, "quantity": 1}], "reason": "not_as_described"}, "erp", None, order)
    story.handling_seconds = (shipped_at - placed_at) / 1000


def session_story(i: int, start: int, last_step: str) -> Story:
    """A session that goes through the funnel up to last_step (order_placed/paid place a real order)."""
    story, session = Story(), f"s-obs-{i}"
    story.add("session_started", start, {"user_agent": ANDROID if i % 2 else DESKTOP,
                                         "channel": CHANNELS[i % 3], "utm_source": None, "utm_campaign": None,
                                         "landing_page": "/"}, session=session)
    story.add("page_viewed", start + 1000, {"page_type": "product", "path": f"/p/{PRODUCT}", "product_id": PRODUCT},
              session=session)
    story.steps.add("product_page")
    flow = [("cart", "cart_item_added", {"product_id": PRODUCT, "quantity": 1, "unit_price": 120.0}),
            ("shipping", "shipping_option_chosen", {"carrier": CARRIER, "price": 15.0, "promised_days": 3}),
            ("payment", "payment_method_chosen", {"method": "credit_card", "installments": 1}),
            ("registration", "registration_completed", {"kind": "login"})]
    for n, (step, type_, payload) in enumerate(flow, start=2):
        story.add(type_, start + n * 1000, payload, session=session)
        story.steps.add(step)
        if step == last_step:
            return story
    late = i % 4 == 0  # promised 8 h after placement, delivered after 12 h
    order_lifecycle(story, f"o-obs-{i}", start + 10_000, session, promised_in_ms=8 * HOUR_MS if late else 3 * DAY_MS,
                    returned=i % 5 == 0)
    story.steps.update({"order_placed", "paid"})
    return story


def recovery_story(j: int, placed_at: int) -> Story:
    """A boleto or Pix charge: paid after its first reminder (recovered), never paid, or paid at once."""
    story, order = Story(), f"o-obs-charge-{j}"
    method = "pix" if j % 4 == 3 else "boleto"
    due_at = placed_at + (HOUR_MS if method == "pix" else 2 * DAY_MS)
    fate = ("late_payment", "never", "prompt")[j % 3]
    order_lifecycle(story, order, placed_at, None, method=method, paid_after_ms=None, ship=False)
    charge = f"ch-obs-{j}"
    story.add("payment_pending", placed_at + 1000, {"charge_id": charge, "method": method, "amount": 135.0,
                                                    "due_at": due_at}, "psp", None, order)
    if fate == "late_payment":  # after the first reminder (boleto: issue + 24 h; Pix: shortly before expiry)
        paid_at = due_at - (5 * MINUTE_MS if method == "pix" else 6 * HOUR_MS)
        story.add("order_paid", paid_at, {"charge_id": charge, "method": method, "amount": 135.0}, "psp", None, order)
    elif fate == "never":
        story.add("payment_expired", due_at + MINUTE_MS, {"charge_id": charge, "method": method}, "psp", None, order)
        story.add("order_cancelled", due_at + 2 * MINUTE_MS, {"reason": "payment_not_made"}, "erp", None, order)
    else:
        story.add("order_paid", placed_at + 5 * MINUTE_MS, {"charge_id": charge, "method": method, "amount": 135.0},
                  "psp", None, order)
    return story


def scenario(now_ms: int) -> tuple[list[Story], list[Story]]:
    """Two waves of stories. Day B (UTC, 8 days ago) holds the sessions, orders and charges; wave 2
    ends with orders delivered on B+3 that move the alert windows' watermarks past B."""
    day_b = (now_ms - 8 * DAY_MS) // DAY_MS * DAY_MS
    stories = []
    for i in range(60):
        last = "paid" if i < 40 else ("cart" if i < 50 else "shipping")
        stories.append(session_story(i, day_b + i * 10 * MINUTE_MS, last))
    charges = [recovery_story(j, day_b + HOUR_MS + j * 7 * MINUTE_MS) for j in range(12)]
    # Wave 1 has every (device, channel) pair (i % 6) at every step, and both payment methods of charges,
    # so that the series wave 2 makes grow exist at the scrape between the waves.
    wave1 = [stories[i] for i in (*range(12), *range(40, 46), *range(50, 56))] + charges[0:6]
    wave2 = [s for s in stories + charges if s not in wave1]
    for k in range(8):
        closer = Story()
        order_lifecycle(closer, f"o-obs-closer-{k}", day_b + 3 * DAY_MS + k * HOUR_MS, None)
        wave2.append(closer)
    return wave1, wave2


def publish(settings, stories: list[Story], bad: list[tuple]) -> None:
    from posvenda.publish import Publisher

    with Publisher(settings) as publisher:
        for story in stories:
            for event in story.events:
                publisher.publish(event)
        for topic, key, value in bad:
            publisher.publish_raw(topic, key, value)


def processed_by_topic(stories: list[Story]) -> Counter:
    counts = Counter()
    for story in stories:
        for event in story.events:
            counts[SOURCE_OF_FAMILY[events.event_type(event.type).family.rsplit(".", 1)[1]]] += 1
    return counts


# --- Prometheus -------------------------------------------------------------------------------------

class Prometheus:
    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.dir = tmp_path / "prometheus"
        self.targets = tmp_path / "targets.json"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("POSVENDA_PROMETHEUS")},
                    "POSVENDA_PROMETHEUS_PORT": str(self.port), "POSVENDA_PROMETHEUS_DIR": str(self.dir),
                    "POSVENDA_PROMETHEUS_TARGETS": str(self.targets)}

    def script(self, *args) -> str:
        result = subprocess.run([str(REPO / "infra" / "prometheus.sh"), *args], env=self.env, cwd=REPO,
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise AssertionError(f"infra/prometheus.sh {' '.join(args)}: {result.stderr}{result.stdout}")
        return result.stdout

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body["status"] != "success":
            raise AssertionError(f"{expr}: {body}")
        return body["data"]["result"]

    def values(self, expr: str, label: str | None = None) -> dict:
        return {(r["metric"].get(label) if label else None): float(r["value"][1]) for r in self.query(expr)}


def has_number(result: list[dict]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


@pytest.fixture
def prometheus(tmp_path):
    prom = Prometheus(tmp_path)
    prom.script("start")
    yield prom
    prom.script("stop")


def metric_names_on(metrics_text: str) -> set[str]:
    """Sample names a /metrics page declares (families, with their _total/_bucket/... samples)."""
    names = set()
    for family in text_string_to_metric_families(metrics_text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


# --- the test ---------------------------------------------------------------------------------------

def test_every_dashboard_panel_query_returns_data_from_a_real_prometheus(settings, worker_factory, prometheus):
    from alerts import dashboards

    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    wave1, wave2 = scenario(now_ms)
    bad1 = [(catalogue.ORDERS, "o-bad-1", b"\x00not avro at all")]
    bad2 = [(catalogue.ORDERS, "o-bad-2", b"\x00still not avro"), (catalogue.VISITS, "s-bad-1", b"garbage")]

    # Given a worker scraped by a real Prometheus
    worker = worker_factory(settings)
    prometheus.script("targets", worker.url.removeprefix("http://"))
    wait_until(lambda: prometheus.values('up{job="posvenda"}') == {None: 1.0}, 60,
               what="Prometheus to scrape the worker")

    # When two waves of events are folded, with Prometheus scraping in between
    publish(settings, wave1, bad1)
    want1 = processed_by_topic(wave1)
    wait_until(lambda: prometheus.values(f"sum by (topic) (posvenda_events_processed_total{SOURCES})", "topic")
               == {t: float(n) for t, n in want1.items()}, 120, what="wave 1 processed and scraped")
    publish(settings, wave2, bad2)
    every = wave1 + wave2
    want = processed_by_topic(every)

    # Then the pipeline's figures equal the ones computed from the events
    wait_until(lambda: prometheus.values(f"sum by (topic) (posvenda_events_processed_total{SOURCES})", "topic")
               == {t: float(n) for t, n in want.items()}, 180, what="every valid event processed and scraped")
    wait_until(lambda: prometheus.values("sum by (topic) (posvenda_dead_letters_total)", "topic")
               == {"orders.events": 2.0, "visits.events": 1.0}, 60, what="dead letters counted")
    steps = Counter(step for story in every for step in story.steps)
    wait_until(lambda: prometheus.values("sum by (step) (posvenda_funnel_sessions_total)", "step")
               == {s: float(n) for s, n in steps.items()}, 60, what="funnel sessions per step")
    handled = [s.handling_seconds for s in every if s.handling_seconds is not None]
    assert prometheus.values("sum(posvenda_order_handling_seconds_count)") == {None: float(len(handled))}
    assert prometheus.values("sum(posvenda_order_handling_seconds_sum)") == {None: pytest.approx(sum(handled))}
    # Source topics are written outside transactions: once everything is committed their lag is 0 on
    # every partition (topics the worker writes in transactions keep 1 per partition: the commit marker).
    source_lag = f"posvenda_consumer_lag_messages{SOURCES}"
    wait_until(lambda: len(prometheus.query(source_lag)) == 4 * settings.partitions
               and set(prometheus.values(f"max by (topic) ({source_lag})", "topic").values()) == {0.0},
               60, what="consumer lag of every source partition to settle at 0")

    # And every dashboard panel's query returns data with a number in it
    queries = dashboards.all_queries()
    missing: list = []

    def all_answer():
        missing[:] = [(uid, title, expr) for uid, title, expr in queries if not has_number(prometheus.query(expr))]
        return not missing

    try:
        wait_until(all_answer, 240, interval=2, what="every dashboard query to return data")
    except AssertionError:
        raise AssertionError("dashboard queries without data:\n" + "\n".join(f"  {u} / {t}: {e}" for u, t, e in missing)
                             + f"\nworker log tail:\n{worker.log()[-2000:]}") from None

    # And every metric the dashboards and the alert rules read is on the worker's /metrics
    exposed = metric_names_on(worker.get_text("/metrics")) | {"up"}
    used = {name for _, _, expr in queries for name in dashboards.metric_names(expr)}
    assert not used - exposed, f"dashboards read metrics missing from /metrics: {sorted(used - exposed)}"
    if RULES.exists():
        rules = yaml.safe_load(RULES.read_text())
        recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
        read = {name for g in rules["groups"] for r in g["rules"] for name in dashboards.metric_names(str(r["expr"]))}
        absent = read - exposed - recorded
        assert not absent, f"alert rules read metrics missing from /metrics: {sorted(absent)}"
