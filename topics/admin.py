"""Creates the catalogue's topics on the cluster, idempotently (kafka-python admin client)."""
from __future__ import annotations

import logging

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from topics.catalogue import Topic, all_topics

log = logging.getLogger(__name__)


def topic_configs(topic: Topic) -> dict[str, str]:
    configs = {"cleanup.policy": topic.cleanup_policy, "retention.ms": str(topic.retention_ms)}
    if topic.cleanup_policy == "compact":
        configs.update({"min.cleanable.dirty.ratio": "0.1", "segment.ms": str(3600 * 1000)})
    configs.update(dict(topic.configs))
    return configs


def _apply_configs(admin, existing: dict[str, Topic]) -> None:
    """Sets the declared extra configs (e.g. the compaction bound of personal data) on topics that
    were created before they were declared; incremental, so other overrides stay as they are."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(t.configs))
                 for name, t in existing.items() if t.configs]
    if resources:
        admin.alter_configs(resources)


def create_topics(settings, topics: tuple[Topic, ...] | None = None) -> tuple[list[str], list[str]]:
    """Creates missing topics; returns (created, already there) physical names."""
    wanted = {settings.topic_name(t): t for t in (topics or all_topics())}
    admin = KafkaAdminClient(client_id="posvenda-admin", **settings.kafka_python_config())
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, t.partitions or settings.partitions, 1, topic_configs=topic_configs(t))
            for name, t in wanted.items() if name not in existing
        ]
        created = []
        for new in missing:  # one by one: a concurrent creator must not fail the whole batch
            try:
                admin.create_topics([new])
                created.append(new.name)
            except TopicAlreadyExistsError:
                pass
        _apply_configs(admin, {name: t for name, t in wanted.items() if name in existing})
        return created, sorted(set(wanted) & existing)
    finally:
        admin.close()
