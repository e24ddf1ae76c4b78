"""Every topic posvenda uses: name, key, partitions, cleanup policy, retention and value schema.

Names here are logical; `Settings.topic_prefix` is put in front of each at run time so that test runs
and tenants can share a cluster. Source topics that one agent reads together share a partition count
(co-partitioned), so one partition sees the whole history of one session, order or customer.
"""
from __future__ import annotations

from dataclasses import dataclass

FOREVER = -1
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS

# Compacted topics whose superseded values hold personal data (or data keys) must not keep them for
# as long as compaction happens to take: a segment rolls after an hour at most, a record becomes
# eligible for cleaning at most a day after it was written, and a tombstone is kept a day more for
# consumers to see the delete. So a value replaced or deleted (an erasure) survives at most
# max.compaction.lag.ms + segment.ms (25 h) plus one log-cleaner pass.
PERSONAL_DATA_COMPACTION = (("segment.ms", str(HOUR_MS)), ("min.compaction.lag.ms", "0"),
                            ("max.compaction.lag.ms", str(DAY_MS)), ("delete.retention.ms", str(DAY_MS)),
                            ("min.cleanable.dirty.ratio", "0.1"))


@dataclass(frozen=True)
class Topic:
    name: str
    key: str  # what the message key holds
    value_schemas: tuple[str, ...]  # Avro full names a message may carry ("json" for JSON projections)
    cleanup_policy: str = "delete"  # "delete" or "compact"
    retention_ms: int = FOREVER
    partitions: int | None = None  # None: Settings.partitions
    doc: str = ""
    configs: tuple[tuple[str, str], ...] = ()  # further topic configs (admin.topic_configs applies them)

    @property
    def dead_letters(self) -> Topic:
        return Topic(f"{self.name}.dlq", self.key, ("raw",), "delete", 4 * WEEK_MS, self.partitions,
                     f"Messages of {self.name} that could not be processed; reason in the headers.")


def _events(name: str, key: str, schema: str, doc: str) -> Topic:
    return Topic(name, key, (schema,), doc=doc)


VISITS = _events("visits.events", "session_id", "posvenda.visits.VisitEvent", "Sessions and page views.")
CART = _events("cart.events", "session_id", "posvenda.cart.CartEvent", "Cart actions.")
CHECKOUT = _events("checkout.events", "session_id", "posvenda.checkout.CheckoutEvent", "Checkout steps.")
ORDERS = _events("orders.events", "order_id", "posvenda.orders.OrderEvent", "Order state transitions.")
CUSTOMERS = _events("customers.events", "customer_id", "posvenda.customers.CustomerEvent", "Registrations.")
MESSAGES = _events("messages.events", "order_id, else customer_id", "posvenda.messages.MessageEvent",
                   "Messages between store and customer: the communication audit log.")
FEEDBACK = _events("feedback.events", "customer_id", "posvenda.feedback.FeedbackEvent", "NPS answers.")

SOURCE_TOPICS = (VISITS, CART, CHECKOUT, ORDERS, CUSTOMERS, MESSAGES, FEEDBACK)

# Internal re-keying: order facts a session-keyed projection needs (order placed / paid), keyed by session.
SESSION_ORDER_STEPS = Topic("sessions.order-steps", "session_id", ("posvenda.orders.OrderEvent",),
                            retention_ms=4 * WEEK_MS, doc="Order events re-keyed by session for the funnel.")

RECOVERY_ACTIONS = Topic("recovery.actions", "charge_id", ("posvenda.recovery.RecoveryAction",),
                         doc="Boleto/Pix recovery actions for campaigns; each action_id appears once.")
ALERTS = Topic("alerts.events", "alert_id", ("posvenda.alerts.AlertEvent",), doc="Alerts raised and cleared.")


def _projection(name: str, key: str, doc: str) -> Topic:
    return Topic(f"projections.{name}", key, ("json",), "compact", doc=doc)


