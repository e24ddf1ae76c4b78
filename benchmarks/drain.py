"""Times a runner process from the consumer group's committed offsets until every topic it consumes
(sources and its own re-key topics) is committed up to its end: end to end, internal hops included.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import accounting
from benchmarks.kafka_io import Broker
from benchmarks.procstat import cpu_seconds, memory_kb

POLL_S = 0.25


class RunnerFailed(RuntimeError):
    pass


def check_log(log: Path) -> None:
    """A runner whose log shows a crash has not done the work, however fast it drained."""
    text = log.read_text(errors="replace") if log.exists() else ""
    for marker in ("Traceback (most recent call last)", "Crashed reason="):
        if marker in text:
            line = next(x for x in text.splitlines() if marker in x or "Error" in x)
            raise RunnerFailed(f"runner log shows a crash ({line.strip()[:200]}); see {log}")


@dataclass
class Timing:
    seconds: float
    timed_events: int
    cpu_seconds: float
    peak_rss_kb: int | None
    note: str = ""


def drained(committed: dict, ends: dict) -> bool:
    """Every partition that holds messages is committed up to its end offset."""
    return all(committed.get(tp, 0) >= end for tp, end in ends.items() if end > 0)


def consumed_topics(broker: Broker, token: str, sources: list[str]) -> list[str]:
    """The sources the runner reads plus every re-key topic of the run (the runner reads those back)."""
    rekey = [t for t in broker.topics_of(token) if accounting.category(t, sources) == "rekey"]
    return list(sources) + rekey


def watch(process: subprocess.Popen, broker: Broker, token: str, group: str, sources: list[str], expected: int,
          timeout: float, log_path) -> Timing:
    """Polls committed vs end offsets until drained.

    `sources`: the source topics this runner consumes (physical names), holding `expected` events.
    The clock starts when the group is first Stable (members joined, partitions assigned): process
    start-up and the first rebalance are left out, the engine's own post-assignment work is not.
    """
    started = time.monotonic()
    t0, cpu0 = None, None
    candidate = None  # (time, ends, cpu) of the first drained poll; confirmed when the next poll agrees
    topics, topics_at = consumed_topics(broker, token, sources), time.monotonic()
    while True:
        now = time.monotonic()
        if process.poll() is not None:
            raise RunnerFailed(f"runner exited with {process.returncode}; see {log_path}")
        if now - started > timeout:
            raise RunnerFailed(f"not drained after {timeout:.0f} s; see {log_path}")
        if now - topics_at > 2:
            topics, topics_at = consumed_topics(broker, token, sources), now
            check_log(log_path)
        if t0 is None and broker.group_state(group) == "Stable":
            t0, cpu0 = now, cpu_seconds(process.pid)
        committed, ends = broker.committed(group), broker.end_offsets(topics)
        done = sum(offset for tp, offset in committed.items() if tp.topic in sources)
        if done >= expected and drained(committed, ends):
            if candidate and candidate[1] == ends:
                return _timing(process, started, candidate[0], t0, cpu0, candidate[2], expected)
            candidate = (now, ends, cpu_seconds(process.pid))
        else:
            candidate = None
        time.sleep(POLL_S)


def _timing(process, started, t1, t0, cpu0, cpu1, expected) -> Timing:
    rss = memory_kb(process.pid)
    if t0 is None:  # never saw the group Stable between polls: time from process start
        return Timing(t1 - started, expected, cpu1, rss, "group never seen Stable: timed from process start")
    return Timing(t1 - t0, expected, cpu1 - cpu0, rss)
