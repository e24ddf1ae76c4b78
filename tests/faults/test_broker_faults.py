"""Faults on the broker side, on a PRIVATE broker (never the shared one on 127.0.0.1:9092): the broker
is stopped and restarted while events are still being published and processed; the same worker and
the same publisher must reconnect by themselves, and every projection and trigger must equal the
ground truth (`assert_every_projection_converges`: funnel, visits, orders, customers, visitors vs
buyers, return rates, late deliveries, active alerts, recovery figures, recovery action ids and alert
transitions on their topics, handling-time report)."""
from __future__ import annotations

import threading
import time

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from posvenda.ingest import Rejection, parse_lines
from posvenda.publish import Publisher
from tests.conftest import wait_until
from tests.faults.conftest import assert_every_projection_converges
from tests.faults.conftest_broker import private_broker  # noqa: F401  (fixture)
from topics import catalogue
from topics.admin import create_topics

SOURCE_LABELS = tuple(f'topic="{t.name}"' for t in catalogue.SOURCE_TOPICS)
OUTAGE_SECONDS = 5  # how long the broker stays down (on top of its ~2 s controlled shutdown)


def processed(worker) -> float:
    """Events of the source topics the worker has read so far (from its /metrics)."""
    text = worker.get_text("/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("posvenda_events_processed_total{") and any(lbl in line for lbl in SOURCE_LABELS))


def published(settings) -> int:
    """Messages on the source topics (end offsets): the publisher's side of 'nothing lost'."""
    consumer = KafkaConsumer(**settings.kafka_python_config())
    try:
        tps = [TopicPartition(settings.topic_name(t), p) for t in catalogue.SOURCE_TOPICS
               for p in consumer.partitions_for_topic(settings.topic_name(t)) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


class PacedPublisher(threading.Thread):
    """Publishes events at a bounded rate so that the broker outage lands in the middle of it.

    Nothing special happens on the outage: kafka-python keeps the records in its buffer and retries
    them (idempotent producer, delivery timeout 120 s) once the broker is back."""

    def __init__(self, settings, events, rate: float):
        super().__init__(daemon=True, name="paced-publisher")
        self.settings, self.events, self.rate = settings, events, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            started = time.monotonic()
            with Publisher(self.settings) as publisher:
                for event in self.events:
                    publisher.publish(event)
                    self.sent += 1
                    ahead = started + self.sent / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_broker_stopped_and_restarted_mid_stream_workers_catch_up_without_loss(
        private_broker, settings_factory, worker_factory, simulated, record_property):  # noqa: F811
    lines = simulated.lines
    events = list(parse_lines(simulated.path.read_text(encoding="utf-8").splitlines()))
    assert not any(isinstance(e, Rejection) for e in events)
    broker = private_broker()
    settings = settings_factory(bootstrap_servers=broker.bootstrap, security_protocol="PLAINTEXT",
                                sasl_mechanism=None, sasl_username=None, sasl_password=None, ssl_cafile=None)
    create_topics(settings)

    head = int(len(events) * 0.4)
    with Publisher(settings) as publisher:  # a backlog, so the worker is busy when the broker goes
        for event in events[:head]:
            publisher.publish(event)
    worker = worker_factory(settings)
    tail = PacedPublisher(settings, events[head:], rate=200)  # ~30 s: outlives the outage
    tail.start()

    wait_until(lambda: processed(worker) > len(lines) * 0.1, 120, what="a tenth of the events to be processed")
    at_stop = processed(worker)
    broker.stop()
    assert not broker.running()
    assert tail.is_alive() and tail.sent < len(events) - head, \
        f"the outage should land mid-publish (sent {tail.sent}/{len(events) - head}, error {tail.error!r}, processed {at_stop})"
    time.sleep(OUTAGE_SECONDS)  # the fault itself: the broker stays down for a while
    assert worker.process.poll() is None, f"the worker died with the broker:\n{worker.log()[-3000:]}"
    broker.start()

    tail.join(180)
    assert not tail.is_alive(), "the publisher did not finish after the broker came back"
    assert tail.error is None, f"the publisher failed: {tail.error!r}"
    assert published(settings) == len(lines), "the publisher lost or duplicated events across the outage"
    assert at_stop < len(lines), "the broker should stop mid-stream"
    assert_every_projection_converges(worker, settings, simulated)  # the same worker process, never restarted
    assert worker.process.poll() is None
    wait_until(lambda: processed(worker) >= len(lines), 60, what="every event to be counted as processed")
    record_property("private_broker_start_seconds", broker.start_seconds)
    print(f"\nprivate broker start: {broker.start_seconds} s (first = format + start); "
          f"stopped after {at_stop:.0f}/{len(lines)} events processed")
