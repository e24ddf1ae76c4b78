"""Sessions folded into visits, and the anonymous visitors' share of "visitors vs buyers", as pure folds.

A session's state keeps the facts as sets: its page views (bounded, sorted by event time, deduplicated
by event_id), the times of its cart additions, the attributes of its start (user agent, channel,
landing page) and the customer it belongs to. Visits are *derived* from the sorted page-view times on
read: a new visit starts when the gap since the previous page view exceeds VISIT_GAP_MS. So late and
out-of-order page views always land in the right visit (the grace period is the whole session, within
MAX_PAGE_VIEWS_PER_SESSION), a duplicate changes nothing, and any arrival order gives the same state.

Visitors vs buyers per local day: a visitor is the customer id when the session is known to belong to
a customer, else the session id. This module gives an anonymous session's (day, stage) cells; a known
customer's cells are counted once per customer in projections/customer360_fold.py, so a customer with
several sessions is one visitor.
"""
from __future__ import annotations

import bisect
import datetime as dt
import itertools
from functools import lru_cache
from zoneinfo import ZoneInfo

from projections.useragent import parse_client

VISIT_GAP_MS = 30 * 60 * 1000  # a visit ends after 30 minutes without a page view
MAX_PAGE_VIEWS_PER_SESSION = 1000  # the earliest ones are kept: bounded state, still order-independent
MAX_CART_ADDITIONS = 200  # per session, the earliest kept

STAGES = ("visitors", "carted", "ordered", "shipped")  # visitors vs buyers, in funnel order


def empty(session_id: str) -> dict:
    return {
        "session_id": session_id, "customer_id": None, "started_at": None, "user_agent": None,
        "browser": None, "os": None, "device": None, "channel": None, "utm_source": None, "utm_campaign": None,
        "landing_page": None, "start_stamp": None, "first_at": None, "last_at": None,
        "pages": [],  # [occurred_at, event_id, path, page_type], sorted
        "cart_additions": [],  # [occurred_at, event_id] of cart_item_added, sorted
    }


def _start_attributes(state: dict, event) -> None:
    """Attributes of the session start; the earliest session_started wins (ties: smallest event id)."""
    stamp = (event.occurred_at, event.event_id)
    current = state.get("start_stamp")
    if current is not None and tuple(current) <= stamp:
        return
    p = event.payload
    client = parse_client(p["user_agent"])
    state.update(start_stamp=list(stamp), started_at=event.occurred_at, user_agent=p["user_agent"],
                 browser=client.browser, os=client.os, device=client.device, channel=p["channel"],
                 utm_source=p.get("utm_source"), utm_campaign=p.get("utm_campaign"),
                 landing_page=p["landing_page"])


def _add_page(state: dict, event) -> bool:
    """Inserts a page view in time order; False when it is a duplicate or beyond the bound."""
    pages = state["pages"]
    entry = [event.occurred_at, event.event_id, event.payload["path"], event.payload["page_type"]]
    if any(page[1] == event.event_id for page in pages):
        return False
    index = bisect.bisect_left(pages, entry[:2], key=lambda page: page[:2])
    if len(pages) >= MAX_PAGE_VIEWS_PER_SESSION and index >= len(pages):
        return False  # later than every kept page view of a full session
    state["pages"] = pages = [*pages[:index], entry, *pages[index:]]
    if len(pages) > MAX_PAGE_VIEWS_PER_SESSION:
        state["pages"] = pages[:MAX_PAGE_VIEWS_PER_SESSION]
    return True


def ignores(event) -> bool:
    """Events of the SESSIONS group this fold skips.

    Of the order steps re-keyed by session only order_placed matters (it names the customer);
    order_paid is forwarded for the funnel, and whether it is forwarded depends on arrival order.
    """
    return event.type == "order_paid" or not event.session_id


