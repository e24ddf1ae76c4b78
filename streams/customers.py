"""One agent for everything keyed by customer: customers.events, feedback.events, and the session and
order snapshots re-keyed by customer onto customers.facts. Events are decoded once and dispatched to
the handlers registered for CUSTOMERS; facts (JSON, internal) go to the customer 360 fold."""
from __future__ import annotations

import logging

from projections import customer360
from streams import handlers
from streams.app import app, catalogue_entry, topics
from streams.decoding import dispatch
from topics import catalogue

log = logging.getLogger(__name__)

CUSTOMER_SOURCES = (catalogue.CUSTOMERS, catalogue.FEEDBACK, catalogue.CUSTOMER_FACTS)


@app.agent(topics(*CUSTOMER_SOURCES))
async def fold_customers(stream):
    async for record in stream.events():
        message = record.message
        source = catalogue_entry(message.topic, CUSTOMER_SOURCES)
        if source is catalogue.CUSTOMER_FACTS:
            fact = customer360.decode_fact(message.value)
            if fact is None:
                customer360.FACTS_REJECTED.inc()
                log.warning("not a customer fact: %s partition %s offset %s", message.topic, message.partition,
                            message.offset)
                continue
            await customer360.apply_fact(fact, message.partition)
            continue
        await dispatch(handlers.CUSTOMERS, source, message, "customer_id")
