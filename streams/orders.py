"""One agent for everything keyed by order: orders.events and messages.events. It decodes once,
dispatches to the handlers registered for ORDERS, folds the wall-clock ticks of orders.ticks
(streams/recovery.py) in the same batches, and re-keys the order facts that session
projections need (placed, paid) onto sessions.order-steps."""
from __future__ import annotations

from streams import handlers
from streams import recovery as ticks
from streams.app import app, catalogue_entry, settings, topic, topics
from streams.decoding import dispatch, fold_batches
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


@app.agent(topics(*ORDER_SOURCES, catalogue.ORDER_TICKS))
async def fold_orders(stream):
    async def fold(message) -> None:
        source = catalogue_entry(message.topic, (*ORDER_SOURCES, catalogue.ORDER_TICKS))
        if source is catalogue.ORDER_TICKS:
            await ticks.apply_tick(message)
            return
        await dispatch(handlers.ORDERS, source, message, "order_id" if source is catalogue.ORDERS else None)

    await fold_batches(stream, fold)
