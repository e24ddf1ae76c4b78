"""Return-rate and late-delivery alerts end to end on the real broker.

Given a generated catalogue where three product pages have abnormal return rates, one has a high but
not significant rate, a few small-sample pages have a single return, and one carrier delivers late,
published in three event-time phases (deliveries and returns; a recovery with many more deliveries
of two of the bad pages; a last tick that closes the days), the worker must raise exactly the
expected alerts and no others, clear those that recovered, and show the same figures over HTTP and
Prometheus as a computation made here, independently, from the raw events (own Wilson bound, own
windows, own day closing).
"""
from __future__ import annotations

import math
import random
import urllib.request
import uuid

from kafka import KafkaConsumer

from alerts.alert_rules import config
from posvenda.publish import Publisher
from tests.conftest import wait_until
from topics import catalogue, codec
from topics.events import Event

DAY = 24 * 3600 * 1000
HOUR = 3600 * 1000
CARRIERS = ("correios_pac", "jadlog", "loggi")
REASON_TARGET = {"not_as_described": "page", "wrong_size": "page", "damaged_in_transport": "logistics",
                 "defect": "product", "regret": "customer"}
REASON_ORDER = ("defect", "not_as_described", "wrong_size", "damaged_in_transport", "regret")


# --- the scenario -------------------------------------------------------------------------------

def catalogue_spec(rng: random.Random) -> dict[str, tuple[int, list[tuple[str, int]]]]:
    """product id -> (units delivered in phase 1, [(reason, units returned)])."""
    spec = {
        "page-bad-described": (45, [("not_as_described", 10), ("regret", 4)]),
        "page-bad-transport": (45, [("damaged_in_transport", 9), ("defect", 3)]),
        "page-bad-size": (45, [("wrong_size", 8), ("not_as_described", 5)]),
        "page-borderline": (50, [("regret", 5)]),  # 10 %: above baseline, not significantly
        "page-small-high": (10, [("defect", 5)]),  # 50 % but under the minimum sample
    }
    for i in range(3):
        spec[f"page-single-return-{i}"] = (2 + i, [("defect", 1)])
    for i in range(16):
        returned = rng.randint(0, 2)
        spec[f"page-normal-{i:02d}"] = (rng.randint(30, 50), [("regret", returned)] if returned else [])
    return spec


def make_event(type_, at, order_id, source="erp", **payload) -> Event:
    return Event(str(uuid.uuid4()), type_, at, source, customer_id=f"c-{order_id}", order_id=order_id, payload=payload)


def order_events(order_id, lines, placed_at, delivered_at, promised_at, carrier) -> list[Event]:
    items = [{"product_id": p, "quantity": q, "unit_price": 50.0} for p, q in lines]
    total = sum(q * 50.0 for _, q in lines)
    return [
        make_event("order_placed", placed_at, order_id, "web", items=items, total=total, freight=0.0,
                   payment_method="credit_card", installments=1, uf="SP", city="Campinas", carrier=carrier,
                   promised_delivery_at=promised_at),
        make_event("order_shipped", placed_at + 2 * HOUR, order_id, carrier=carrier, tracking_code=f"T{order_id}"),
        make_event("order_delivered", delivered_at, order_id, "carrier", receiver=None),
    ]


def phase_one(t0: int, rng: random.Random, spec: dict) -> list[Event]:
    """Orders placed on day 0, delivered on day 1, returns on day 2; correios_pac half late."""
    chunks = []
    for product, (units, _) in spec.items():
        while units:
            q = min(units, rng.randint(1, 4))
            chunks.append((product, q))
            units -= q
    rng.shuffle(chunks)
    n_orders = 96
    orders: list[list[tuple[str, int]]] = [[] for _ in range(n_orders)]
    for i, chunk in enumerate(chunks):
        orders[i % n_orders].append(chunk)
    out, holdings = [], []
    for i, lines in enumerate(orders):
        order_id = f"o1-{i:03d}"
        carrier = CARRIERS[i % 3]
        delivered_at = t0 + DAY + rng.randint(1, 22) * HOUR
        late = carrier == "correios_pac" and i % 2 == 0
        promised_at = t0 + DAY - 1000 if late else t0 + 5 * DAY
        out += order_events(order_id, lines, t0 + rng.randint(0, 20) * HOUR, delivered_at, promised_at, carrier)
        holdings.append((order_id, lines))
    for product, (_, returns) in spec.items():
        for reason, units in returns:
            for order_id, lines in holdings:
                have = sum(q for p, q in lines if p == product)
                if not units or not have:
                    continue
                q = min(units, have)
                out.append(make_event("order_returned", t0 + 2 * DAY + rng.randint(0, 20) * HOUR, order_id, "crm",
                                      items=[{"product_id": product, "quantity": q}], reason=reason))
                units -= q
            assert units == 0, f"{product}: not enough delivered units to return"
    return out


