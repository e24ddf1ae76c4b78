"""The traffic generator: deterministic, valid per the schemas, and shaped like real traffic.

Expected values are recomputed here from the generated events (ground truth), never read back from
the generator's own counters.
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from ua_parser import parse

from posvenda.simulate import MAX_LATE_MS, PROBLEM_PRODUCTS, generate, write_jsonl
from topics.events import event_types, from_json, to_json

START_MS = 1_741_611_600_000  # 2025-03-10T13:00:00Z, a Monday, 10h in Brasília
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "events.sample.jsonl"
SAMPLE_ARGS = {"seed": 3138, "sessions": 1, "start_ms": START_MS}  # how examples/events.sample.jsonl was made


@pytest.fixture(scope="module")
def traffic():
    """A day and a half of clean traffic (no disorder), big enough for rates to settle."""
    return list(generate(11, 20_000, START_MS, late_fraction=0.0, impossible_fraction=0.0))


def by_order(events):
    orders = defaultdict(list)
    for e in events:
        if e.order_id is not None and event_types()[e.type].family == "posvenda.orders.OrderEvent":
            orders[e.order_id].append(e)
    for history in orders.values():
        history.sort(key=lambda e: e.occurred_at)
    return orders


def impossible_orders(events) -> set[str]:
    """Orders whose event-time history breaks the state machine: delivered before (or without) shipped,
    paid twice, or anything but a refund after cancellation."""
    bad = set()
    for order_id, history in by_order(events).items():
        types = [e.type for e in history]
        if "order_delivered" in types and ("order_shipped" not in types or
                                           types.index("order_delivered") < types.index("order_shipped")):
            bad.add(order_id)
        if types.count("order_paid") > 1:
            bad.add(order_id)
        if "order_cancelled" in types:
            after = types[types.index("order_cancelled") + 1:]
            if any(t != "order_refunded" for t in after):
                bad.add(order_id)
    return bad


def sessions_with(events, type_, where=lambda e: True) -> set[str]:
    return {e.session_id for e in events if e.type == type_ and where(e)}


# --- determinism and validity ------------------------------------------------------------------


def test_same_seed_gives_identical_events_and_another_seed_does_not():
    first = list(generate(7, 300, START_MS))
    again = list(generate(7, 300, START_MS))
    other = list(generate(8, 300, START_MS))

    assert first == again
    assert [e.event_id for e in first] != [e.event_id for e in other]


def test_every_event_survives_the_json_ingest_form():
    events = list(generate(3, 1_500, START_MS, late_fraction=0.05, impossible_fraction=0.3))

    for e in events:
        assert from_json(json.loads(json.dumps(to_json(e)))) == e
    assert len({e.event_id for e in events}) == len(events)
    assert all(isinstance(e.occurred_at, int) for e in events)


def test_every_event_type_of_the_source_families_shows_up(traffic):
    families = {"visits", "cart", "checkout", "orders", "customers", "messages", "feedback"}
    expected = {name for name, t in event_types().items() if t.family.split(".")[1] in families}
    expected -= {"customer_erasure_requested"}  # erasure requests are not simulated

    assert expected <= {e.type for e in traffic}


def test_ids_are_readable_and_order_events_carry_session_and_customer(traffic):
    patterns = {"session_id": r"s-\d{6}", "customer_id": r"c-\d{5}", "order_id": r"o-\d{6}"}
    for e in traffic:
        for field, pattern in patterns.items():
            value = getattr(e, field)
            assert value is None or re.fullmatch(pattern, value), (e.event_id, field, value)
        if e.order_id and event_types()[e.type].family == "posvenda.orders.OrderEvent":
            assert e.session_id and e.customer_id, e
    charges = {e.payload["charge_id"] for e in traffic if e.type == "payment_pending"}
    assert all(re.fullmatch(r"ch-\d{6}-\d+", c) for c in charges)


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="scenario"):
        generate(1, 10, START_MS, scenario="nope")


# --- stream order and disorder --------------------------------------------------------------------


def test_without_late_events_the_stream_is_in_event_time_order(traffic):
    times = [e.occurred_at for e in traffic]
    assert times == sorted(times)


def test_late_events_arrive_after_later_ones_but_only_by_minutes():
    events = list(generate(5, 2_000, START_MS, late_fraction=0.05, impossible_fraction=0.0))

    latest, late = 0, 0
    for e in events:
        if e.occurred_at < latest:
            late += 1
            assert latest - e.occurred_at <= MAX_LATE_MS, e
        latest = max(latest, e.occurred_at)
    assert 0.01 * len(events) < late < 0.06 * len(events)


def test_impossible_transitions_only_when_asked(traffic):
    assert impossible_orders(traffic) == set()

    events = list(generate(5, 4_000, START_MS, impossible_fraction=0.3))
    orders = by_order(events)
    bad = impossible_orders(events)
    assert 0.15 * len(orders) < len(bad) < 0.45 * len(orders)


def test_until_ms_cuts_the_future_off_a_stream_that_is_otherwise_the_same():
    until = START_MS + 2 * DAY_MS
    full = list(generate(9, 500, START_MS))
    cut = list(generate(9, 500, START_MS, until_ms=until))

    assert cut == [e for e in full if e.occurred_at <= until]
    assert len(cut) < len(full)


# --- realism ---------------------------------------------------------------------------------------


def test_funnel_narrows_at_every_step_with_a_freight_drop_before_payment(traffic):
    sessions = sessions_with(traffic, "session_started")
    product = sessions_with(traffic, "page_viewed", lambda e: e.payload["product_id"] is not None)
    cart = sessions_with(traffic, "cart_item_added")
    shipping = sessions_with(traffic, "shipping_option_chosen")
    payment = sessions_with(traffic, "payment_method_chosen")
    registration = sessions_with(traffic, "registration_completed")
    placed = sessions_with(traffic, "order_placed")
    paid_orders = {e.order_id for e in traffic if e.type == "order_paid"}
    placed_orders = {e.order_id for e in traffic if e.type == "order_placed"}

    assert len(sessions) == 20_000
    assert len(sessions) > len(product) > len(cart) > len(shipping) > len(payment) > len(registration)
    assert len(registration) > len(placed) and len(placed_orders) > len(paid_orders)
    assert 0.5 < len(product) / len(sessions) < 0.7
    assert 0.15 < len(cart) / len(product) < 0.35
    assert len(payment) / len(shipping) < len(shipping) / len(cart)  # freight scares people off
    assert 0.015 < len(placed) / len(sessions) < 0.04
    assert placed <= payment <= shipping <= cart


def test_pages_per_visit_and_device_mix(traffic):
    pages = Counter(e.session_id for e in traffic if e.type == "page_viewed")
    per_visit = sum(pages.values()) / len(pages)
    oses = Counter(parse(e.payload["user_agent"]).os.family for e in traffic if e.type == "session_started")
    total = sum(oses.values())

    assert 3 <= min(pages.values()) and max(pages.values()) <= 22
    assert 5 < per_visit < 11
    assert 0.4 < oses["Android"] / total < 0.6
    assert 0.2 < oses["iOS"] / total < 0.35
    assert oses["Windows"] + oses["Mac OS X"] > 0.1 * total


def test_anonymous_until_registration_and_returning_customers(traffic):
    registered_in = {e.session_id: e.occurred_at for e in traffic if e.type == "registration_completed"
                     and e.payload["kind"] == "new_account"}
    for e in traffic:
        if e.session_id in registered_in and e.type in ("page_viewed", "cart_item_added", "session_started"):
            assert (e.customer_id is None) == (e.occurred_at < registered_in[e.session_id]), e

    sessions_of = defaultdict(set)
    for e in traffic:
        if e.customer_id and e.session_id and e.type in ("session_started", "page_viewed"):
            sessions_of[e.customer_id].add(e.session_id)
    assert sum(len(s) > 1 for s in sessions_of.values()) > 50


def test_registered_customers_have_valid_cpfs_and_plausible_data(traffic):
    def cpf_ok(cpf: str) -> bool:
        d = [int(c) for c in cpf if c.isdigit()]
        if len(d) != 11 or len(set(d)) == 1:
            return False
        for n in (9, 10):
            check = sum(d[i] * (n + 1 - i) for i in range(n)) * 10 % 11 % 10
            if check != d[n]:
                return False
        return True

    registered = [e for e in traffic if e.type == "customer_registered"]
    assert len(registered) > 100
    assert len({e.customer_id for e in registered}) == len(registered)
    for e in registered:
        p = e.payload
        assert re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", p["cpf"]) and cpf_ok(p["cpf"]), p["cpf"]
        assert "@" in p["email"] and len(p["name"].split()) >= 2
        assert p["phone"] is None or re.fullmatch(r"\+55 \d{2} 9\d{4}-\d{4}", p["phone"])
        assert set(p["consents"]) <= {"email", "whatsapp", "sms"}
    assert Counter(e.payload["uf"] for e in registered).most_common(1)[0][0] == "SP"


def test_boletos_both_paid_and_never_paid_and_pix_expiring(traffic):
    outcome = {}
    for history in by_order(traffic).values():
        types = [e.type for e in history]
        method = history[0].payload["payment_method"]
        outcome.setdefault(method, Counter())["paid" if "order_paid" in types else "unpaid"] += 1
        pending = [e for e in history if e.type == "payment_pending"]
        if method in ("boleto", "pix"):
            assert len(pending) == 1
            ahead = pending[0].payload["due_at"] - pending[0].occurred_at
            if method == "pix":
                assert 30 * 60_000 - 10_000 <= ahead <= DAY_MS
            else:
                assert DAY_MS - 10_000 <= ahead <= 4 * DAY_MS
            if "order_paid" not in types:
                assert types[-2:] == ["payment_expired", "order_cancelled"]
                assert history[-1].payload["reason"] == "payment_not_made"
        else:
            assert not pending

    boleto, pix, card = outcome["boleto"], outcome["pix"], outcome["credit_card"]
    assert 0.25 < boleto["unpaid"] / sum(boleto.values()) < 0.5
    assert 0.05 < pix["unpaid"] / sum(pix.values()) < 0.3
    assert card["unpaid"] / sum(card.values()) < 0.15
    assert 0.45 < sum(card.values()) / sum(sum(c.values()) for c in outcome.values()) < 0.65


def test_problem_products_are_returned_far_more_often(traffic):
    delivered, returned, reasons = Counter(), Counter(), defaultdict(Counter)
    for history in by_order(traffic).values():
        if any(e.type == "order_delivered" for e in history):
            for item in history[0].payload["items"]:
                delivered[item["product_id"]] += item["quantity"]
        for e in history:
            if e.type == "order_returned":
                for item in e.payload["items"]:
                    returned[item["product_id"]] += item["quantity"]
                    reasons[item["product_id"]][e.payload["reason"]] += 1

    def rate(products):
        return sum(returned[p] for p in products) / sum(delivered[p] for p in products)

    problem = set(PROBLEM_PRODUCTS)
    others = set(delivered) - problem
    assert 0.01 < rate(others) < 0.08
    assert rate(problem) > max(0.15, 3 * rate(others))
    assert reasons["p-0007"].most_common(1)[0][0] == "wrong_size"


def test_late_deliveries_are_worst_for_one_carrier(traffic):
    late, total = Counter(), Counter()
    for history in by_order(traffic).values():
        placed = history[0].payload
        for e in history:
            if e.type == "order_delivered":
                total[placed["carrier"]] += 1
                late[placed["carrier"]] += e.occurred_at > placed["promised_delivery_at"]
    rates = {carrier: late[carrier] / total[carrier] for carrier in total if total[carrier] >= 50}
    others = [c for c in total if c != "correios_pac"]
    others_rate = sum(late[c] for c in others) / sum(total[c] for c in others)

    assert max(rates, key=rates.get) == "correios_pac"
    assert rates["correios_pac"] > 1.5 * others_rate


def test_messages_follow_order_phases_and_tickets_follow_contacts(traffic):
    placed = {e.order_id for e in traffic if e.type == "order_placed"}
    sent = [e for e in traffic if e.type == "message_sent"]
    assert {e.order_id for e in sent} <= placed
    assert {"order_confirmation", "payment_pending", "payment_confirmed", "invoice_issued", "order_shipped",
            "order_delivered"} <= {e.payload["template"] for e in sent}
    assert {e.payload["channel"] for e in sent} == {"email", "whatsapp"}

    first_contact = {}
    for e in traffic:
        if e.type == "message_received":
            first_contact.setdefault(e.payload["ticket_number"], e.occurred_at)
    opened = [e for e in traffic if e.type == "ticket_opened"]
    assert opened and all(first_contact[e.payload["ticket_number"]] <= e.occurred_at for e in opened)

    scores = Counter(e.payload["score"] for e in traffic if e.type == "nps_answered")
    assert set(scores) <= set(range(11))
    assert scores[9] + scores[10] > sum(scores[s] for s in range(7))  # more promoters than detractors


# --- files -----------------------------------------------------------------------------------------


def test_write_jsonl_writes_the_ingest_form(tmp_path):
    events = list(generate(2, 50, START_MS))
    path = tmp_path / "events.jsonl"

    assert write_jsonl(events, path) == len(events)
    assert [from_json(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()] == events


def test_the_example_file_is_what_the_generator_makes_and_covers_every_family(tmp_path):
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    events = [from_json(json.loads(line)) for line in lines]
    families = {event_types()[e.type].family for e in events}

    assert 20 <= len(events) <= 45
    assert len(families) == 7
    write_jsonl(generate(**SAMPLE_ARGS), tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_text(encoding="utf-8").splitlines() == lines, (
        f"regenerate {SAMPLE.name} with write_jsonl(generate(**SAMPLE_ARGS), path)")


def test_post_sale_scenario_converts_most_sessions_and_withdraws_the_problem_batch():
    # Given the post-sale scenario spread over six weeks
    events = list(generate(11, 650, START_MS, scenario="post-sale", sessions_per_day=16))
    assert events == list(generate(11, 650, START_MS, scenario="post-sale", sessions_per_day=16))
    sessions = {e.session_id for e in events if e.type == "session_started"}
    placed = [e for e in events if e.type == "order_placed"]
    # Then far more sessions order than by default (~2-3%), and there are deliveries and returns
    assert len(placed) > 0.3 * len(sessions)
    assert sum(e.type == "order_delivered" for e in events) > 200
    assert sum(e.type == "order_returned" for e in events) > 25
    # and the problem product sells heavily during its first two weeks, never after
    problem = [e.occurred_at for e in placed if any(i["product_id"] == "p-0007" for i in e.payload["items"])]
    assert len(problem) > 0.3 * sum(e.occurred_at < START_MS + 14 * DAY_MS for e in placed)
    assert max(problem) < START_MS + 14 * DAY_MS