def evolve(state: dict | None, event) -> dict:
    """The session's state after `event` (an event of the SESSIONS group); returns a new dict."""
    s = dict(state or empty(event.session_id))
    if ignores(event):
        return s
    s["first_at"] = event.occurred_at if s["first_at"] is None else min(s["first_at"], event.occurred_at)
    s["last_at"] = event.occurred_at if s["last_at"] is None else max(s["last_at"], event.occurred_at)
    if event.customer_id and (s["customer_id"] is None or event.customer_id < s["customer_id"]):
        s["customer_id"] = event.customer_id  # one customer per session; the smallest id if they disagree
    if event.type == "session_started":
        _start_attributes(s, event)
    elif event.type == "page_viewed":
        _add_page(s, event)
    elif event.type == "cart_item_added" and not any(c[1] == event.event_id for c in s["cart_additions"]):
        s["cart_additions"] = sorted([*s["cart_additions"], [event.occurred_at, event.event_id]])[:MAX_CART_ADDITIONS]
    return s


def visits(state: dict | None) -> list[dict]:
    """The session's visits, derived from its sorted page views (gap > VISIT_GAP_MS starts a new one)."""
    out: list[dict] = []
    for at, _event_id, path, _page_type in (state or {}).get("pages", ()):
        if out and at - out[-1]["ended_at"] <= VISIT_GAP_MS:
            visit = out[-1]
            visit["ended_at"] = at
            visit["pages"] += 1
        else:
            out.append({"started_at": at, "ended_at": at, "pages": 1, "landing_page": path})
    for visit in out:
        visit["time_on_site_ms"] = visit["ended_at"] - visit["started_at"]
    return out


def view(state: dict) -> dict:
    """The public record of a session (GET /visits/{session_id}, projections.visits)."""
    derived = visits(state)
    return {
        "session_id": state["session_id"], "customer_id": state["customer_id"], "started_at": state["started_at"],
        "first_at": state["first_at"], "last_at": state["last_at"],
        "browser": state["browser"], "os": state["os"], "device": state["device"], "channel": state["channel"],
        "utm_source": state["utm_source"], "utm_campaign": state["utm_campaign"],
        "landing_page": state["landing_page"],
        "visits": derived, "visit_count": len(derived), "pages": sum(v["pages"] for v in derived),
        "time_on_site_ms": sum(v["time_on_site_ms"] for v in derived),
        "cart_additions": len(state["cart_additions"]),
    }


@lru_cache(maxsize=4096)
def local_day(ms: int, timezone: str) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).date().isoformat()


def visit_days(state: dict, timezone: str) -> list[str]:
    """Local days on which the session was on the site (its start and its page views)."""
    times = [page[0] for page in state["pages"]]
    if state["started_at"] is not None:
        times.append(state["started_at"])
    return sorted({local_day(t, timezone) for t in times})


def cart_days(state: dict, timezone: str) -> list[str]:
    return sorted({local_day(at, timezone) for at, _event_id in state["cart_additions"]})


def anonymous_cells(state: dict | None, timezone: str) -> frozenset[tuple[str, str]]:
    """(day, stage) cells an anonymous session counts once in; none once it belongs to a customer."""
    if not state or state["customer_id"]:
        return frozenset()
    return frozenset({(day, "visitors") for day in visit_days(state, timezone)}
                     | {(day, "carted") for day in cart_days(state, timezone)})


def cell_delta(before: frozenset, after: frozenset) -> dict[tuple, int]:
    moves = {cell: 1 for cell in after - before}
    moves.update({cell: -1 for cell in before - after})
    return moves


def customer_fact(state: dict | None, timezone: str) -> dict | None:
    """What a customer's 360 needs from one of their sessions (None for an anonymous session)."""
    if not state or not state["customer_id"]:
        return None
    return {
        "kind": "session", "id": state["session_id"], "customer_id": state["customer_id"],
        "visits": visits(state), "browser": state["browser"], "os": state["os"], "device": state["device"],
        "channel": state["channel"], "visit_days": visit_days(state, timezone),
        "cart_days": cart_days(state, timezone), "last_at": state["last_at"],
    }


def report(counts: dict[tuple[str, str], int], day: str | None = None) -> dict:
    """{day: {stage: visitors, ..., "conversion": {stage: rate vs previous stage}}} from merged counts."""
    out: dict = {}
    for (cell_day, stage), n in counts.items():
        if (day and cell_day != day) or n == 0:
            continue
        out.setdefault(cell_day, dict.fromkeys(STAGES, 0))[stage] += n
    for row in out.values():
        row["conversion"] = {stage: (round(row[stage] / row[prev], 4) if row[prev] else None)
                             for prev, stage in itertools.pairwise(STAGES)}
    return dict(sorted(out.items()))
