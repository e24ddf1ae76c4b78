"""The purchase funnel read model: the session table, the counts derived from it, the compacted
projection topic and the HTTP view.

Each session's state is a set of facts (projections/funnel_fold.py), so re-applying an event after a
crash or a rebalance changes nothing; the counts are derived from the session states
(projections/derived.py), so they can never disagree with them.
"""
from __future__ import annotations

import json

from alerts.metric_labels import bounded
from projections import funnel_fold
from projections.derived import DerivedCounts, NotReady, merge_partials
from projections.http import gather_partials, unauthorized
from streams import handlers, metrics
from streams.app import app, assigned_partitions, settings, topic
from topics import catalogue

sessions_table = app.Table("funnel-sessions", default=None, partitions=settings.partitions)
counts = DerivedCounts(
    sessions_table, lambda state: funnel_fold.contribution(state, settings.business_timezone),
    lambda: assigned_partitions(catalogue.VISITS),
    lambda: not (app.rebalancing or getattr(app, "in_recovery", False)),
)


def merged_counts() -> dict[tuple, int]:
    """This worker's counts summed over its partitions: {(dimension, day, value, step): sessions}."""
    return counts.merged()


@handlers.on(handlers.SESSIONS)
async def apply(event, partition: int) -> None:
    """Folds one event into its session, moves the derived counts and publishes the moved cells."""
    old = sessions_table.get(event.session_id)
    new = funnel_fold.evolve(old, event)
    new["p"] = partition
    if new == old:
        return
    moved = counts.move(partition, old, new)  # before the write: a rebuild must not see `new` yet
    sessions_table[event.session_id] = new
    for step in set(new["steps"]) - set((old or {}).get("steps", ())):
        metrics.FUNNEL_SESSIONS.labels(step, bounded("device", new["device"]), bounded("channel", new["channel"])).inc()
    for cell, value in moved.items():
        key = "|".join((*cell, str(partition)))
        await topic(catalogue.PROJECTION_FUNNEL).send(key=key.encode(), value=json.dumps(
            {"dimension": cell[0], "day": cell[1], "value": cell[2], "step": cell[3],
             "partition": partition, "sessions": value}).encode())


@app.page("/funnel")
async def funnel_view(web, request):
    """GET /funnel?dimension=all|device|channel|product&day=YYYY-MM-DD"""
    denied = unauthorized(web, request)
    if denied:
        return denied
    try:
        local = counts.partials()
    except NotReady as exc:
        return web.json({"error": f"{exc}: retry shortly"}, status=503)
    if request.query.get("scope") == "local":
        return web.json({"partials": local})
    partials = await gather_partials(request, sessions_table, "/funnel", local)
    dimension = request.query.get("dimension", "all")
    if dimension not in funnel_fold.DIMENSIONS:
        return web.json({"error": f"dimension must be one of {list(funnel_fold.DIMENSIONS)}"}, status=400)
    body = funnel_fold.report(merge_partials(partials), dimension, request.query.get("day"))
    return web.json({"dimension": dimension, "steps": list(funnel_fold.STEPS), "days": body})
