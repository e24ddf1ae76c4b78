"""The purchase funnel read model: Faust tables, the compacted projection topic and the HTTP view.

Counts are kept as per-partition partials (key ends in the source partition) so that each count is
written only by the worker that owns that partition; readers sum the partials (PITFALLS.md: cheaper
than a group_by repartition, and exact under rebalances).
"""
from __future__ import annotations

import json

from projections import funnel_fold
from projections.http import gather_partials, unauthorized
from streams import handlers, metrics
from streams.app import app, settings, topic
from topics import catalogue

sessions_table = app.Table("funnel-sessions", default=None, partitions=settings.partitions)
counts_table = app.Table("funnel-counts", default=int, partitions=settings.partitions)


def cell_key(cell: tuple, partition: int) -> str:
    return "|".join((*cell, str(partition)))


def merge(partials: list) -> dict[tuple, int]:
    """Partials summed over partitions: {(dimension, day, value, step): sessions}."""
    merged: dict[tuple, int] = {}
    for key, n in partials:
        cell = tuple(key.split("|")[:4])
        merged[cell] = merged.get(cell, 0) + n
    return merged


@handlers.on(handlers.SESSIONS)
async def apply(event, partition: int) -> None:
    """Folds one event into its session and moves the counts by the change of its contribution."""
    old = sessions_table.get(event.session_id)
    new = funnel_fold.evolve(old, event)
    if new == old:
        return
    sessions_table[event.session_id] = new
    for step in set(new["steps"]) - set((old or {}).get("steps", ())):
        metrics.FUNNEL_SESSIONS.labels(step, new["device"] or funnel_fold.UNKNOWN,
                                       new["channel"] or funnel_fold.UNKNOWN).inc()
    moves = funnel_fold.delta(old, new, settings.business_timezone)
    for cell, change in moves.items():
        key = cell_key(cell, partition)
        value = counts_table[key] + change
        counts_table[key] = value
        await topic(catalogue.PROJECTION_FUNNEL).send(key=key.encode(), value=json.dumps(
            {"dimension": cell[0], "day": cell[1], "value": cell[2], "step": cell[3],
             "partition": partition, "sessions": value}).encode())


@app.page("/funnel")
async def funnel_view(web, request):
    """GET /funnel?dimension=all|device|channel|product&day=YYYY-MM-DD"""
    denied = unauthorized(web, request)
    if denied:
        return denied
    local = [[key, n] for key, n in counts_table.items() if n]
    if request.query.get("scope") == "local":
        return web.json({"partials": local})
    partials = await gather_partials(request, counts_table, "/funnel", local)
    dimension = request.query.get("dimension", "all")
    if dimension not in funnel_fold.DIMENSIONS:
        return web.json({"error": f"dimension must be one of {list(funnel_fold.DIMENSIONS)}"}, status=400)
    body = funnel_fold.report(merge(partials), dimension, request.query.get("day"))
    return web.json({"dimension": dimension, "steps": list(funnel_fold.STEPS), "days": body})
