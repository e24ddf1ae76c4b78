"""Visits, visitors vs buyers, customer 360 and order history end to end on the real broker.

Given simulated traffic (late events, impossible transitions) plus a hand-written scenario (a late page
view that merges two visits, a login that turns an anonymous session into a customer's, an erasure
request, delivered-before-shipped that a late `shipped` resolves, paid twice, shipped after cancelled,
redelivered duplicates), published in two rounds so that the second round arrives after the worker
has folded the first, every projection over HTTP equals an independent computation from the same
events (the oracle, tests/groundtruth.py, imports nothing from projections/ or streams/), the
compacted projection topics hold the same records, and `posvenda rebuild` reproduces each projection.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.error
import uuid
from zoneinfo import ZoneInfo

import pytest
from kafka import KafkaConsumer

from posvenda.publish import Publisher
from posvenda.simulate import generate
from tests import groundtruth
from tests.conftest import REPO, settings_env, wait_until
from topics import catalogue
from topics.events import Event

T0 = 1_788_271_200_000  # 2026-09-01T14:00Z, 11:00 in São Paulo
MIN, H, DAY = 60_000, 3_600_000, 86_400_000
TZ = ZoneInfo("America/Sao_Paulo")
CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


# --- the hand-written scenario ------------------------------------------------------------------

def make(type_, at, payload, session_id=None, customer_id=None, order_id=None, source="web"):
    return Event(str(uuid.uuid4()), type_, at, source, session_id, customer_id, order_id, payload)


def started(sid, at, ua=CHROME_WIN, customer_id=None, channel="organic"):
    return make("session_started", at, {"user_agent": ua, "channel": channel, "utm_source": None,
                                        "utm_campaign": None, "landing_page": "/home"}, sid, customer_id)


def page(sid, at, path, customer_id=None):
    return make("page_viewed", at, {"page_type": "category", "path": path, "product_id": None}, sid, customer_id)


def cart(sid, at, customer_id=None):
    return make("cart_item_added", at, {"product_id": "p-1", "quantity": 1, "unit_price": 99.9}, sid, customer_id)


def order_event(type_, oid, at, customer_id, session_id=None, **payload):
    defaults = {
        "order_placed": {"items": [{"product_id": "p-1", "quantity": 1, "unit_price": 99.9}], "total": 119.9,
                         "freight": 20.0, "payment_method": "pix", "installments": 1, "uf": "SP",
                         "city": "Santos", "carrier": "loggi", "promised_delivery_at": at + 5 * DAY},
        "payment_pending": {"charge_id": f"{oid}-ch", "method": "pix", "amount": 119.9, "due_at": at + H},
        "order_paid": {"charge_id": f"{oid}-ch", "method": "pix", "amount": 119.9},
        "order_invoiced": {"invoice_number": "9"},
        "order_shipped": {"carrier": "loggi", "tracking_code": "LGI1"},
        "order_delivered": {"receiver": "Joana Prado"},
        "order_cancelled": {"reason": "customer_request"},
        "message_sent": {"channel": "email", "template": "t", "phase": "placed", "action_id": None},
    }
    return make(type_, at, {**defaults[type_], **payload}, session_id, customer_id, oid,
                "crm" if type_ == "message_sent" else "erp")


def scenario() -> tuple[list[Event], list[Event]]:
    """(first round, second round): the second round arrives after the worker folded the first."""
    first, second = [], []
    # an anonymous session on the 1st, its late page view in round two
    first += [started("hs-anon", T0), page("hs-anon", T0, "/a"), page("hs-anon", T0 + 5 * MIN, "/b"),
              cart("hs-anon", T0 + 6 * MIN)]
    second += [page("hs-anon", T0 + 2 * MIN, "/late")]
    # a known customer's session with two visits (45 minutes apart) that a late page view merges
    first += [started("hs-b", T0 + H, SAFARI_IPHONE, "hc-b"), page("hs-b", T0 + H, "/x", "hc-b"),
              page("hs-b", T0 + H + 10 * MIN, "/y", "hc-b"), page("hs-b", T0 + H + 55 * MIN, "/z", "hc-b")]
    second += [page("hs-b", T0 + H + 32 * MIN, "/bridge", "hc-b")]
    # an anonymous session that logs in during round two: its visit moves to customer hc-c
    first += [started("hs-c", T0 + 2 * H), page("hs-c", T0 + 2 * H, "/p"), cart("hs-c", T0 + 2 * H + MIN)]
    second += [make("registration_completed", T0 + 2 * H + 3 * MIN, {"kind": "login"}, "hs-c", "hc-c")]
    # a session across local midnight (23:50 -> 00:10 in São Paulo): a visitor on two days
    midnight = T0 + 13 * H  # 2026-09-02T03:00Z = 00:00 local
    first += [started("hs-night", midnight - 10 * MIN, customer_id="hc-c"),
              page("hs-night", midnight - 10 * MIN, "/n1", "hc-c"), page("hs-night", midnight + 10 * MIN, "/n2", "hc-c")]
    # profiles, NPS out of order, an erasure request in round two
    reg = {"email": "x@example.com", "cpf": None, "phone": None, "birth_date": None, "sex": None, "consents": []}
    first += [make("customer_registered", T0 - DAY, {**reg, "name": "Bia Lima", "uf": "SP", "city": "Santos"},
                   customer_id="hc-b", source="crm"),
              make("customer_registered", T0 - DAY, {**reg, "name": "Caio Reis", "uf": "RJ", "city": "Niterói"},
                   customer_id="hc-c", source="crm"),
              make("nps_answered", T0 + 3 * DAY, {"score": 10, "comment": None}, customer_id="hc-c",
                   order_id="ho-2", source="crm")]
    second += [make("nps_answered", T0 + 2 * DAY, {"score": 4, "comment": None}, customer_id="hc-c",
                    order_id="ho-2", source="crm"),
               make("customer_erasure_requested", T0 + 4 * DAY, {"reason": "lgpd_request"}, customer_id="hc-b",
                    source="crm")]
    # ho-1: delivered arrives before shipped (flagged), shipped comes late and resolves it
    first += [order_event("order_placed", "ho-1", T0 + H + 50 * MIN, "hc-b", "hs-b"),
              order_event("payment_pending", "ho-1", T0 + H + 51 * MIN, "hc-b"),
              order_event("message_sent", "ho-1", T0 + H + 52 * MIN, "hc-b"),
              order_event("order_paid", "ho-1", T0 + 2 * H, "hc-b"),
              order_event("order_invoiced", "ho-1", T0 + 5 * H, "hc-b"),
              order_event("order_delivered", "ho-1", T0 + 3 * DAY, "hc-b")]
    second += [order_event("order_shipped", "ho-1", T0 + DAY, "hc-b"),
               order_event("message_sent", "ho-1", T0 + DAY + MIN, "hc-b", phase="shipped")]
    # ho-2: paid twice; ho-3: shipped after cancelled (placed on the next local day)
    first += [order_event("order_placed", "ho-2", T0 + 2 * H + 10 * MIN, "hc-c", payment_method="credit_card"),
              order_event("order_paid", "ho-2", T0 + 2 * H + 11 * MIN, "hc-c", method="credit_card"),
              order_event("order_paid", "ho-2", T0 + 2 * H + 40 * MIN, "hc-c", method="credit_card"),
              order_event("order_placed", "ho-3", midnight + 5 * MIN, "hc-c", "hs-night", payment_method="boleto"),
              order_event("order_cancelled", "ho-3", midnight + 2 * H, "hc-c")]
    second += [order_event("order_shipped", "ho-3", midnight + 5 * H, "hc-c")]
    return first, second


def simulated() -> tuple[list[Event], list[Event]]:
    events = list(generate(11, 120, T0, late_fraction=0.1, impossible_fraction=0.5, sessions_per_day=1500,
                           until_ms=T0 + 45 * DAY))
    rng = random.Random(5)
    late = [e for e in events if rng.random() < 0.1]
    late_ids = {e.event_id for e in late}
    return [e for e in events if e.event_id not in late_ids], late


# --- the oracle: independent of the code under test (tests/groundtruth.py) ----------------------

expected_sessions = groundtruth.sessions
expected_orders = groundtruth.orders
expected_customers = groundtruth.customers
expected_visitors_buyers = groundtruth.visitors_buyers


# --- plumbing -----------------------------------------------------------------------------------

def publish(settings, events, duplicates=()):
    with Publisher(settings) as publisher:
        for e in [*events, *duplicates]:
            publisher.publish(e)


def all_items(worker, path) -> list[dict]:
    items, offset = [], 0
    while True:
        page = worker.get(f"{path}?offset={offset}&limit=1000")
        items += page["items"]
        offset += len(page["items"])
        if offset >= page["total"] or not page["items"]:
            return items


def latest_per_key(settings, topic) -> dict[str, dict]:
    consumer = KafkaConsumer(settings.topic_name(topic), group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=2000, isolation_level="read_committed",
                             **settings.kafka_python_config())
    try:
        latest = {}
        for m in consumer:
            latest[m.key.decode()] = json.loads(m.value) if m.value is not None else None
        return {k: v for k, v in latest.items() if v is not None}
    finally:
        consumer.close()


def rebuild(settings, name, tmp_path, *extra):
    out = tmp_path / f"rebuild-{name}.jsonl"
    result = subprocess.run([sys.executable, "-m", "posvenda.cli", "rebuild", name, "--out", str(out), *extra],
                            check=False, env=settings_env(settings), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"rebuild {name}:" in result.stderr and "msg" in result.stderr, "a progress bar and a summary"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return lines[0]["days"] if name == "visitors-buyers" else [line["record"] for line in lines]


def assert_matches_oracle(worker, events, what: str) -> None:
    """Polls every HTTP projection until it equals the oracle's value for `events`."""
    sessions, orders = expected_sessions(events), expected_orders(events)
    customers = expected_customers(events, sessions, orders)
    days = expected_visitors_buyers(sessions, orders)
    want_visits = groundtruth.public(sessions)
    wait_until(lambda: {r["session_id"]: r for r in all_items(worker, "/visits")} == want_visits, timeout=180,
               what=f"visits to match the oracle ({what})")
    want_orders = {oid: {k: v for k, v in o.items() if k != "last_at"} for oid, o in groundtruth.public(orders).items()}
    wait_until(lambda: {r["order_id"]: groundtruth.project_order(r) for r in all_items(worker, "/orders")} == want_orders,
               timeout=180, what=f"orders to match the oracle ({what})")
    wait_until(lambda: {r["customer_id"]: r for r in all_items(worker, "/customers")} == customers, timeout=180,
               what=f"customers to match the oracle ({what})")
    wait_until(lambda: {d: {k: v for k, v in row.items() if k != "conversion"}
                        for d, row in worker.get("/visitors-buyers")["days"].items()} == days,
               timeout=180, what=f"visitors vs buyers to match the oracle ({what})")


