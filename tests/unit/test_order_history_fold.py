"""The order state machine: the event-time timeline, flagged impossible transitions that never corrupt
the status, the message audit log, order independence and the customer fact."""
import random
import uuid

import pytest

from projections import order_history_fold as fold_module
from topics.events import Event

T0 = 1_795_514_400_000
H = 3_600_000


def ev(type_, at, payload=None, order_id="o-1", customer_id="c-1", session_id="s-1"):
    defaults = {
        "order_placed": {"items": [{"product_id": "p-1", "quantity": 2, "unit_price": 50.0}], "total": 110.0,
                         "freight": 10.0, "payment_method": "boleto", "installments": 1, "uf": "SP",
                         "city": "Campinas", "carrier": "jadlog", "promised_delivery_at": T0 + 100 * H},
        "payment_pending": {"charge_id": "ch-1", "method": "boleto", "amount": 110.0, "due_at": T0 + 48 * H},
        "order_paid": {"charge_id": "ch-1", "method": "boleto", "amount": 110.0},
        "payment_expired": {"charge_id": "ch-1", "method": "boleto"},
        "order_invoiced": {"invoice_number": "123"},
        "order_shipped": {"carrier": "jadlog", "tracking_code": "JD1"},
        "order_delivered": {"receiver": "Maria da Silva"},
        "order_cancelled": {"reason": "payment_not_made"},
        "return_requested": {"items": [{"product_id": "p-1", "quantity": 1}], "reason": "defect"},
        "order_returned": {"items": [{"product_id": "p-1", "quantity": 1}], "reason": "defect"},
        "order_refunded": {"amount": 50.0},
        "message_sent": {"channel": "email", "template": "order_confirmation", "phase": "placed", "action_id": None},
    }
    source = "crm" if type_ == "message_sent" else "erp"
    return Event(str(uuid.uuid4()), type_, at, source, session_id, customer_id, order_id,
                 payload if payload is not None else defaults[type_])


def fold(events):
    state = None
    for e in events:
        state = fold_module.evolve(state, e)
    return state


HAPPY = [ev("order_placed", T0), ev("payment_pending", T0 + 1000), ev("message_sent", T0 + 5000),
         ev("order_paid", T0 + 30 * H), ev("order_invoiced", T0 + 40 * H), ev("order_shipped", T0 + 50 * H),
         ev("order_delivered", T0 + 90 * H), ev("return_requested", T0 + 100 * H),
         ev("order_returned", T0 + 150 * H), ev("order_refunded", T0 + 160 * H)]


def transitions(record):
    return [(e["type"], e["from"], e["to"], e["flagged"]) for e in record["timeline"] if e["kind"] == "transition"]


def test_the_happy_path_reaches_refunded_with_the_message_on_the_timeline():
    record = fold_module.view(fold(HAPPY))
    assert record["status"] == "refunded" and record["flagged_count"] == 0
    assert [e["type"] for e in record["timeline"]] == [e.type for e in HAPPY]
    message = record["timeline"][2]
    assert message["kind"] == "message" and message["status"] == "payment_pending"
    assert message["details"]["template"] == "order_confirmation"
    assert record["reached"] == sorted({"placed", "payment_pending", "paid", "invoiced", "shipped", "delivered",
                                        "return_requested", "returned", "refunded"})
    assert (record["total"], record["payment_method"], record["tracking_code"]) == (110.0, "boleto", "JD1")
    assert "receiver" not in repr(record), "the receiver's name is personal data"


def test_out_of_order_arrival_gives_the_same_record():
    expected = fold_module.view(fold(HAPPY))
    for seed in range(10):
        shuffled = list(HAPPY)
        random.Random(seed).shuffle(shuffled)
        assert fold_module.view(fold(shuffled + shuffled[:3])) == expected


