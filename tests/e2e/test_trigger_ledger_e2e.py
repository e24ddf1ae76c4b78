"""The trigger ledger through the real broker: after a partition assignment it reads the ids of the
triggers already on their topics, and a flush then drops those (a batch redelivered after a crash)
while new ids and other topics go out; ids it let through are dropped the second time."""
from __future__ import annotations

import asyncio
import datetime as dt

from kafka import KafkaProducer

from streams.trigger_ledger import TriggerLedger
from topics import catalogue, codec


def action(action_id: str) -> bytes:
    at = dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC)
    return codec.encode("posvenda.recovery.RecoveryAction", {
        "action_id": action_id, "type": "reminder", "step": "reminder", "charge_id": action_id.split(":")[0],
        "order_id": "o-1", "customer_id": "c-1", "method": "boleto", "amount": 10.0, "due_at": at,
        "scheduled_at": at, "channels": ["email"]})


def test_a_trigger_already_on_its_topic_is_not_sent_again(settings):
    actions = settings.topic_name(catalogue.RECOVERY_ACTIONS)
    producer = KafkaProducer(**settings.kafka_python_config())
    for action_id in ("ch-1:reminder", "ch-2:reminder"):
        producer.send(actions, key=action_id.split(":")[0].encode(), value=action(action_id))
    producer.flush()
    producer.close()
    assignment = {"now": frozenset({"orders.events-0"})}
    ledger = TriggerLedger(settings, lambda: assignment["now"])
    visits = settings.topic_name(catalogue.PROJECTION_VISITS)

    flush = [(actions, action("ch-1:reminder")), (actions, action("ch-3:reminder")), (visits, b"{}"),
             (actions, action("ch-2:reminder"))]
    assert asyncio.run(ledger.first_sends(flush)) == [False, True, True, False]
    assert asyncio.run(ledger.first_sends([(actions, action("ch-3:reminder"))])) == [False], \
        "an id the ledger let through is a repeat the next time"
    assert asyncio.run(ledger.first_sends([(visits, b"{}")] * 2)) == [True, True], "other topics are never held"
