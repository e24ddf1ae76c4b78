"""The source events of a benchmark, encoded once and published afresh under each run's prefix."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from posvenda.publish import Publisher
from posvenda.simulate import generate
from topics import catalogue, events

SIMULATION_START_MS = 1_741_611_600_000


@dataclass(frozen=True)
class Dataset:
    name: str  # "olist" or "simulated"
    messages: tuple[tuple[catalogue.Topic, str | None, bytes], ...]  # (source topic, key, Avro value)

    def count(self, topic: catalogue.Topic | None = None) -> int:
        return len(self.messages) if topic is None else sum(1 for t, _k, _v in self.messages if t is topic)

    def per_topic(self) -> Counter:
        return Counter(t.name for t, _k, _v in self.messages)

    def publish(self, settings) -> None:
        with Publisher(settings) as publisher:
            for topic, key, value in self.messages:
                publisher.publish_raw(topic, key, value)


def _encode(name: str, sample) -> Dataset:
    messages = []
    for event in sample:
        topic = catalogue.for_event_family(events.event_type(event.type).family)
        messages.append((topic, catalogue.key_of(topic, event), events.encode(event)))
    return Dataset(name, tuple(messages))


def olist(directory: Path, orders: int | None = None) -> Dataset:
    """The Olist order history (posvenda/olist.py maps the CSVs to events)."""
    from posvenda import olist as olist_events

    sample, _rejected = olist_events.replay(olist_events.load(directory, orders))
    return _encode("olist", sample)


def simulated(sessions: int, seed: int = 5) -> Dataset:
    """Simulated traffic of every family (posvenda/simulate.py)."""
    return _encode("simulated", generate(seed, sessions, SIMULATION_START_MS))
