"""Sessions and visits read model, and the visitors-vs-buyers view: tables, projection topics, HTTP.

The session handler (SESSIONS group) folds every session event, publishes the session's record to
projections.visits, keeps the anonymous sessions' visitors-vs-buyers cells as per-partition partials,
and re-keys a known customer's session snapshot onto customers.facts (part of the agent's transaction).
"""
from __future__ import annotations

import json

from prometheus_client import Counter

from projections import customer360, visits_fold
from projections.derived import DerivedCounts
from projections.http import keyed_view, page_of, unauthorized
from streams import handlers
from streams.app import app, assigned_partitions, settings, topic
from topics import catalogue

sessions_table = app.Table("visit-sessions", default=None, partitions=settings.partitions)
# Visitors-vs-buyers cells of anonymous sessions, derived from the session states (projections/derived.py).
visitor_counts = DerivedCounts(sessions_table, lambda state: visits_fold.anonymous_cells(state, settings.business_timezone),
                               lambda: assigned_partitions(catalogue.VISITS),
                               lambda: not (app.rebalancing or getattr(app, "in_recovery", False)))

EVENTS_IGNORED = Counter("posvenda_visit_events_ignored_total",
                         "Session events that changed nothing (duplicates, or beyond the per-session bound).",
                         ["type"])


@handlers.on(handlers.SESSIONS)
async def apply(event, partition: int) -> None:
    """Folds one session event; publishes the record, the anonymous partials and the customer fact."""
    if visits_fold.ignores(event):
        return
    old = sessions_table.get(event.session_id)
    new = visits_fold.evolve(old, event)
    if new == old:
        EVENTS_IGNORED.labels(event.type).inc()
        return
    seq = (old or {}).get("seq", 0) + 1
    new["seq"] = seq
    new["p"] = partition
    moves = visitor_counts.move(partition, old, new)  # before the write (see DerivedCounts.move)
    sessions_table[event.session_id] = new
    record = visits_fold.view(new)
    if old is None or visits_fold.view(old) != record:
        await topic(catalogue.PROJECTION_VISITS).send(key=event.session_id.encode(), value=json.dumps(record).encode())
    tz = settings.business_timezone
    for (day, stage), value in moves.items():
        await topic(catalogue.PROJECTION_VISITORS_BUYERS).send(
            key=f"{day}|{stage}|sessions|{partition}".encode(),
            value=json.dumps({"day": day, "stage": stage, "source": "sessions", "partition": partition,
                              "visitors": value}).encode())
    await customer360.forward_fact_change("session", event.session_id, seq, visits_fold.customer_fact(old, tz),
                                          visits_fold.customer_fact(new, tz))


def merged_counts() -> dict[tuple[str, str], int]:
    """Anonymous sessions' and known customers' partials summed: {(day, stage): visitors}."""
    merged = customer360.merged_counts()
    for cell, n in visitor_counts.merged().items():
        merged[cell] = merged.get(cell, 0) + n
    return merged


@app.page("/visits/{session_id}")
async def visit_view(web, request, session_id):
    """GET /visits/{session_id}: the session with its visits."""
    return keyed_view(web, request, sessions_table, session_id, visits_fold.view, "session")


@app.page("/visits")
async def visits_view(web, request):
    """GET /visits?offset=&limit=[&customer_id=]: sessions sorted by session id."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    customer_id = request.query.get("customer_id")
    keys = sorted(k for k, v in sessions_table.items() if not customer_id or v["customer_id"] == customer_id)
    page = page_of(request, keys)
    page["items"] = [visits_fold.view(sessions_table[k]) for k in page["items"]]
    return web.json(page)


@app.page("/visitors-buyers")
async def visitors_buyers_view(web, request):
    """GET /visitors-buyers?day=YYYY-MM-DD: distinct visitors, carted, ordered, shipped per local day."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    return web.json({"stages": list(visits_fold.STAGES), "timezone": settings.business_timezone,
                     "days": visits_fold.report(merged_counts(), request.query.get("day"))})
