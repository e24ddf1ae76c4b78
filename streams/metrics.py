"""Prometheus metrics of a worker. Labels are bounded sets only: never customer, order or session ids.

Names follow Prometheus conventions: base units in the name, `_total` for counters.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PROCESSED = Counter("posvenda_events_processed_total", "Events folded into projections.", ["topic", "type"])
DEAD_LETTERS = Counter("posvenda_dead_letters_total", "Messages sent to a dead-letter topic.", ["topic", "reason"])
DUPLICATES = Counter("posvenda_duplicate_events_total", "Events ignored because their event_id was already seen.",
                     ["topic"])
PROCESSING_LATENCY = Histogram(
    "posvenda_processing_latency_seconds", "Event time to projection update.", ["topic"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400),
)
CONSUMER_LAG = Gauge("posvenda_consumer_lag_messages", "Messages behind the log end, per partition.",
                     ["topic", "partition"])
FUNNEL_SESSIONS = Counter("posvenda_funnel_sessions_total", "Sessions reaching a funnel step.",
                          ["step", "device", "channel"])