def test_projections_match_the_independent_computation_and_the_rebuild(settings, worker_factory, tmp_path):
    # Given simulated traffic and the hand-written scenario, in two rounds, with redelivered duplicates
    sim_first, sim_late = simulated()
    hand_first, hand_late = scenario()
    first, second = sim_first + hand_first, sim_late + hand_late
    random.Random(3).shuffle(first)
    random.Random(4).shuffle(second)
    duplicates = random.Random(6).sample(first, 40)
    everything = first + second
    assert len(everything) < 2500, "keep the broker test small"
    orders = expected_orders(everything)
    assert any(o["flagged"] for oid, o in orders.items() if not oid.startswith("ho-")), "simulated impossible transitions"
    assert sum(1 for o in orders.values() if "shipped" in o["reached"]) >= 3

    # When the first round is folded, it matches the oracle of the first round
    publish(settings, first, duplicates)
    worker = worker_factory(settings)
    assert_matches_oracle(worker, first, "first round")
    assert worker.get("/visits/hs-b")["visit_count"] == 2 and worker.get("/visits/hs-c")["customer_id"] is None
    assert worker.get("/orders/ho-1")["flagged_count"] == 1 and worker.get("/customers/hc-b")["name"] == "Bia Lima"
    # and when the second round arrives late, every projection over HTTP equals the oracle of everything
    publish(settings, second, duplicates[:10])
    assert_matches_oracle(worker, everything, "both rounds")

    # and the hand-written cases came out as they should
    assert worker.get("/visits/hs-b")["visits"][0]["pages"] == 4 and worker.get("/visits/hs-b")["visit_count"] == 1
    ho1 = worker.get("/orders/ho-1")
    assert ho1["status"] == "delivered" and ho1["flagged_count"] == 0 and ho1["messages"] == 2
    assert [e["reason"] for e in worker.get("/orders/ho-2")["timeline"] if e.get("flagged")] == ["paid twice"]
    ho3 = worker.get("/orders/ho-3")
    assert ho3["status"] == "cancelled" and ho3["flagged_count"] == 1
    with pytest.raises(urllib.error.HTTPError, match="404"):
        worker.get("/customers/hc-b")  # erased
    hc_c = worker.get("/customers/hc-c")
    assert hc_c["nps"]["score"] == 10 and {v["session_id"] for v in hc_c["visits"]} == {"hs-c", "hs-night"}
    assert worker.get("/visits/hs-c")["customer_id"] == "hc-c", "the login in round two named the customer"
    assert worker.get("/visitors-buyers?day=2026-09-02")["days"]["2026-09-02"]["visitors"] >= 1
    flagged_metric = [line for line in urlopen_text(worker.url + "/metrics").splitlines()
                      if line.startswith("posvenda_order_transitions_flagged_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in flagged_metric) >= sum(len(o["flagged"]) for o in orders.values())
    assert "Bia Lima" not in worker.log() and "Caio Reis" not in worker.log()

    # and the compacted projection topics hold the live records
    live_orders = {r["order_id"]: r for r in all_items(worker, "/orders")}
    wait_until(lambda: latest_per_key(settings, catalogue.PROJECTION_ORDERS) == live_orders, timeout=60,
               what="projections.orders to hold the live records")
    live_customers = {r["customer_id"]: r for r in all_items(worker, "/customers")}
    wait_until(lambda: latest_per_key(settings, catalogue.PROJECTION_CUSTOMERS) == live_customers, timeout=60,
               what="projections.customers to hold the live records")
    assert "Bia Lima" not in json.dumps(latest_per_key(settings, catalogue.PROJECTION_CUSTOMERS))

    # and a rebuild from the log reproduces each live projection exactly
    assert rebuild(settings, "visits", tmp_path) == all_items(worker, "/visits")
    assert rebuild(settings, "orders", tmp_path, "--publish") == all_items(worker, "/orders")
    assert latest_per_key(settings, catalogue.PROJECTION_ORDERS) == live_orders, "republished records are the same"
    assert rebuild(settings, "customers", tmp_path) == all_items(worker, "/customers")
    assert rebuild(settings, "visitors-buyers", tmp_path) == worker.get("/visitors-buyers")["days"]


def urlopen_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()
