"""One content rule for ingest and worker: a table of events run through both, which must agree
(ingest rejects exactly what the worker would dead-letter), each against the expected field."""
from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from posvenda.ingest import Rejection, parse_line
from topics import catalogue, events, validation

NOW = 1_795_176_000_000  # 2026-11-20T12:00Z
HOUR = 3_600_000
DAY = 24 * HOUR
# The key each agent requires (streams/sessions.py, orders.py, customers.py: dispatch's key_field).
AGENT_KEY = {"visits.events": "session_id", "cart.events": "session_id", "checkout.events": "session_id",
             "orders.events": "order_id", "messages.events": None, "customers.events": "customer_id",
             "feedback.events": "customer_id"}


def event(type_, payload, **envelope) -> events.Event:
    base = {"event_id": str(uuid.uuid4()), "type": type_, "occurred_at": NOW - HOUR, "source": "web",
            "session_id": None, "customer_id": "c-1", "order_id": None, "payload": payload}
    base.update(envelope)
    return events.Event(**base)


def placed(**payload):
    p = {"items": [{"product_id": "p-1", "quantity": 1, "unit_price": 199.9}], "total": 219.8, "freight": 19.9,
         "payment_method": "boleto", "installments": 1, "uf": "SP", "city": "Campinas", "carrier": "jadlog",
         "promised_delivery_at": NOW + 5 * DAY}
    p.update(payload)
    return event("order_placed", p, order_id="o-1", session_id="s-1")


def pending(**payload):
    p = {"charge_id": "ch-1", "method": "boleto", "amount": 219.8, "due_at": NOW + 3 * DAY}
    p.update(payload)
    return event("payment_pending", p, order_id="o-1", source="psp")


def nps(score, comment=None):
    return event("nps_answered", {"score": score, "comment": comment})


def message(subject, **envelope):
    return event("message_received", {"channel": "email", "ticket_number": None, "subject": subject},
                 **{"order_id": "o-1", **envelope})


def cart(quantity):
    return event("cart_item_added", {"product_id": "p-1", "quantity": quantity, "unit_price": 10.0}, session_id="s-1")


def item(**changes):
    return [{"product_id": "p-1", "quantity": 1, "unit_price": 199.9, **changes}]


CASES = [  # (what, event, the field at fault or None when it must be folded)
    ("a valid order", placed(), None),
    ("NaN amount", pending(amount=float("nan")), "payload.amount"),
    ("Infinity total", placed(total=float("inf")), "payload.total"),
    ("-Infinity freight", placed(freight=float("-inf")), "payload.freight"),
    ("1e308 unit price", placed(items=item(unit_price=1e308)), "payload.items[0].unit_price"),
    ("R$ 10 million and one", pending(amount=10_000_001.0), "payload.amount"),
    ("R$ 10 million exactly", pending(amount=10_000_000.0), None),
    ("negative total", placed(total=-150.0), "payload.total"),
    ("zero quantity", placed(items=item(quantity=0)), "payload.items[0].quantity"),
    ("negative cart quantity", cart(-1), "payload.quantity"),
    ("NPS 11", nps(11), "payload.score"),
    ("NPS -1", nps(-1), "payload.score"),
    ("NPS 0 and 10", nps(10), None),
    ("before 2000", replace(placed(), occurred_at=946_684_799_999), "occurred_at"),
    ("two days ahead", replace(placed(), occurred_at=NOW + 2 * DAY), "occurred_at"),
    ("twelve hours ahead", replace(placed(), occurred_at=NOW + 12 * HOUR), None),
    ("due in 2200", pending(due_at=7_258_118_400_000), "payload.due_at"),
    ("bell in the city", placed(city="Campinas\x07"), "payload.city"),
    ("NUL in the carrier", placed(carrier="jad\x00log"), "payload.carrier"),
    ("newline in a product id", placed(items=[{"product_id": "p-1\nx", "quantity": 1, "unit_price": 1.0}]),
     "payload.items[0].product_id"),
    ("escape in the customer id", replace(nps(9), customer_id="c-\x1b1"), "customer_id"),
    ("tab and newline in an NPS comment", nps(9, "bom\n\tproduto"), None),
    ("bell in an NPS comment", nps(9, "bom\x07"), "payload.comment"),
    ("CRLF in a message subject", message("Pedido\r\natrasado"), None),
    ("form feed in a message subject", message("Pedido\x0c"), "payload.subject"),
    ("order event without order id", replace(placed(), order_id=None), "order_id"),
    ("order event with an empty order id", replace(placed(), order_id=""), "order_id"),
    ("cart event without session", replace(cart(1), session_id=None), "session_id"),
    ("message without order (keyed by customer)", message("oi", order_id=None), None),
    ("unknown source", replace(placed(), source="fax"), "source"),
]


def ingest_verdict(e: events.Event):
    """What ingest says of the event's JSON line."""
    return parse_line(1, json.dumps(events.to_json(e)), NOW)


def worker_verdict(e: events.Event):
    """What the worker's decode path says of the event's Avro bytes (as a producer bypassing ingest sends them)."""
    topic = catalogue.for_event_family(events.event_type(e.type).family)
    return validation.verdict(events.encode(e), NOW, AGENT_KEY[topic.name])


@pytest.mark.parametrize(("what", "e", "field"), CASES, ids=[c[0] for c in CASES])
def test_ingest_and_worker_agree_on_every_case(what, e, field):
    by_ingest, by_worker = ingest_verdict(e), worker_verdict(e)
    if field is None:
        assert isinstance(by_ingest, events.Event), by_ingest
        assert isinstance(by_worker, events.Event), by_worker
        return
    assert isinstance(by_ingest, Rejection) and by_ingest.field == field, by_ingest
    assert isinstance(by_worker, validation.Rejected), by_worker
    assert (by_worker.reason, by_worker.field) == ("implausible_value", field), by_worker


def test_each_source_topic_requires_the_key_its_agent_requires():
    assert {t.name: validation.key_field(t) for t in catalogue.SOURCE_TOPICS} == AGENT_KEY


def test_a_control_character_is_named_by_code_point_without_echoing_the_value():
    found = validation.problem(placed(city="Maria da Silva\x07"), NOW)
    assert found == validation.Problem("payload.city", "control character U+0007 at position 14")
    assert "Maria" not in str(found)


@pytest.mark.parametrize("ms", [10**20, -10**16])
def test_timestamps_beyond_any_calendar_are_a_reason_not_an_overflow(ms):
    line = json.dumps({**events.to_json(placed()), "occurred_at": ms})
    result = parse_line(7, line, NOW)
    assert isinstance(result, Rejection)
    assert (result.line, result.field) == (7, "occurred_at") and "outside the years 1..9999" in result.reason


def test_garbage_bytes_get_the_codec_reason():
    assert validation.verdict(b"\x00\x01 not avro", NOW, None).reason == "bad_magic"
