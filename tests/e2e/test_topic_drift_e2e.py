"""Topics only as the catalogue declares them, through the real broker: `posvenda topics create` reports
every drift of existing topics with what to do, producing commands refuse a namespace whose topics do
not exist (and create none by accident), and the worker refuses topics that break co-partitioning.

The shared test broker may still allow automatic topic creation, so nothing here relies on it either
way: topics are made explicitly, and "nothing created" is checked by listing them."""
from __future__ import annotations

import subprocess
import sys

from kafka.admin import KafkaAdminClient, NewTopic

from tests.conftest import REPO, settings_env
from topics import catalogue


def cli(settings, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "posvenda.cli", *args], env=settings_env(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def topics_with_prefix(settings) -> list[str]:
    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        return sorted(n for n in admin.list_topics() if n.startswith(settings.topic_prefix))
    finally:
        admin.close()


def create_by_hand(settings, topic, partitions: int, configs: dict | None = None) -> None:
    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        admin.create_topics([NewTopic(settings.topic_name(topic), partitions, 1, topic_configs=configs or {})])
    finally:
        admin.close()


def test_topics_create_reports_every_drift_and_the_worker_refuses_broken_copartitioning(settings_factory):
    # Given a namespace where two topics were made by hand, not as the catalogue declares them
    settings = settings_factory()  # 2 partitions
    create_by_hand(settings, catalogue.ORDERS, 1, {"cleanup.policy": "delete", "retention.ms": "-1"})
    create_by_hand(settings, catalogue.PROJECTION_ORDERS, 2, {"cleanup.policy": "delete"})

    # When `posvenda topics create` runs
    done = cli(settings, "topics", "create")

    # Then it creates the others, and reports each drift with what to do, failing
    assert done.returncode == 1, done.stdout + done.stderr
    drifts = [line for line in done.stderr.splitlines() if "drift:" in line]
    orders, projection = settings.topic_name(catalogue.ORDERS), settings.topic_name(catalogue.PROJECTION_ORDERS)
    assert any(f"{orders}: 1 partitions, the catalogue declares 2" in d and "delete the topic" in d for d in drifts), drifts
    assert any(f"{projection}: cleanup.policy is delete, the catalogue declares compact" in d
               and "--add-config cleanup.policy=compact" in d for d in drifts), drifts
    assert any(f"{projection}: retention.ms is not set" in d for d in drifts), drifts
    assert len(drifts) == 3, drifts
    assert len(topics_with_prefix(settings)) == len(catalogue.all_topics())

    # and the worker refuses to start on them, naming the group and the topic
    worker = cli(settings, "worker", timeout=90)
    assert worker.returncode == 2, worker.stderr[-2000:]
    assert "refusing to start, topics break co-partitioning" in worker.stderr
    assert f"orders agent: {orders} has 1 partition(s)" in worker.stderr


def test_producing_into_a_namespace_without_topics_stops_and_creates_nothing(settings_factory, tmp_path):
    # Given a namespace whose topics were never created, and a valid event file
    settings = settings_factory()
    path = tmp_path / "events.jsonl"
    path.write_text((REPO / "examples" / "events.sample.jsonl").read_text(encoding="utf-8"), encoding="utf-8")

    # When events are ingested, or the Olist sample replayed, into it
    for args in (("ingest", "-q", str(path)), ("olist", "replay", "--dir", str(REPO / "examples" / "olist"), "-q")):
        done = cli(settings, *args)

        # Then the command stops before publishing, naming the missing topics and what to run
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "posvenda topics create" in done.stderr and settings.topic_name(catalogue.ORDERS) in done.stderr, args
        assert "published" not in done.stdout, args
    # and no topic came into being by accident
    assert topics_with_prefix(settings) == []
