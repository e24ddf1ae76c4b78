"""One agent for everything keyed by session: visits, cart and checkout events, and order steps
re-keyed by session. It decodes once and dispatches to the handlers registered for SESSIONS."""
from __future__ import annotations

from streams import handlers
from streams.app import app, catalogue_entry, topics
from streams.decoding import dispatch
from topics import catalogue

SESSION_SOURCES = (catalogue.VISITS, catalogue.CART, catalogue.CHECKOUT, catalogue.SESSION_ORDER_STEPS)


@app.agent(topics(*SESSION_SOURCES))
async def fold_sessions(stream):
    async for record in stream.events():
        message = record.message
        await dispatch(handlers.SESSIONS, catalogue_entry(message.topic, SESSION_SOURCES), message, "session_id")
