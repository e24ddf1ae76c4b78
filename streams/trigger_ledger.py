"""Triggers already on their topic are not sent again after a crash.

A batch's sends are acknowledged before its writes (streams/unit_of_work.py), so a worker killed in
between leaves triggers on the log whose state never reached the changelog; the batch is redelivered
and would send them again. Recovery actions and alert transitions have deterministic ids, so the
worker that folds the redelivered events (the restarted one, or another that took the partitions)
reads the ids sent in the last `WINDOW_SECONDS` of each trigger topic whenever its partition
assignment changes, before its next flush, and drops a trigger whose id is among them
(`posvenda_trigger_repeats_dropped_total`). A redelivery covers what a worker folded since its last
offset commit (seconds), and its partitions are reassigned within the session timeout of the crash,
far inside the window. A consumer should still keep the first of two equal ids (`posvenda campaigns`
does): a crash that outlasts the window, or a producer retry, can repeat one.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter

from topics import catalogue, codec

log = logging.getLogger(__name__)

WINDOW_SECONDS = 15 * 60

REPEATS_DROPPED = Counter("posvenda_trigger_repeats_dropped_total",
                          "Triggers not sent again because their id was already on the topic (after a crash).",
                          ["topic"])


def recovery_action_id(value: bytes) -> str:
    return codec.decode(value)[1]["action_id"]


def alert_transition_id(value: bytes) -> str:
    record = codec.decode(value)[1]
    return f"{record['alert_id']}|{record['state']}"


IDS: dict[catalogue.Topic, Callable[[bytes], str]] = {
    catalogue.RECOVERY_ACTIONS: recovery_action_id,
    catalogue.ALERTS: alert_transition_id,
}


class TriggerLedger:
    """Ids of the triggers sent in the last window, per physical topic name."""

    def __init__(self, settings, assigned: Callable[[], frozenset], window_s: float = WINDOW_SECONDS):
        self.settings = settings
        self.assigned = assigned
        self.window_s = window_s
        self.ids = {settings.topic_name(t): id_of for t, id_of in IDS.items()}
        self._seen: dict[tuple[str, str], float] = {}
        self._read_for: frozenset | None = None

    def covers(self, topic_name: str) -> bool:
        return topic_name in self.ids

    async def first_sends(self, sends: list[tuple[str, bytes]]) -> list[bool]:
        """For each (topic name, value) of a flush, in order: True to send it, False for a repeat."""
        if not any(self.covers(name) for name, _ in sends):
            return [True] * len(sends)
        await self._catch_up()
        now, out = time.time(), []
        for name, value in sends:
            if not self.covers(name) or value is None:
                out.append(True)
                continue
            key = (name, self.ids[name](value))
            if key in self._seen:
                REPEATS_DROPPED.labels(name).inc()
                log.info("not sending %s again: it is already on %s (a batch redelivered after a crash)",
                         key[1], name)
                out.append(False)
                continue
            self._seen[key] = now
            out.append(True)
        self._forget_before(now - self.window_s)
        return out

    async def _catch_up(self) -> None:
        assigned = self.assigned()
        if assigned == self._read_for:
            return
        since = time.time() - self.window_s
        try:
            found = await asyncio.get_running_loop().run_in_executor(None, self._read_since, since)
        except Exception as exc:  # the sends go on: a repeat is possible, a loss is not
            log.warning("trigger ledger: could not read the trigger topics (%s); a trigger sent before a crash "
                        "may be sent again", exc)
            found = {}
        self._seen.update(found)
        self._read_for = assigned
        log.info("trigger ledger: %d trigger id(s) of the last %.0f min read after a partition assignment",
                 len(found), self.window_s / 60)

    def _forget_before(self, cutoff: float) -> None:
        if len(self._seen) > 1000 and min(self._seen.values()) < cutoff:
            self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}

    def _read_since(self, since: float) -> dict[tuple[str, str], float]:
        """{(topic name, id): send time} of every trigger written since `since` (committed ones)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, isolation_level="read_committed",
                                 **self.settings.kafka_python_config())
        try:
            tps = [TopicPartition(name, p) for name in self.ids
                   for p in sorted(consumer.partitions_for_topic(name) or ())]
            if not tps:
                return {}
            consumer.assign(tps)
            ends = consumer.end_offsets(tps)
            starts = consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
            remaining = set()
            for tp in tps:
                found = starts.get(tp)
                if found is None or found.offset >= ends[tp]:
                    continue
                consumer.seek(tp, found.offset)
                remaining.add(tp)
            out: dict[tuple[str, str], float] = {}
            deadline = time.monotonic() + 60
            while remaining and time.monotonic() < deadline:
                for tp, messages in consumer.poll(timeout_ms=500).items():
                    for m in messages:
                        try:
                            out[(tp.topic, self.ids[tp.topic](m.value))] = m.timestamp / 1000
                        except Exception as exc:  # not ours to judge: the trigger topics' readers do
                            log.debug("unreadable trigger at %s:%s@%s: %s", tp.topic, tp.partition, m.offset, exc)
                for tp in list(remaining):
                    if consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            if remaining:
                log.warning("trigger ledger: %d partition(s) not read to their end within 60 s; a trigger sent "
                            "before a crash may be sent again", len(remaining))
            return out
        finally:
            consumer.close()
