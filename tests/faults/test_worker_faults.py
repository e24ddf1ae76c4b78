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


def publish_file(settings, path) -> None:
    with Publisher(settings) as publisher:
        assert ingest(path, publisher) == []


def processed(worker) -> float:
    text = worker.get_text("/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("posvenda_events_processed_total{"))


def test_kill_9_mid_stream_then_restart_loses_nothing_and_counts_nothing_twice(settings, worker_factory, simulated):
    path, lines = simulated
    publish_file(settings, path)
    worker = worker_factory(settings)
    wait_until(lambda: processed(worker) > len(lines) * 0.2, 120, what="a fifth of the events to be processed")
    assert processed(worker) < len(lines), "the kill should land mid-stream"
    worker.kill()  # SIGKILL: no commit, no flush, open transaction left behind
    restarted = worker_factory(settings, name="restarted")
    assert_converges(restarted, lines)


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
