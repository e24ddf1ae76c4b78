"""Creates the catalogue's topics on the cluster, idempotently (kafka-python admin client)."""
from __future__ import annotations

import logging
import time

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
        _wait_until_listed(admin, created)
        return created, sorted(set(wanted) & existing)
    finally:
        admin.close()


def _wait_until_listed(admin, names: list[str], timeout_s: float = 30.0) -> None:
    """Returns once the cluster's metadata lists every topic of `names`. A creation is acknowledged by
    the controller before the broker's metadata has it, and a producer checking right after
    (`require_topics`) found freshly created topics missing: `make demo` failed on a new broker."""
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending:
        pending -= set(admin.list_topics())
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicsNotReady(f"{len(pending)} topic(s) created but still not listed after {timeout_s:.0f} s: "
                                 f"{', '.join(sorted(pending))}")
        time.sleep(0.2)


# --- topics as the catalogue declares them ------------------------------------------------------

CREATE_HINT = "run `posvenda topics create` first (with the same KAFKA_BOOTSTRAP_SERVERS and POSVENDA_TOPIC_PREFIX)"


class TopicsNotReady(RuntimeError):
    """Topics a command needs are missing or not as the catalogue declares them; the message says what to do."""


def require_topics(settings, topics: tuple[Topic, ...]) -> None:
    """Raises TopicsNotReady naming every topic of `topics` the cluster does not have.

    Producers call this before sending anything: a broker that creates topics on first use gives them
    its own default partitions and no cleanup policy or retention, which breaks the co-partitioning
    the agents rely on without anyone noticing."""
    admin = KafkaAdminClient(client_id="posvenda-admin", **settings.kafka_python_config())
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    missing = sorted(settings.topic_name(t) for t in topics if settings.topic_name(t) not in existing)
    if missing:
        raise TopicsNotReady(f"{len(missing)} topic(s) missing on {settings.bootstrap_servers}: "
                             f"{', '.join(missing)}; {CREATE_HINT}")


def describe(settings, names: list[str]) -> dict[str, dict]:
    """{name: {"partitions": n, "cleanup.policy": str | None, "retention.ms": str | None}} of existing
    topics (None: not set on the topic, the broker's default applies)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return {}
    admin = KafkaAdminClient(client_id="posvenda-admin", **settings.kafka_python_config())
    try:
        partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        admin.close()
    by_topic = configs.get("topic", {}) if isinstance(configs, dict) else {}
    out = {}
    for name in names:
        values = by_topic.get(name, {})
        out[name] = {"partitions": partitions.get(name),
                     **{k: (values.get(k) or {}).get("value") for k in ("cleanup.policy", "retention.ms")}}
    return out


def drift(settings, topics: tuple[Topic, ...] | None = None) -> list[str]:
    """One line per way an existing topic differs from the catalogue (partitions, cleanup.policy,
    retention.ms), each with what to do about it."""
    wanted = {settings.topic_name(t): t for t in (topics or all_topics())}
    admin = KafkaAdminClient(client_id="posvenda-admin", **settings.kafka_python_config())
    try:
        existing = sorted(set(admin.list_topics()) & set(wanted))
    finally:
        admin.close()
    lines = []
    for name, actual in describe(settings, existing).items():
        t = wanted[name]
        partitions = t.partitions or settings.partitions
        if actual["partitions"] != partitions:
            lines.append(f"{name}: {actual['partitions']} partitions, the catalogue declares {partitions}: keys would "
                         "land in other partitions than their co-partitioned topics; delete the topic and run "
                         "`posvenda topics create` again (its messages are lost: re-publish them), or use a new "
                         "POSVENDA_TOPIC_PREFIX")
        declared = topic_configs(t)
        for key in ("cleanup.policy", "retention.ms"):
            value = actual[key] if actual[key] is not None or key != "cleanup.policy" else "delete"
            if value != declared[key]:
                shown = "not set (the broker's default applies)" if value is None else value
                lines.append(f"{name}: {key} is {shown}, the catalogue declares {declared[key]}: kafka-configs.sh "
                             f"--bootstrap-server {settings.bootstrap_servers} --alter --entity-type topics "
                             f"--entity-name {name} --add-config {key}={declared[key]}")
    return lines


def copartitioning_errors(settings, groups: dict[str, tuple[Topic, ...]]) -> list[str]:
    """For each agent's source group (topics read together, keyed alike), the existing topics whose
    partition count differs from Settings.partitions (the agent's tables are partitioned that way)."""
    names = sorted({settings.topic_name(t) for ts in groups.values() for t in ts})
    admin = KafkaAdminClient(client_id="posvenda-admin", **settings.kafka_python_config())
    try:
        existing = set(admin.list_topics())
        counts = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([n for n in names if n in existing])}
    finally:
        admin.close()
    errors = []
    for group, ts in groups.items():
        found = {settings.topic_name(t): counts[settings.topic_name(t)] for t in ts if settings.topic_name(t) in counts}
        wanted = {settings.topic_name(t): t.partitions or settings.partitions for t in ts}
        wrong = {name: n for name, n in found.items() if n != wanted[name]}
        if wrong:
            errors.append(f"{group}: {', '.join(f'{name} has {n}' for name, n in sorted(wrong.items()))} partition(s), "
                          f"but the topics read together ({', '.join(sorted(wanted))}) and their tables need "
                          f"{settings.partitions} (POSVENDA_PARTITIONS)")
    return errors
