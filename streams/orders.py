"""One agent for everything keyed by order: orders.events and messages.events. It decodes once,
dispatches to the handlers registered for ORDERS, and re-keys the order facts that session
projections need (placed, paid) onto sessions.order-steps."""
from __future__ import annotations

from streams import handlers
from streams.app import app, catalogue_entry, settings, topic, topics
from streams.decoding import dispatch
from topics import catalogue, events

ORDER_SOURCES = (catalogue.ORDERS, catalogue.MESSAGES)
FUNNEL_ORDER_TYPES = frozenset({"order_placed", "order_paid"})

order_sessions = app.Table("order-sessions", default=None, partitions=settings.partitions)


@handlers.on(handlers.ORDERS)
async def forward_order_steps(event: events.Event, partition: int) -> None:
    """Order placed/paid, re-keyed by session, for the funnel (paid events may lack the session id)."""
    if event.type == "order_placed" and event.session_id:
        order_sessions[event.order_id] = event.session_id
    if event.type in FUNNEL_ORDER_TYPES:
        session_id = event.session_id or order_sessions.get(event.order_id)
        if session_id:
            await topic(catalogue.SESSION_ORDER_STEPS).send(
                key=session_id.encode(), value=events.encode(_with_session(event, session_id)))


def _with_session(event: events.Event, session_id: str) -> events.Event:
    from dataclasses import replace

    return event if event.session_id == session_id else replace(event, session_id=session_id)


@app.agent(topics(*ORDER_SOURCES))
async def fold_orders(stream):
    async for record in stream.events():
        message = record.message
        source = catalogue_entry(message.topic, ORDER_SOURCES)
        await dispatch(handlers.ORDERS, source, message, "order_id" if source is catalogue.ORDERS else None)