PROJECTION_FUNNEL = _projection("funnel", "dimension|day|value|step|partition",
                                "Funnel step counts: per-partition partials, sum over partitions.")



def all_topics() -> tuple[Topic, ...]:
    """Every Topic declared in this module, plus a dead-letter topic beside each source/internal one."""
    declared = [v for v in globals().values() if isinstance(v, Topic)]
    unique = tuple(dict.fromkeys(declared))
    readable = [t for t in unique if t.value_schemas != ("json",) and not t.name.startswith(("recovery.", "alerts."))]
    return unique + tuple(t.dead_letters for t in readable)


def for_event_family(schema_name: str) -> Topic:
    """The source topic that holds events of a family schema."""
    for topic in SOURCE_TOPICS:
        if schema_name in topic.value_schemas:
            return topic
    raise KeyError(f"no source topic carries {schema_name}")


def key_of(topic: Topic, event) -> str | None:
    """Message key of an event on its source topic: the entity whose order matters."""
    if topic is MESSAGES:
        return event.order_id or event.customer_id
    return getattr(event, topic.key)


# --- visits, visitors vs buyers, customer 360, order history ---
# Internal re-keying: snapshots of a customer's sessions and orders (JSON, with a growing seq), keyed by
# customer id, for the customer agent (customer 360 and the known customers' share of visitors vs buyers).
CUSTOMER_FACTS = Topic("customers.facts", "customer_id", ("json",), retention_ms=4 * WEEK_MS,
                       doc="Session and order snapshots re-keyed by customer (streams/customers.py).")
PROJECTION_VISITS = _projection("visits", "session_id", "Sessions folded into visits (projections/visits.py).")
PROJECTION_VISITORS_BUYERS = _projection("visitors-buyers", "day|stage|source|partition",
                                         "Visitors vs buyers: per-partition partials, sum over source and partition.")
PROJECTION_CUSTOMERS = Topic("projections.customers", "customer_id", ("json",), "compact",
                             doc="Customer 360 records (name and city in clear); a tombstone on erasure.",
                             configs=PERSONAL_DATA_COMPACTION)
# The per-customer data keys that seal personal fields (topics/personal_data.py), co-partitioned with
# customers.events. Deleting a customer's key (a tombstone) is the erasure: every sealed copy anywhere
# becomes unreadable.
CUSTOMER_KEYS = Topic("customers.keys", "customer_id", ("json",), "compact",
                      doc="Data keys of customers' personal fields; a tombstone erases the customer.",
                      configs=PERSONAL_DATA_COMPACTION)
PROJECTION_ORDERS = _projection("orders", "order_id", "Order history: state machine timeline and message audit log.")


# --- boleto/Pix recovery ---
# Wall-clock ticks for the recovery watermark of idle live partitions (streams/recovery.py): one small
# JSON message per orders partition every few seconds, co-partitioned with orders.events.
ORDER_TICKS = Topic("orders.ticks", "none (explicit partition = the orders partition)", ("json",),
                    retention_ms=3600 * 1000, doc="Wall-clock ticks per orders partition for the recovery watermark.")
PROJECTION_RECOVERY = _projection("recovery", "partition",
                                  "Recovery figures (actions by step, recovered charges and revenue): "
                                  "per-partition partials, sum over partitions.")


# --- return-rate and operational alerts ---
# Internal re-keying of order facts for the stream-judged alerts (JSON facts, see alerts/window_fold.py):
# each fact has a deterministic fact_id, so the judging agents dedupe redeliveries.
PRODUCT_FACTS = Topic("products.facts", "product_id", ("json",), retention_ms=13 * WEEK_MS,
                      doc="Delivered and returned units per product (return-rate alerts), keyed by product.")
CARRIER_FACTS = Topic("carriers.facts", "carrier", ("json",), retention_ms=13 * WEEK_MS,
                      doc="Deliveries per carrier, late or not (late-delivery alerts), keyed by carrier.")
