"""Sessions folded into visits: the 30-minute gap, late and out-of-order page views, duplicates,
user-agent attributes, and the anonymous share of visitors vs buyers."""
import itertools
import uuid

import pytest

from projections import visits_fold
from projections.visits_fold import VISIT_GAP_MS
from topics.events import Event

T0 = 1_795_514_400_000  # 2026-11-24T10:00Z = 07:00 in São Paulo
MIN = 60_000
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def ev(type_, at, payload, session_id="s-1", customer_id=None, event_id=None):
    return Event(event_id or str(uuid.uuid4()), type_, at, "web", session_id, customer_id, None, payload)


def started(at, ua=FIREFOX_LINUX, **kw):
    return ev("session_started", at, {"user_agent": ua, "channel": "organic", "utm_source": None,
                                      "utm_campaign": None, "landing_page": "/"}, **kw)


def page(at, path="/p", **kw):
    return ev("page_viewed", at, {"page_type": "home", "path": path, "product_id": None}, **kw)


def fold(events):
    state = None
    for e in events:
        state = visits_fold.evolve(state, e)
    return state


def test_a_gap_longer_than_30_minutes_starts_a_new_visit_and_exactly_30_does_not():
    events = [started(T0), page(T0, "/a"), page(T0 + 10 * MIN, "/b"), page(T0 + 10 * MIN + VISIT_GAP_MS, "/c"),
              page(T0 + 10 * MIN + 2 * VISIT_GAP_MS + 1, "/d"), page(T0 + 10 * MIN + 2 * VISIT_GAP_MS + 1 + 5 * MIN, "/e")]
    record = visits_fold.view(fold(events))
    assert [(v["landing_page"], v["pages"], v["time_on_site_ms"]) for v in record["visits"]] == [
        ("/a", 3, 10 * MIN + VISIT_GAP_MS), ("/d", 2, 5 * MIN)]
    assert record["visit_count"] == 2 and record["pages"] == 5
    assert record["time_on_site_ms"] == 10 * MIN + VISIT_GAP_MS + 5 * MIN


def test_a_late_page_view_lands_in_the_right_visit_and_can_merge_two_visits():
    early = [started(T0), page(T0, "/a"), page(T0 + 50 * MIN, "/c")]
    assert visits_fold.view(fold(early))["visit_count"] == 2
    late = page(T0 + 25 * MIN, "/b")  # arrives last but bridges the gap
    record = visits_fold.view(fold([*early, late]))
    assert record["visit_count"] == 1
    assert record["visits"][0] == {"started_at": T0, "ended_at": T0 + 50 * MIN, "pages": 3, "landing_page": "/a",
                                   "time_on_site_ms": 50 * MIN}


def test_any_arrival_order_and_duplicates_give_the_same_state():
    events = [started(T0), page(T0, "/a"), page(T0 + 40 * MIN, "/b"), page(T0 + 41 * MIN, "/c"),
              ev("cart_item_added", T0 + 42 * MIN, {"product_id": "p-1", "quantity": 1, "unit_price": 10.0}),
              page(T0 + 3 * 60 * MIN, "/d", customer_id="c-9")]
    results = {repr(visits_fold.view(fold([*perm, *perm[:2]])))
               for perm in itertools.islice(itertools.permutations(events), 0, 720, 37)}
    assert len(results) == 1
    record = visits_fold.view(fold(events))
    assert record["customer_id"] == "c-9" and record["visit_count"] == 3 and record["cart_additions"] == 1


def test_browser_os_and_device_come_from_the_user_agent():
    record = visits_fold.view(fold([started(T0, SAFARI_IPHONE), page(T0)]))
    assert (record["browser"], record["os"], record["device"]) == ("Mobile Safari", "iOS", "mobile")
    record = visits_fold.view(fold([started(T0), page(T0)]))
    assert (record["browser"], record["os"], record["device"]) == ("Firefox", "Linux", "desktop")
    assert record["channel"] == "organic" and record["landing_page"] == "/"


def test_page_views_beyond_the_bound_keep_the_earliest_ones():
    n = visits_fold.MAX_PAGE_VIEWS_PER_SESSION
    views = [page(T0 + i * 1000, f"/{i}") for i in range(n + 10)]
    forward, backward = fold(views), fold(reversed(views))
    assert forward == backward
    assert len(forward["pages"]) == n and forward["pages"][-1][2] == f"/{n - 1}"


def test_anonymous_cells_by_local_day_and_none_once_a_customer_is_known():
    tz = "America/Sao_Paulo"
    # 02:30Z on the 25th is still the 24th in São Paulo (UTC-3)
    late_night = T0 + 16 * 60 * MIN + 30 * MIN
    events = [started(T0), page(T0), page(late_night + 4 * 60 * MIN),
              ev("cart_item_added", T0 + MIN, {"product_id": "p-1", "quantity": 1, "unit_price": 10.0})]
    state = fold(events)
    assert visits_fold.anonymous_cells(state, tz) == {("2026-11-24", "visitors"), ("2026-11-25", "visitors"),
                                                      ("2026-11-24", "carted")}
    assert visits_fold.customer_fact(state, tz) is None
    known = visits_fold.evolve(state, ev("registration_completed", T0 + 2 * MIN, {"kind": "login"}, customer_id="c-1"))
    assert visits_fold.anonymous_cells(known, tz) == frozenset()
    fact = visits_fold.customer_fact(known, tz)
    assert fact["customer_id"] == "c-1" and fact["visit_days"] == ["2026-11-24", "2026-11-25"]
    assert fact["cart_days"] == ["2026-11-24"]


def test_order_paid_forwarded_for_the_funnel_is_ignored():
    paid = Event(str(uuid.uuid4()), "order_paid", T0, "psp", "s-1", "c-1", "o-1",
                 {"charge_id": None, "method": "pix", "amount": 1.0})
    assert visits_fold.ignores(paid)


@pytest.mark.parametrize("counts,expected", [
    ({("d", "visitors"): 10, ("d", "carted"): 4, ("d", "ordered"): 2, ("d", "shipped"): 1},
     {"visitors": 10, "carted": 4, "ordered": 2, "shipped": 1,
      "conversion": {"carted": 0.4, "ordered": 0.5, "shipped": 0.5}}),
    ({("d", "visitors"): 3}, {"visitors": 3, "carted": 0, "ordered": 0, "shipped": 0,
                              "conversion": {"carted": 0.0, "ordered": None, "shipped": None}}),
])
def test_report_rows_and_conversions(counts, expected):
    assert visits_fold.report(counts) == {"d": expected}
