"""Faults on the worker side, through the real broker: kill -9, rebalances, duplicates, lost state.
Each case compares the projections with the ground truth computed from the events (groundtruth.py)."""
from __future__ import annotations

import shutil
import time
from dataclasses import replace

from posvenda.ingest import ingest
from posvenda.publish import Publisher
from tests.conftest import wait_until
from tests.faults.conftest import assert_converges, funnel_view
from topics import catalogue


def publish_file(settings, path) -> None:
    with Publisher(settings) as publisher:
        assert ingest(path, publisher).rejected == []


SOURCE_LABELS = tuple(f'topic="{t.name}"' for t in catalogue.SOURCE_TOPICS)


def processed(worker) -> float:
    """Events of the source topics read so far (internal re-keyed topics are counted apart)."""
    text = worker.get_text("/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("posvenda_events_processed_total{") and any(lbl in line for lbl in SOURCE_LABELS))


def test_kill_9_mid_stream_then_restart_loses_nothing_and_counts_nothing_twice(settings, worker_factory, simulated):
    path, lines = simulated
    publish_file(settings, path)
    worker = worker_factory(settings)
    wait_until(lambda: processed(worker) > len(lines) * 0.2, 120, what="a fifth of the events to be processed")
    assert processed(worker) < len(lines), "the kill should land mid-stream"
    worker.kill()  # SIGKILL: no commit, no flush
    restarted = worker_factory(settings, name="restarted")
    assert_converges(restarted, lines)
    wait_until(lambda: processed(restarted) >= len(lines) * 0.5, 120, what="the restarted worker to catch up")

    # Triggers: each recovery action and each alert transition appears once, and the same ones as a
    # replay of the same log by a worker that never crashed (a fresh namespace).
    replay = replace(settings, topic_prefix=settings.topic_prefix + "replay.", app_id=settings.app_id + "-replay",
                     data_dir=settings.data_dir.parent / "replay")
    from topics.admin import create_topics

    create_topics(replay)
    publish_file(replay, path)
    clean = worker_factory(replay, name="clean")
    assert_converges(clean, lines)
    expected_actions = wait_until(lambda: stable_ids(replay, catalogue.RECOVERY_ACTIONS, "action_id"), 120,
                                  what="the clean run's recovery actions to settle")
    actions = wait_until(lambda: stable_ids(settings, catalogue.RECOVERY_ACTIONS, "action_id"), 120,
                         what="the crashed run's recovery actions to settle")
    assert expected_actions, "the simulation should produce recovery actions"
    assert sorted(actions) == sorted(expected_actions)  # sorted lists: a duplicate would show
    alerts = read_ids(settings, catalogue.ALERTS, "alert_id", "state")
    assert len(alerts) == len(set(alerts))
    assert sorted(alerts) == sorted(read_ids(replay, catalogue.ALERTS, "alert_id", "state"))


def read_ids(settings, topic, *fields) -> list:
    """Every message's id fields on an Avro trigger topic, read committed from the beginning."""
    from kafka import KafkaConsumer

    from topics import codec

    consumer = KafkaConsumer(settings.topic_name(topic), group_id=None, auto_offset_reset="earliest",
                             isolation_level="read_committed", consumer_timeout_ms=1500, **settings.kafka_python_config())
    try:
        return [tuple(codec.decode(m.value)[1][f] for f in fields) for m in consumer]
    finally:
        consumer.close()


_last_seen: dict = {}


def stable_ids(settings, topic, field):
    """The ids on `topic` once two reads in a row agree (the worker has stopped emitting)."""
    ids = read_ids(settings, topic, field)
    previous = _last_seen.get(settings.topic_prefix)
    _last_seen[settings.topic_prefix] = ids
    return ids if ids and ids == previous else None


def test_a_second_worker_joins_and_leaves_with_the_same_results(settings, worker_factory, simulated):
    path, lines = simulated
    first = worker_factory(settings, name="first")
    publish_file(settings, path)
    wait_until(lambda: processed(first) > len(lines) * 0.1, 120, what="the first worker to be busy")
    second = worker_factory(replace(settings, data_dir=settings.data_dir.parent / "worker-2"), name="second")
    assert_converges(first, lines)  # the view asks its peer for the partitions it does not hold
    assert_converges(second, lines)
    second.stop()
    assert_converges(first, lines)


def test_the_same_events_ingested_twice_change_nothing(settings, worker_factory, simulated):
    path, lines = simulated
    publish_file(settings, path)
    publish_file(settings, path)
    worker = worker_factory(settings)
    assert_converges(worker, lines)
    wait_until(lambda: processed(worker) == 2 * len(lines), 120, what="both copies of every event to be read")
    assert_converges(worker, lines)


def test_deleted_local_state_is_rebuilt_from_the_changelogs(settings, worker_factory, simulated, record_property):
    path, lines = simulated
    publish_file(settings, path)
    worker = worker_factory(settings)
    assert_converges(worker, lines)
    before = funnel_view(worker)
    worker.stop()
    shutil.rmtree(settings.data_dir)
    started = time.monotonic()
    rebuilt = worker_factory(settings, name="rebuilt")
    wait_until(lambda: funnel_view(rebuilt) == before, 120, what="the restored tables to equal the old ones")
    seconds = time.monotonic() - started
    record_property("state_recovery_seconds", round(seconds, 1))
    print(f"\nstate recovery from changelogs: worker ready with identical tables in {seconds:.1f} s")
