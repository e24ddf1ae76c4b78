"""One agent for everything keyed by session: visits, cart and checkout events, and order steps
re-keyed by session. It decodes once and dispatches to the session read models."""
from __future__ import annotations

from projections import funnel
from streams import metrics
from streams.app import app, catalogue_entry, topics
from streams.decoding import decode_or_dead_letter, observe_latency
from topics import catalogue

SESSION_SOURCES = (catalogue.VISITS, catalogue.CART, catalogue.CHECKOUT, catalogue.SESSION_ORDER_STEPS)


@app.agent(topics(*SESSION_SOURCES))
async def fold_sessions(stream):
    async for record in stream.events():
        message = record.message
        source = catalogue_entry(message.topic, SESSION_SOURCES)
        event = await decode_or_dead_letter(source, message, "session_id")
        if event is None:
            continue
        before = funnel.sessions_table.get(event.session_id)
        await funnel.apply(event.session_id, event, message.partition)
        after = funnel.sessions_table.get(event.session_id)
        if before != after:
            new_steps = set(after["steps"]) - set((before or {}).get("steps", ()))
            for step in new_steps:
                metrics.FUNNEL_SESSIONS.labels(step, after["device"] or "unknown", after["channel"] or "unknown").inc()
        observe_latency(source, event)