@pytest.mark.parametrize("events,flagged_type,reason,status", [
    ([ev("order_placed", T0), ev("order_paid", T0 + H), ev("order_invoiced", T0 + 2 * H),
      ev("order_delivered", T0 + 3 * H), ev("order_shipped", T0 + 4 * H)],
     "order_delivered", "delivered before shipped (status invoiced)", "shipped"),
    ([ev("order_placed", T0), ev("order_paid", T0 + H), ev("order_paid", T0 + 2 * H)],
     "order_paid", "paid twice", "paid"),
    ([ev("order_placed", T0), ev("payment_pending", T0 + 1), ev("payment_expired", T0 + H),
      ev("order_cancelled", T0 + 2 * H), ev("order_paid", T0 + 3 * H)],
     "order_paid", "order_paid after cancelled", "cancelled"),
    ([ev("order_placed", T0), ev("order_cancelled", T0 + H), ev("order_refunded", T0 + 2 * H)],
     "order_refunded", "order_refunded after cancelled", "cancelled"),
    ([ev("order_placed", T0), ev("order_paid", T0 + H), ev("order_invoiced", T0 + 2 * H),
      ev("order_shipped", T0 + 3 * H), ev("order_cancelled", T0 + 4 * H)],
     "order_cancelled", "cancelled after shipped (only before shipment)", "shipped"),
    ([ev("order_paid", T0 - H), ev("order_placed", T0)], "order_paid", "order_paid before order_placed", "placed"),
])
def test_an_impossible_transition_is_flagged_and_does_not_move_the_status(events, flagged_type, reason, status):
    record = fold_module.view(fold(reversed(events)))  # arrival order does not matter
    flagged = [e for e in record["timeline"] if e.get("flagged")]
    assert [(e["type"], e["reason"]) for e in flagged] == [(flagged_type, reason)]
    assert flagged[0]["from"] == flagged[0]["to"]
    assert record["status"] == status and record["flagged_count"] == 1


def test_a_paid_order_cancelled_before_shipment_may_be_refunded():
    record = fold_module.view(fold([ev("order_placed", T0), ev("order_paid", T0 + H),
                                    ev("order_cancelled", T0 + 2 * H, {"reason": "customer_request"}),
                                    ev("order_refunded", T0 + 3 * H)]))
    assert record["status"] == "refunded" and record["flagged_count"] == 0


def test_a_late_predecessor_unflags_what_looked_impossible():
    early = [ev("order_placed", T0), ev("order_paid", T0 + H), ev("order_shipped", T0 + 3 * H)]
    delivered = ev("order_delivered", T0 + 4 * H)
    assert fold_module.view(fold([*early[:2], delivered]))["flagged_count"] == 1
    assert fold_module.view(fold([*early[:2], delivered, early[2]]))["flagged_count"] == 0


def test_same_millisecond_events_follow_the_lifecycle():
    record = fold_module.view(fold([ev("payment_pending", T0), ev("order_placed", T0)]))
    assert transitions(record) == [("order_placed", None, "placed", False),
                                   ("payment_pending", "placed", "payment_pending", False)]


def test_duplicates_and_other_orders_events_change_nothing():
    state = fold(HAPPY)
    assert fold_module.evolve(state, HAPPY[3]) == state
    ticket = Event(str(uuid.uuid4()), "ticket_opened", T0, "crm", None, "c-1", "o-1",
                   {"ticket_number": "T1", "channel": "email", "category": "delivery", "confirmation_sent": True})
    assert fold_module.evolve(state, ticket) == state


def test_the_timeline_is_bounded_to_the_earliest_events():
    n = fold_module.MAX_TIMELINE_EVENTS
    messages = [ev("message_sent", T0 + i) for i in range(n + 5)]
    assert fold(messages) == fold(reversed(messages))
    assert len(fold(messages)["events"]) == n


def test_customer_fact_counts_what_the_order_reached():
    fact = fold_module.customer_fact(fold(HAPPY), lambda ms: "2026-11-24")
    assert fact["customer_id"] == "c-1" and fact["placed_day"] == "2026-11-24"
    assert {"placed", "paid", "shipped", "delivered", "returned"} <= set(fact["reached"])
    assert fact["payment_methods"] == ["boleto"] and fact["last_at"] == T0 + 160 * H
    assert fold_module.customer_fact(fold([ev("order_placed", T0, customer_id=None)]), str) is None
