"""Order handling time fold: observed once per order, placed -> shipped in event time, whatever the
arrival order or repetition of events."""
import itertools
import uuid

from projections import handling_time
from topics.events import Event

T0 = 1_795_514_400_000
HOUR_MS = 3_600_000


def ev(type_, t, payload=None, order="o-1"):
    return Event(str(uuid.uuid4()), type_, T0 + t, "erp", None, "c-1", order, payload or {})


PLACED = ev("order_placed", 0, {"payment_method": "boleto"})
PAID = ev("order_paid", 30 * HOUR_MS, {"charge_id": "ch-1", "method": "boleto", "amount": 10.0})
SHIPPED = ev("order_shipped", 52 * HOUR_MS, {"carrier": "jadlog", "tracking_code": "X"})


def run(events):
    state, observed = None, []
    for event in events:
        state, seconds = handling_time.decide(handling_time.evolve(state, event))
        if seconds is not None:
            observed.append(seconds)
    return state, observed


def test_observes_placed_to_shipped_once_in_any_order_with_redeliveries():
    for order in itertools.permutations([PLACED, PAID, SHIPPED]):
        state, observed = run([*order, *order])  # every event delivered twice
        assert observed == [52 * 3600.0], order
        assert state["payment_method"] == "boleto" and state["observed"] is True


def test_nothing_is_observed_before_both_times_are_known():
    assert run([PLACED, PAID])[1] == []
    assert run([SHIPPED])[1] == []


def test_a_shipment_before_its_placement_is_not_a_negative_duration():
    early = ev("order_shipped", -HOUR_MS, {"carrier": "jadlog", "tracking_code": "X"})
    state, observed = run([early, PLACED])
    assert observed == [] and state["observed"] is True


def test_unknown_payment_methods_are_one_bounded_label():
    odd = ev("order_placed", 0, {"payment_method": "crypto-of-the-week"})
    assert run([odd])[0]["payment_method"] == "other"
