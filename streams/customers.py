"""One agent for everything keyed by customer: customers.events, feedback.events, and the session and
order snapshots re-keyed by customer onto customers.facts. Events are decoded once and dispatched to
the handlers registered for CUSTOMERS; facts (JSON, internal) go to the customer 360 fold."""
from __future__ import annotations

import logging

from projections import customer360
from streams import handlers, unit_of_work
from streams.app import app, catalogue_entry, topics
from streams.decoding import dispatch, fold_batches
from topics import catalogue

log = logging.getLogger(__name__)

CUSTOMER_SOURCES = (catalogue.CUSTOMERS, catalogue.FEEDBACK, catalogue.CUSTOMER_FACTS)


@app.agent(topics(*CUSTOMER_SOURCES))
async def fold_customers(stream):
    async def fold(message) -> None:
        source = catalogue_entry(message.topic, CUSTOMER_SOURCES)
        if source is catalogue.CUSTOMER_FACTS:
            await fold_fact(message)
        else:
            await dispatch(handlers.CUSTOMERS, source, message, "customer_id")

    await fold_batches(stream, fold)


async def fold_fact(message) -> None:
    """Folds one customers.facts message in a unit of its own: a message that is not a fact is counted
    as rejected, a fact whose fold raises is logged with its traceback, and neither changes anything
    (the rest of the batch goes on)."""
    fact = customer360.decode_fact(message.value)
    if fact is None:
        customer360.FACTS_REJECTED.inc()
        log.warning("not a customer fact: %s partition %s offset %s", message.topic, message.partition,
                    message.offset)
        return
    unit = unit_of_work.Unit(parent=unit_of_work.current())
    try:
        with unit_of_work.opened(unit):
            await customer360.apply_fact(fact, message.partition)
    except Exception:
        unit.discard()
        log.exception("customer fact not folded: %s partition %s offset %s", message.topic, message.partition,
                      message.offset)
        return
    await unit.commit()
