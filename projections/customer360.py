"""Customer 360 read model: its table, the known customers' visitors-vs-buyers partials, the compacted
projection topic, the HTTP views, and the sender of facts onto customers.facts.

Written only by the customer agent (streams/customers.py): customer and feedback events arrive through
the CUSTOMERS handlers, session and order snapshots through customers.facts (see apply_fact). Personal
data (name, city) is kept sealed in this table (so in its changelog and RocksDB too) and opened with the
customer's key (streams/customer_keys.py) only for the HTTP views and projections.customers; it is never
logged nor used as a label. An erasure deletes the key, hides the record from the views and writes a
tombstone to projections.customers.
"""
from __future__ import annotations

import json
import logging

from prometheus_client import Counter

from projections import customer360_fold
from projections.derived import DerivedCounts
from projections.http import page_of, unauthorized
from streams import customer_keys, handlers
from streams.app import app, assigned_partitions, settings, topic
from topics import catalogue, personal_data

log = logging.getLogger(__name__)

CUSTOMER_EVENT_TYPES = frozenset({"customer_registered", "customer_updated", "customer_erasure_requested",
                                  "nps_answered"})

customers_table = app.Table("customer-360", default=None, partitions=settings.partitions,
                            extra_topic_configs=dict(catalogue.PERSONAL_DATA_COMPACTION))
# Visitors-vs-buyers cells of known customers, derived from their records (see projections/derived.py).
visitor_counts = DerivedCounts(customers_table, lambda state: customer360_fold.cells(state),
                               lambda: assigned_partitions(catalogue.CUSTOMERS),
                               lambda: not (app.rebalancing or getattr(app, "in_recovery", False)))

FACTS_SENT = Counter("posvenda_customer_facts_sent_total", "Session/order snapshots re-keyed by customer.",
                     ["kind", "action"])
FACTS_REJECTED = Counter("posvenda_customer_facts_rejected_total", "customers.facts messages that were not a fact.")
ERASURES = Counter("posvenda_customer_erasures_total", "Customer erasure requests applied (personal data dropped).")


async def send_fact(kind: str, entity_id: str, customer_id: str, seq: int, fact: dict | None) -> None:
    """Publishes a snapshot (or a retraction, fact None) of a session/order for the customer agent."""
    message = customer360_fold.fact_message(kind, entity_id, customer_id, seq, fact)
    await topic(catalogue.CUSTOMER_FACTS).send(key=customer_id.encode(), value=json.dumps(message).encode())
    FACTS_SENT.labels(kind, "retract" if fact is None else "snapshot").inc()


async def forward_fact_change(kind: str, entity_id: str, seq: int, old: dict | None, new: dict | None) -> None:
    """Sends what a change of one session/order means to its customer(s): retract, then snapshot."""
    if old and (not new or old["customer_id"] != new["customer_id"]):
        await send_fact(kind, entity_id, old["customer_id"], seq, None)
    if new and new != old:
        await send_fact(kind, entity_id, new["customer_id"], seq, new)


def decode_fact(value: bytes) -> dict | None:
    try:
        message = json.loads(value)
        if message["kind"] in ("session", "order") and isinstance(message["seq"], int) and message["customer_id"]:
            return message
    except (ValueError, TypeError, KeyError):
        pass
    return None


def visible(state: dict | None) -> bool:
    return customer360_fold.shown(state)


async def public_view(state: dict) -> dict:
    """The customer's view with name and city opened (absent once the customer's key is deleted)."""
    view = customer360_fold.view(state)
    sealed = [view[f] for f in customer360_fold.PII_FIELDS if personal_data.is_sealed(view[f])]
    key_id = personal_data.key_id_of(sealed[0]) if sealed else None
    key = await customer_keys.reader.key(view["customer_id"], key_id) if key_id else None
    return customer360_fold.revealed(view, key)


async def _store(old: dict | None, new: dict, partition: int) -> None:
    new = {**new, "p": partition}
    if new == old:
        return
    customer_id = new["customer_id"]
    moves = visitor_counts.move(partition, old, new)  # before the write (see DerivedCounts.move)
    customers_table[customer_id] = new
    for (day, stage), value in moves.items():
        await topic(catalogue.PROJECTION_VISITORS_BUYERS).send(key=f"{day}|{stage}|customers|{partition}".encode(),
                                                               value=json.dumps({"day": day, "stage": stage,
                                                                                 "source": "customers",
                                                                                 "partition": partition,
                                                                                 "visitors": value}).encode())
    before = customer360_fold.view(old) if visible(old) else None
    after = customer360_fold.view(new) if visible(new) else None
    if after != before:
        await topic(catalogue.PROJECTION_CUSTOMERS).send(
            key=customer_id.encode(), value=None if after is None else json.dumps(await public_view(new)).encode())


@handlers.on(handlers.CUSTOMERS)
async def apply_event(event, partition: int) -> None:
    """Folds a customer or feedback event into the customer's record."""
    if event.type not in CUSTOMER_EVENT_TYPES or not event.customer_id:
        return
    old = customers_table.get(event.customer_id)
    new = customer360_fold.apply_event(old, event)
    if event.type == "customer_erasure_requested":
        await customer_keys.shred(event.customer_id)  # idempotent: a redelivered request deletes nothing more
        if (old or {}).get("erased_at") is None:
            ERASURES.inc()
    await _store(old, new, partition)


async def apply_fact(message: dict, partition: int) -> None:
    """Folds a session/order snapshot from customers.facts into the customer's record."""
    old = customers_table.get(message["customer_id"])
    if old is None and message["fact"] is None:
        return  # retraction for a customer never seen: nothing to take back
    await _store(old, customer360_fold.apply_fact(old, message), partition)


def merged_counts() -> dict[tuple[str, str], int]:
    return visitor_counts.merged()


@app.page("/customers/{customer_id}")
async def customer_view(web, request, customer_id):
    """GET /customers/{customer_id}: the customer's 360 record."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    state = customers_table.get(customer_id)
    if not visible(state):
        return web.json({"error": f"no customer {customer_id!r}"}, status=404)
    return web.json(await public_view(state))


@app.page("/customers")
async def customers_view(web, request):
    """GET /customers?offset=&limit=: customer 360 records sorted by customer id."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    keys = sorted(k for k, v in customers_table.items() if visible(v))
    page = page_of(request, keys)
    page["items"] = [await public_view(customers_table[k]) for k in page["items"]]
    return web.json(page)
