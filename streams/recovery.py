"""Wall-clock ticks for the recovery watermark of idle partitions.

Event time alone stops on a partition that receives no events (a night without orders, a micro
store): a Pix reminder would wait for the next order. Faust forbids table writes outside a stream,
so a timer does not touch the tables: every `recovery_tick_seconds` it sends a small tick to each
partition of orders.ticks that this worker owns (co-partitioned with orders.events, so the same
worker owns the same orders partition), and `advance_idle_partitions` consumes the tick inside a
stream (table writes need one) and moves the watermark (projections.recovery.apply_tick),
emitting what fell due.

A tick only applies when the orders partition is consumed to its end and its newest event is recent
(recovery_fold.tick): a backlog or a replay of older history is never driven by today's clock.
"Consumed to its end" compares the offset after the last orders event the handler saw with the log
end the consumer knows; a dead-lettered message at the very end of a partition therefore holds its
ticks back until the next valid event (the safe side).
When a tick moves a partition's recovery watermark, no orders event arrived since the previous such
tick and the partition's alert watermark is within the alert lateness of the wall clock, it moves
that watermark to the same instant (projections.returns.tick_source), so the alert windows, which
wait for the slowest orders partition, are not held back by an idle live one.
`POSVENDA_RECOVERY_TICK_SECONDS=0` turns the timer off altogether.
"""
from __future__ import annotations

import json
import logging
import time

from faust.types import TP

from projections import recovery, returns
from streams.app import app, settings, topic
from topics import catalogue

log = logging.getLogger(__name__)

ticks_topic = topic(catalogue.ORDER_TICKS)


def _orders_end_offset(partition: int) -> int | None:
    """The end of the orders.events partition as this consumer last saw it (None before a fetch)."""
    try:
        return app.consumer.highwater(TP(settings.topic_name(catalogue.ORDERS), partition))
    except Exception as exc:
        log.debug("orders highwater unknown for partition %s: %s", partition, exc)
        return None


@app.agent(ticks_topic)
async def advance_idle_partitions(stream):
    async for record in stream.events():
        message = record.message
        try:
            wall_ms = int(json.loads(message.value)["wall_ms"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed tick on %s partition %s offset %s", message.topic, message.partition,
                        message.offset)
            continue
        before = _recovery_clock(message.partition).get("watermark")
        await recovery.publish(recovery.apply_tick(message.partition, wall_ms, _orders_end_offset(message.partition)))
        after = _recovery_clock(message.partition)
        if after.get("watermark") is not None and after["watermark"] != before:
            await returns.tick_source(message.partition, after["watermark"], after.get("next_offset"))


def _recovery_clock(partition: int) -> dict:
    return recovery.clock_table.get(recovery.clock_key(partition)) or {}


if settings.recovery_tick_seconds > 0:
    @app.timer(interval=settings.recovery_tick_seconds)
    async def send_ticks() -> None:
        """One tick per orders.ticks partition this worker actively owns."""
        name = settings.topic_name(catalogue.ORDER_TICKS)
        try:
            owned = sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name)
        except Exception as exc:
            log.debug("no ticks sent: %s", exc)
            return
        value = json.dumps({"wall_ms": int(time.time() * 1000)}).encode()
        # Through the plain producer on purpose: under exactly_once, Topic.send to a consumed topic
        # joins the partition's open transaction, which an idle partition never commits, so the tick
        # would never become visible. A lost or repeated tick is harmless (the watermark takes the max).
        producer = app.producer
        await producer.maybe_start()
        for partition in owned:
            await producer.send(name, None, value, partition, None, None)