def phase_two(t0: int, rng: random.Random, spec: dict) -> list[Event]:
    """Day 10: many more deliveries of two bad pages (they recover), a few of every normal page."""
    out = []
    normals = [p for p in spec if p.startswith("page-normal")]
    for i in range(20):
        lines = [("page-bad-described", 13), ("page-bad-transport", 10), (normals[i % len(normals)], 1)]
        out += order_events(f"o2-{i:03d}", lines, t0 + 9 * DAY + i * HOUR, t0 + 10 * DAY + rng.randint(1, 20) * HOUR,
                            t0 + 14 * DAY, CARRIERS[i % 3])
    return out


def phase_three(t0: int, spec: dict) -> list[Event]:
    """Day 13: one order per carrier with every page, so every partition's watermark closes day 11."""
    out = []
    for i, carrier in enumerate(CARRIERS):
        lines = [(p, 1) for p in sorted(spec)]
        out += order_events(f"o3-{i}", lines, t0 + 12 * DAY, t0 + 13 * DAY + HOUR, t0 + 16 * DAY, carrier)
    return out


# --- the independent ground truth ---------------------------------------------------------------

def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    k = min(k, n)
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def facts_by_subject(all_events: list[Event]):
    """{product: [(day, delivered, returned, reason)]}, {carrier: [(day, 1, late, None)]} from raw events."""
    placed = {e.order_id: e for e in all_events if e.type == "order_placed"}
    shipped = {e.order_id: e.payload["carrier"] for e in all_events if e.type == "order_shipped"}
    seen, products, carriers = set(), {}, {}
    for e in all_events:
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        if e.type == "order_delivered":
            units = {}  # an order's lines of one product are one delivery of their summed units
            for item in placed[e.order_id].payload["items"]:
                units[item["product_id"]] = units.get(item["product_id"], 0) + item["quantity"]
            for product, n in units.items():
                products.setdefault(product, []).append((e.occurred_at // DAY, n, 0, None))
            late = int(e.occurred_at > placed[e.order_id].payload["promised_delivery_at"])
            carriers.setdefault(shipped[e.order_id], []).append((e.occurred_at // DAY, 1, late, None))
        elif e.type == "order_returned":
            for item in e.payload["items"]:
                products.setdefault(item["product_id"], []).append(
                    (e.occurred_at // DAY, 0, item["quantity"], e.payload["reason"]))
    return products, carriers


def expected_alerts(rows, rule, threshold, first_day, last_day):
    """[(alert_id, state, occurred_at, reasons)] for one subject, judging each day's window in turn."""
    out, episode = [], None
    for day in range(first_day, last_day + 1):
        n = sum(u for d, u, _, _ in rows if day - rule.window_days < d <= day)
        k = sum(h for d, _, h, _ in rows if day - rule.window_days < d <= day)
        reasons = {}
        for d, _, h, reason in rows:
            if h and day - rule.window_days < d <= day:
                reasons[reason] = reasons.get(reason, 0) + h
        at = (day + 1) * DAY
        if episode is None and n >= rule.min_sample and wilson(k, n, rule.confidence_z)[0] > threshold:
            episode = at
            out.append(("raised", at, episode, reasons, n, k))
        elif episode is not None and (n == 0 or k / n <= threshold * rule.clear_factor):
            out.append(("cleared", at, episode, reasons, n, k))
            episode = None
    return out


def metrics_text(worker) -> str:
    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as response:
        return response.read().decode()


def wait_applied(worker, phase: int, facts: int, deliveries: int) -> None:
    """Waits until the worker has applied every distinct fact so far (a phase's days are complete)."""
    progress = {}

    def applied():
        rates = worker.get("/return-rates?limit=1000")["items"]
        late = worker.get("/late-deliveries")["items"]
        progress.update(facts=sum(r["facts_applied"] for r in rates), deliveries=sum(c["facts_applied"] for c in late))
        return progress == {"facts": facts, "deliveries": deliveries}

    try:
        wait_until(applied, 120, what=f"phase {phase}: {facts} product facts and {deliveries} deliveries applied")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; applied: {progress}") from None


def alert_events(s, expected: int) -> list[dict]:
    consumer = KafkaConsumer(s.topic_name(catalogue.ALERTS), group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1000, isolation_level="read_committed",
                             **s.kafka_python_config())
    seen = []
    try:
        wait_until(lambda: seen.extend(consumer) or len(seen) >= expected, 90, what=f"{expected} alert events")
        seen.extend(consumer)  # and nothing more arrives within a second
    finally:
        consumer.close()
    return [codec.decode(m.value)[1] | {"key": m.key.decode()} for m in seen]


# --- the test -----------------------------------------------------------------------------------

def test_abnormal_return_rates_and_a_late_carrier_raise_exactly_the_expected_alerts(settings, worker_factory):
    rr, late_rule = config().return_rate, config().late_deliveries
    rng = random.Random(20241004)
    t0 = ((1_795_514_400_000 // DAY) - 40) * DAY  # a UTC day boundary, 40 days before 2026-11-24
    spec = catalogue_spec(rng)
    phases = [phase_one(t0, rng, spec), phase_two(t0, rng, spec), phase_three(t0, spec)]
    duplicates = [e for e in phases[0] if e.type in ("order_delivered", "order_returned")][:10]
    phases[0] += duplicates  # redelivered events must not count twice
    worker = worker_factory(settings)

    published: list[Event] = []
    for number, phase in enumerate(phases, 1):
        # Given the events of a phase, published, and the worker done with them
        with Publisher(settings) as publisher:
            for event in phase:
                publisher.publish(event)
        published += phase
        products, carriers = facts_by_subject(published)
        wait_applied(worker, number, sum(len(rows) for rows in products.values()),
                     sum(len(rows) for rows in carriers.values()))

    # Then the alerts on alerts.events are exactly those computed here from the raw events
    products, carriers = facts_by_subject(published)
    last_closed = (t0 + 13 * DAY + HOUR - rr.allowed_lateness_ms) // DAY - 1  # phase 3 closes day 11
    first_day = t0 // DAY
    want = {}
    for product, rows in products.items():
        for state, at, episode, reasons, n, k in expected_alerts(rows, rr, rr.baseline_rate + rr.margin, first_day,
                                                                 last_closed):
            want[(f"return_rate:{product}:{episode}", state)] = (at, reasons, n, k)
    for carrier, rows in carriers.items():
        for state, at, episode, reasons, n, k in expected_alerts(rows, late_rule, late_rule.baseline_rate, first_day,
                                                                 last_closed):
            want[(f"late_deliveries:{carrier}:{episode}", state)] = (at, reasons, n, k)
    # the scenario is what it claims to be: three bad pages, two recover; correios_pac raised then cleared
    assert sorted(k[0].split(":")[1] for k in want if k[1] == "raised") == [
        "correios_pac", "page-bad-described", "page-bad-size", "page-bad-transport"]
    assert sorted(k[0].split(":")[1] for k in want if k[1] == "cleared") == [
        "correios_pac", "page-bad-described", "page-bad-transport"]

    got = alert_events(settings, len(want))
    keys = [(a["alert_id"], a["state"]) for a in got]
    assert len(keys) == len(set(keys)), f"an alert was raised or cleared twice: {keys}"
    assert set(keys) == set(want)
    for alert in got:
        at, reasons, n, k = want[(alert["alert_id"], alert["state"])]
        assert alert["key"] == alert["alert_id"]
        assert int(alert["occurred_at"].timestamp() * 1000) == at
        if alert["rule"] == "return_rate" and alert["state"] == "raised":
            dominant = min(reasons, key=lambda r: (-reasons[r], REASON_ORDER.index(r)))
            d = alert["details"]
            assert (d["dominant_reason"], d["points_at"]) == (dominant, REASON_TARGET[dominant])
            assert (int(d["delivered_units"]), int(d["returned_units"])) == (n, k)
            assert alert["subject"] in alert["summary"]
    by_subject = {a["subject"]: a["details"] for a in got if a["state"] == "raised"}
    assert by_subject["page-bad-described"]["points_at"] == "page"
    assert by_subject["page-bad-transport"]["points_at"] == "logistics"

    # And /alerts lists exactly the alerts still open: the page that did not recover
    active = worker.get("/alerts")
    assert [(a["rule"], a["subject"]) for a in active["alerts"]] == [("return_rate", "page-bad-size")]

    # And /return-rates shows the window at the last closed day, as computed here, page by page
    rows = {r["product_id"]: r for r in worker.get("/return-rates?limit=1000")["items"]}
    assert set(rows) == set(products)
    for product, facts in products.items():
        n = sum(u for d, u, _, _ in facts if last_closed - rr.window_days < d <= last_closed)
        k = sum(h for d, _, h, _ in facts if last_closed - rr.window_days < d <= last_closed)
        assert (rows[product]["delivered_units"], rows[product]["returned_units"]) == (n, k), product
    page = worker.get("/return-rates?offset=2&limit=3")
    assert page["total"] == len(products) and [r["product_id"] for r in page["items"]] == sorted(products)[2:5]

    # And Prometheus sees the rate of pages with enough sample only, the open alert and the deliveries
    text = metrics_text(worker)
    assert 'posvenda_alerts_active{rule="return_rate"} 1.0' in text
    assert 'posvenda_alerts_active{rule="late_deliveries"} 0.0' in text
    assert 'posvenda_return_rate_ratio{product="page-bad-size"}' in text
    assert 'product="page-small-high"' not in text and 'product="page-single-return-0"' not in text
    for carrier, facts in carriers.items():
        assert f'posvenda_deliveries_total{{carrier="{carrier}"}} {float(len(facts))}' in text
        late = sum(h for _, _, h, _ in facts)
        assert f'posvenda_late_deliveries_total{{carrier="{carrier}"}} {float(late)}' in text
