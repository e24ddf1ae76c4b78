"""The worker's copy of customers.keys: every customer's data key, held in memory only.

A plain aiokafka consumer (no group) reads every partition of the keys topic from the start when the
worker starts and follows it; a tombstone drops the key. Keys are never written to the local store:
the customer 360 table keeps the personal fields sealed (projections/customer360_fold.py), so once a
key is deleted neither RocksDB nor a changelog holds anything that opens. A key is looked up when a
view or a projection record is made. Producers write a key before the first event that uses it, so a
key id not seen yet is waited for by reading the topic up to its current end; a key id still missing
then was deleted (an erasure), and is remembered as closed.
"""
from __future__ import annotations

import asyncio
import logging
import ssl

from streams.app import app, settings, topic
from topics import catalogue, personal_data

log = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S = 10.0
RETRY_S = 5.0


def _aiokafka_options(s) -> dict:
    """The worker's connection settings for a bare aiokafka client (same names as kafka-python's)."""
    options = s.kafka_python_config()
    cafile = options.pop("ssl_cafile", None)
    if options["security_protocol"] in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=cafile)
    return options


class KeyReader:
    """Customer id -> current data key, following the keys topic."""

    def __init__(self):
        self.keys: dict[str, personal_data.CustomerKey] = {}
        self.closed: set[str] = set()  # key ids known to be deleted
        self._consumer = None
        self._partitions: list = []

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        customer_id = key.decode(errors="replace")
        found = personal_data.key_from_record(value) if value is not None else None
        if found is None or found.customer_id != customer_id:
            self.forget(customer_id)
        else:
            self.keys[customer_id] = found

    def forget(self, customer_id: str) -> None:
        gone = self.keys.pop(customer_id, None)
        if gone is not None:
            self.closed.add(gone.key_id)

    async def follow(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        name = settings.topic_name(catalogue.CUSTOMER_KEYS)
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                    client_id="posvenda-keys", **_aiokafka_options(settings))
        await consumer.start()
        try:
            await consumer.topics()
            count = len(consumer.partitions_for_topic(name) or ()) or catalogue.CUSTOMER_KEYS.partitions or settings.partitions
            partitions = [TopicPartition(name, p) for p in range(count)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self._consumer, self._partitions = consumer, partitions
            while True:
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    for message in messages:
                        self.apply(message.key, message.value)
        finally:
            self._consumer = None
            await consumer.stop()

    async def caught_up(self, timeout: float = CATCH_UP_TIMEOUT_S) -> bool:
        """Waits until every key written before now has been read; False when that took too long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._consumer is None:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.05)
        consumer = self._consumer
        end = await consumer.end_offsets(self._partitions)
        for tp in self._partitions:
            while await consumer.position(tp) < end[tp]:
                if loop.time() > deadline:
                    log.warning("customers.keys: not caught up after %.0f s", timeout)
                    return False
                await asyncio.sleep(0.02)
        return True

    async def key(self, customer_id: str, key_id: str) -> personal_data.CustomerKey | None:
        """The key with this id of the customer, or None when it was deleted (erased)."""
        found = self.keys.get(customer_id)
        if found is not None and found.key_id == key_id:
            return found
        if key_id in self.closed or not await self.caught_up():
            return None
        found = self.keys.get(customer_id)
        if found is not None and found.key_id == key_id:
            return found
        self.closed.add(key_id)
        return None


reader = KeyReader()


@app.task
async def follow_keys() -> None:
    while True:  # e.g. the broker not reachable at start: try again rather than run without keys
        try:
            await reader.follow()
        except Exception as exc:
            log.warning("customers.keys reader stopped (%s: %s); starting again in %.0f s", type(exc).__name__, exc,
                        RETRY_S)
            await asyncio.sleep(RETRY_S)


async def shred(customer_id: str) -> None:
    """Deletes the customer's key (a tombstone on customers.keys) and forgets it here."""
    await topic(catalogue.CUSTOMER_KEYS).send(key=customer_id.encode(), value=None)
    reader.forget(customer_id)
