"""Faults on the worker side, through the real broker: kill -9, rebalances, duplicates, lost state.

Each case ends with `assert_every_projection_converges`: the funnel, visits, orders, customers,
visitors vs buyers, return rates, late deliveries, active alerts and recovery figures over HTTP, the
recovery action ids and alert transitions on their topics (each id once) and the handling-time report
must equal the ground truth computed independently from the events (tests/groundtruth.py)."""
from __future__ import annotations

import shutil
import time
from dataclasses import replace

from posvenda.ingest import ingest
from posvenda.publish import Publisher
from tests.conftest import wait_until
from tests.faults.conftest import assert_every_projection_converges, views
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
    publish_file(settings, simulated.path)
    worker = worker_factory(settings)
    total = len(simulated.lines)
    wait_until(lambda: processed(worker) > total * 0.2, 120, what="a fifth of the events to be processed")
    assert processed(worker) < total, "the kill should land mid-stream"
    worker.kill()  # SIGKILL: no commit, no flush
    restarted = worker_factory(settings, name="restarted")
    assert_every_projection_converges(restarted, settings, simulated)


def test_a_second_worker_joins_and_leaves_with_the_same_results(settings, worker_factory, simulated):
    first = worker_factory(settings, name="first")
    publish_file(settings, simulated.path)
    wait_until(lambda: processed(first) > len(simulated.lines) * 0.1, 120, what="the first worker to be busy")
    second = worker_factory(replace(settings, data_dir=settings.data_dir.parent / "worker-2"), name="second")
    # each keyed view answers for its worker's partitions; the merged views ask the peer
    assert_every_projection_converges([first, second], settings, simulated)
    second.stop()
    assert_every_projection_converges(first, settings, simulated)


def test_the_same_events_ingested_twice_change_nothing(settings, worker_factory, simulated):
    publish_file(settings, simulated.path)
    publish_file(settings, simulated.path)
    worker = worker_factory(settings)
    wait_until(lambda: processed(worker) == 2 * len(simulated.lines), 180, what="both copies of every event to be read")
    assert_every_projection_converges(worker, settings, simulated)


def test_deleted_local_state_is_rebuilt_from_the_changelogs(settings, worker_factory, simulated, record_property):
    publish_file(settings, simulated.path)
    worker = worker_factory(settings)
    assert_every_projection_converges(worker, settings, simulated)
    before = views([worker])
    worker.stop()
    shutil.rmtree(settings.data_dir)
    started = time.monotonic()
    rebuilt = worker_factory(settings, name="rebuilt")
    wait_until(lambda: views([rebuilt]) == before, 120, what="the restored tables to equal the old ones")
    seconds = time.monotonic() - started
    assert_every_projection_converges(rebuilt, settings, simulated)
    record_property("state_recovery_seconds", round(seconds, 1))
    print(f"\nstate recovery from changelogs: worker ready with identical tables in {seconds:.1f} s")
