"""How far behind and how healthy this worker's consumer is: consumer lag per partition, and a Faust
sensor counting rebalances, failed assignments and failed sends.

Lag is what tells a stalled or overloaded worker apart from a quiet shop (a crashed agent stops
committing while its partitions keep growing), so it is sampled every LAG_INTERVAL_SECONDS from the
consumer's own view, with no extra broker request: the log end it last fetched (the last stable
offset under exactly_once, where the consumer reads committed data only) minus the offset Faust last
committed for the partition. Only source and internal topics of the catalogue count; table changelogs
are read during recovery only and have no committed offset.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

import faust

from streams import metrics
from streams.app import app, settings
from topics import catalogue

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0


def lag_by_partition(assignment: Iterable, highwater: Callable[[object], int | None],
                     committed: Mapping[object, int | None],
                     logical_name: Mapping[str, str]) -> dict[tuple[str, int], int]:
    """{(logical topic, partition): lag} for the assigned partitions of catalogue topics.

    `assignment` holds TopicPartitions (.topic, .partition); `highwater(tp)` is the log end the
    consumer knows (None before its first fetch: skipped, it is not known yet); `committed[tp]` the
    next offset to read, None before the group's first commit (then everything up to the log end is
    pending: sources are never trimmed by retention, so the log starts at 0).
    """
    lags = {}
    for tp in assignment:
        name = logical_name.get(tp.topic)
        if name is None:
            continue
        end = highwater(tp)
        if end is None:
            continue
        done = committed.get(tp) or 0
        lags[(name, tp.partition)] = max(0, end - done)
    return lags


NOT_WORK = frozenset({catalogue.ORDER_TICKS.name})  # heartbeats the worker writes itself, not work to catch up


def lag_topics(topics: Iterable) -> list:
    """The catalogue topics whose consumer lag means work waiting."""
    return [t for t in topics if t.name not in NOT_WORK]


def _logical_names() -> dict[str, str]:
    return {settings.topic_name(t): t.name for t in lag_topics(catalogue.all_topics())}


@app.timer(interval=LAG_INTERVAL_SECONDS)
async def sample_consumer_lag() -> None:
    """Sets posvenda_consumer_lag_messages for every assigned partition; drops revoked ones."""
    consumer = app.consumer
    try:
        assignment = consumer.assignment()
        lags = lag_by_partition(assignment, consumer.highwater, consumer._committed_offset, _logical_names())
    except Exception as exc:
        log.debug("consumer lag not sampled: %s: %s", type(exc).__name__, exc)
        return
    # clear + set runs without an await between them, so a scrape (same event loop) never sees a gap,
    # and partitions revoked by a rebalance disappear instead of freezing at their last value.
    metrics.CONSUMER_LAG.clear()
    for (name, partition), lag in lags.items():
        metrics.CONSUMER_LAG.labels(name, str(partition)).set(lag)
    metrics.ASSIGNED_PARTITIONS.set(len(lags))


class PipelineSensor(faust.Sensor):
    """Counts what goes wrong in the consumer and producer (Faust calls these hooks)."""

    def on_send_error(self, producer, exc, state) -> None:
        metrics.SEND_ERRORS.inc()

    def on_assignment_error(self, assignor, state, exc) -> None:
        metrics.ASSIGNMENT_ERRORS.inc()

    def on_rebalance_start(self, app) -> dict:
        metrics.REBALANCES.inc()
        return super().on_rebalance_start(app)


app.sensors.add(PipelineSensor())
