"""Broker bookkeeping for a run: its topics, their end offsets, a group's committed offsets, cleanup.

Throughput is read from what a consumer group has COMMITTED against the topics' end offsets: a
runner has finished only when every topic it consumes (sources and its own re-key topics) is
committed up to its end, which no progress counter inside the runner can fake.
"""
from __future__ import annotations

import logging

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import KafkaError

log = logging.getLogger(__name__)


class Broker:
    """An admin client on the benchmark's cluster."""

    def __init__(self, settings):
        self.settings = settings
        self.admin = KafkaAdminClient(client_id="posvenda-bench", **settings.kafka_python_config())

    def close(self) -> None:
        self.admin.close()

    def topics_of(self, token: str) -> list[str]:
        """Every topic whose name carries the run token."""
        return sorted(t for t in self.admin.list_topics() if token in t)

    def partitions(self, topics: list[str]) -> list[TopicPartition]:
        if not topics:
            return []
        described = self.admin.describe_topics(topics)  # from the broker: topics created a moment ago too
        return [TopicPartition(d["name"], p["partition_index"]) for d in described if not d.get("error_code")
                for p in d["partitions"]]

    def end_offsets(self, topics: list[str]) -> dict[TopicPartition, int]:
        tps = self.partitions(topics)
        if not tps:
            return {}
        found = self.admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.LATEST))
        return {tp: result.offset for tp, result in found.items()}

    def end_offsets_by_topic(self, topics: list[str]) -> dict[str, int]:
        totals = dict.fromkeys(topics, 0)
        for tp, end in self.end_offsets(topics).items():
            totals[tp.topic] += end
        return totals

    def committed(self, group: str) -> dict[TopicPartition, int]:
        try:
            offsets = self.admin.list_group_offsets([group]).get(group, {})
        except KafkaError:  # the group does not exist yet
            return {}
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    def group_state(self, group: str) -> str:
        """The group's state as the coordinator sees it: "Stable" once partitions are assigned."""
        try:
            return self.admin.describe_groups([group])[group]["group_state"]
        except (KafkaError, KeyError):
            return "Unknown"

    def delete_run(self, token: str, groups: list[str]) -> None:
        """Deletes the run's topics and consumer groups so the shared broker does not fill up."""
        topics = self.topics_of(token)
        if topics:
            try:
                self.admin.delete_topics(topics, timeout_ms=30_000)
            except KafkaError as exc:
                log.warning("could not delete every topic of %s: %s", token, exc)
        for group in groups:
            try:
                self.admin.delete_groups([group])
            except KafkaError:
                pass  # never formed, or already gone


def lag(committed: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> int:
    """Messages not yet committed over the given partitions."""
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
