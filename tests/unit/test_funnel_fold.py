"""The funnel fold: each session counted once per step, whatever the order or repetition of events."""
import itertools
import uuid

from projections import funnel_fold
from topics.events import Event

TZ = "America/Sao_Paulo"
T0 = 1_795_514_400_000  # 2026-11-24T10:00Z = 07:00 in São Paulo
ANDROID = "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36"


def ev(type_, t, payload, session="s-1", order=None):
    return Event(str(uuid.uuid4()), type_, T0 + t, "web", session, None, order, payload)


def session_events():
    return [
        ev("session_started", 0, {"user_agent": ANDROID, "channel": "social", "utm_source": None, "utm_campaign": None,
                                  "landing_page": "/"}),
        ev("page_viewed", 1000, {"page_type": "product", "path": "/p/1", "product_id": "p-1"}),
        ev("page_viewed", 2000, {"page_type": "product", "path": "/p/2", "product_id": "p-2"}),
        ev("cart_item_added", 3000, {"product_id": "p-2", "quantity": 1, "unit_price": 50.0}),
        ev("shipping_option_chosen", 4000, {"carrier": "jadlog", "price": 20.0, "promised_days": 5}),
    ]


def fold(events):
    state = None
    for e in events:
        state = funnel_fold.evolve(state, e)
    return state


def test_steps_and_dimensions_of_one_session():
    cells = funnel_fold.contribution(fold(session_events()), TZ)
    assert ("all", "2026-11-24", "all", "shipping") in cells
    assert ("device", "2026-11-24", "mobile", "cart") in cells
    assert ("channel", "2026-11-24", "social", "product_page") in cells
    assert {c for c in cells if c[0] == "product"} == {
        ("product", "2026-11-24", "p-1", "product_page"), ("product", "2026-11-24", "p-2", "product_page"),
        ("product", "2026-11-24", "p-2", "cart"), ("product", "2026-11-24", "p-2", "shipping")}
    assert not any(c[3] == "payment" for c in cells)


def test_any_order_and_duplicates_give_the_same_state():
    events = session_events()
    expected = fold(events)
    for perm in itertools.islice(itertools.permutations(events), 0, 120, 7):
        assert fold(list(perm) + list(perm[:2])) == expected


def test_deltas_sum_to_the_final_contribution_even_when_the_day_moves():
    """A late event from before midnight moves the session to the previous day: counts move with it."""
    events = session_events() + [ev("page_viewed", -10 * 3600 * 1000, {"page_type": "home", "path": "/"})]
    totals: dict = {}
    state = None
    for e in events:
        new = funnel_fold.evolve(state, e)
        for cell, change in funnel_fold.delta(state, new, TZ).items():
            totals[cell] = totals.get(cell, 0) + change
        state = new
    assert {c for c, n in totals.items() if n} == funnel_fold.contribution(state, TZ)
    assert all(n in (0, 1) for n in totals.values())
    assert {c[1] for c, n in totals.items() if n} == {"2026-11-23"}


def test_report_conversion_is_step_over_previous_step():
    counts = {("all", "2026-11-24", "all", "product_page"): 10, ("all", "2026-11-24", "all", "cart"): 4,
              ("all", "2026-11-24", "all", "shipping"): 1}
    row = funnel_fold.report(counts)["2026-11-24"]["all"]
    assert row["conversion"]["cart"] == 0.4 and row["conversion"]["shipping"] == 0.25
    assert row["conversion"]["payment"] == 0.0 and row["conversion"]["registration"] is None
