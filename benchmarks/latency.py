"""(f) Event-to-projection latency of the posvenda worker under a steady offered rate.

Simulated traffic is published at RATE events/s for SECONDS; afterwards the source topics and the
projection topics are read back. An event's latency is the Kafka timestamp of the first projection
record of the same key (order -> `projections.orders`, session -> `projections.visits`) written at or
after the event, minus the event's own timestamp (both set by producers on this machine). The first
WARMUP seconds are left out; events that never got a projection record are counted, not guessed.
"""
from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict

from kafka import KafkaConsumer

from benchmarks import dataset, drain, runners, soak
from topics import catalogue

PAIRS = ((catalogue.ORDERS, catalogue.PROJECTION_ORDERS), (catalogue.VISITS, catalogue.PROJECTION_VISITS))
WARMUP_S = 10


def match(sources: list[tuple[bytes, int]], outputs: list[tuple[bytes, int]]) -> tuple[list[int], int]:
    """(latencies in ms, unmatched count): each source (key, ts) against the first output of its key at or after ts."""
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for key, ts in outputs:
        by_key[key].append(ts)
    for stamps in by_key.values():
        stamps.sort()
    latencies, unmatched = [], 0
    for key, ts in sources:
        stamps = by_key.get(key, [])
        i = bisect.bisect_left(stamps, ts)
        if i < len(stamps):
            latencies.append(stamps[i] - ts)
        else:
            unmatched += 1
    return latencies, unmatched


def percentile(values: list[int], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(q/100 * n), at least 1
    return ordered[int(rank) - 1]


def read_all(settings, topic: str) -> list[tuple[bytes, int]]:
    consumer = KafkaConsumer(topic, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=5000, **settings.kafka_python_config())
    try:
        return [(m.key, m.timestamp) for m in consumer]
    finally:
        consumer.close()


def main(base, rate: float, seconds: float) -> dict:
    st = runners.stage("latency", base, dataset.Dataset("simulated", ()))
    group = st.settings.app_id
    runners.create_topics(st.settings, None)
    process = runners.spawn(runners.posvenda_argv(), runners.posvenda_env(st, soak.runners_port()), st.log("latency"))
    stop, counter = threading.Event(), [0]
    try:
        deadline = time.monotonic() + 180
        while st.broker.group_state(group) != "Stable":
            if process.poll() is not None or time.monotonic() > deadline:
                raise drain.RunnerFailed(f"worker did not join its group; see {st.log('latency')}")
            time.sleep(drain.POLL_S)
        started_ms = int(time.time() * 1000)
        publisher = threading.Thread(target=soak.offer, args=(st.settings, rate, stop, counter), daemon=True)
        publisher.start()
        time.sleep(seconds)
        stop.set()
        publisher.join(30)
        drain.watch(process, st.broker, st.token, group, st.sources, counter[0], 600, st.log("latency"))
        latencies, unmatched = [], 0
        for source, projection in PAIRS:
            sources = [(k, ts) for k, ts in read_all(st.settings, st.settings.topic_name(source))
                       if ts >= started_ms + WARMUP_S * 1000]
            found, missing = match(sources, read_all(st.settings, st.settings.topic_name(projection)))
            latencies += found
            unmatched += missing
    finally:
        stop.set()
        runners.stop(process)
        runners.cleanup(st, [group])
    result = {"offered_rate": rate, "seconds": seconds, "published": counter[0], "measured_events": len(latencies),
              "unmatched": unmatched, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}
    print(f"latency at {rate:.0f} events/s offered for {seconds:.0f} s: p50 {result['p50_ms']} ms, p99 "
          f"{result['p99_ms']} ms over {len(latencies):,} order and visit events ({unmatched} without a projection)")
    return result
