"""Prometheus metrics of a worker. Labels are bounded sets only: never customer, order or session ids.

Names follow Prometheus conventions: base units in the name, `_total` for counters. Read models that
own a metric declare it in their own module; the ones here belong to the pipeline itself. The
dashboards (alerts/dashboards.py) and alert rules query these names: renaming one breaks them, and
tests/unit/test_dashboards.py says which.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from topics import catalogue

EVENTS_PROCESSED = Counter("posvenda_events_processed_total", "Events folded into projections.", ["topic", "type"])
DEAD_LETTERS = Counter("posvenda_dead_letters_total", "Messages sent to a dead-letter topic.", ["topic", "reason"])
DUPLICATES = Counter("posvenda_duplicate_events_total", "Events ignored because their event_id was already seen.",
                     ["topic"])
for _source in (*catalogue.SOURCE_TOPICS, catalogue.SESSION_ORDER_STEPS):
    DUPLICATES.labels(_source.name)  # exported as 0 from the start: "no duplicates" is data, not a gap
HANDLER_ERRORS = Counter("posvenda_handler_errors_total",
                         "Events whose handlers raised: dead-lettered as handler_error, no read model changed.",
                         ["topic"])
for _source in (*catalogue.SOURCE_TOPICS, catalogue.SESSION_ORDER_STEPS):
    HANDLER_ERRORS.labels(_source.name)
# What an operator waits on: the message's arrival in Kafka (its timestamp) to the projection update. The
# event-time delay is apart, as a replay of old history is years behind event time yet on time here.
PROCESSING_LATENCY = Histogram(
    "posvenda_processing_latency_seconds", "Arrival in Kafka (message timestamp) to projection update.",
    ["topic"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400),
)
EVENT_TIME_DELAY = Histogram(
    "posvenda_event_time_delay_seconds", "Event time (occurred_at) to projection update: includes how late "
    "events reach Kafka, and the age of replayed history.", ["topic"],
    buckets=(1, 10, 60, 300, 1800, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400, 10 * 365 * 86400),
)
CONSUMER_LAG = Gauge("posvenda_consumer_lag_messages",
                     "Messages between the log end (last stable offset) and the committed offset, per assigned "
                     "source partition; transaction markers keep it at 1 on topics written in transactions.",
                     ["topic", "partition"])
FUNNEL_SESSIONS = Counter("posvenda_funnel_sessions_total", "Sessions reaching a funnel step.",
                          ["step", "device", "channel"])

# Order handling time: placement to shipment, in event time (projections/handling_time.py). Buckets span
# same-day dispatch to a boleto paid on its due date and shipped a week later.
ORDER_HANDLING = Histogram(
    "posvenda_order_handling_seconds", "Event time from order placed to order shipped.", ["payment_method"],
    buckets=(600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400, 5 * 86400,
             7 * 86400, 14 * 86400, 30 * 86400),
)

# The consumer's and producer's own troubles (streams/lag.py's Faust sensor). Unlabelled, so they are
# exported as 0 from the start and a rate() over them always has data.
SEND_ERRORS = Counter("posvenda_send_errors_total", "Messages the worker's producer failed to send.")
REBALANCES = Counter("posvenda_rebalances_total", "Consumer group rebalances this worker went through.")
ASSIGNMENT_ERRORS = Counter("posvenda_assignment_errors_total", "Partition assignments that failed.")
ASSIGNED_PARTITIONS = Gauge("posvenda_assigned_partitions", "Source topic partitions assigned to this worker.")
