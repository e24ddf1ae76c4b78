"""One agent for everything keyed by session: visits, cart and checkout events, and order steps
re-keyed by session. It decodes once and dispatches to the handlers registered for SESSIONS."""
from __future__ import annotations

from streams import handlers
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
        for handle in handlers.handlers(handlers.SESSIONS):
            await handle(event, message.partition)
        observe_latency(source, event)
