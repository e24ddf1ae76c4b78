"""One agent for orders.events (keyed by order): decodes once and dispatches to the order read models,
and re-keys the order facts that session projections need (placed, paid) onto sessions.order-steps."""
from __future__ import annotations

from streams.app import app, settings, topic
from streams.decoding import decode_or_dead_letter, observe_latency
from topics import catalogue

FUNNEL_ORDER_TYPES = frozenset({"order_placed", "order_paid"})

order_sessions = app.Table("order-sessions", default=None, partitions=settings.partitions)


@app.agent(topic(catalogue.ORDERS))
async def fold_orders(stream):
    async for record in stream.events():
        message = record.message
        event = await decode_or_dead_letter(catalogue.ORDERS, message, "order_id")
        if event is None:
            continue
        if event.type == "order_placed" and event.session_id:
            order_sessions[event.order_id] = event.session_id
        if event.type in FUNNEL_ORDER_TYPES:
            session_id = event.session_id or order_sessions.get(event.order_id)
            if session_id:
                await topic(catalogue.SESSION_ORDER_STEPS).send(key=session_id.encode(), value=message.value)
        observe_latency(catalogue.ORDERS, event)
