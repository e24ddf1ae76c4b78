"""Worker throughput on the real broker, as ratios against a baseline measured in the same run.

Baseline: a plain kafka-python consumer reading and Avro-decoding the same events (the ceiling a
worker cannot beat). Measured: a `posvenda worker` folding them into every projection, from start
until its processed-events counter reaches the number published. Prints events/s and the ratio.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from kafka import KafkaConsumer

from posvenda.publish import Publisher
from posvenda.simulate import generate
from streams.settings import REPO, Settings
from topics import catalogue, events
from topics.admin import create_topics

START_MS = 1_741_611_600_000


def consume_decode(s: Settings, expected: int) -> float:
    consumer = KafkaConsumer(*(s.topic_name(t) for t in catalogue.SOURCE_TOPICS), group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000,
                             **s.kafka_python_config())
    started, n = time.perf_counter(), 0
    for message in consumer:
        events.decode(message.value)
        n += 1
        if n >= expected:
            break
    consumer.close()
    return n / (time.perf_counter() - started)


def processed(url: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    sources = tuple(f'topic="{t.name}"' for t in catalogue.SOURCE_TOPICS)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("posvenda_events_processed_total{") and any(s in line for s in sources))


def worker_rate(s: Settings, expected: int, port: int) -> tuple[float, float]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers, "POSVENDA_TOPIC_PREFIX": s.topic_prefix,
           "POSVENDA_APP_ID": s.app_id, "POSVENDA_DATA_DIR": str(s.data_dir), "POSVENDA_WEB_PORT": str(port),
           "POSVENDA_PARTITIONS": str(s.partitions), "PATH": "/usr/bin:/bin", "POSVENDA_RECOVERY_TICK_SECONDS": "0"}
    log = open(s.data_dir.parent / "bench-worker.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "posvenda.cli", "worker"], env=env, cwd=REPO, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        first_at = None
        while True:
            try:
                n = processed(f"http://127.0.0.1:{port}")
            except OSError:
                n = 0
            if n and first_at is None:
                first_at, first_n = time.perf_counter(), n
            if n >= expected:
                return (n - first_n) / (time.perf_counter() - first_at), n
            if process.poll() is not None:
                raise SystemExit("worker died; see bench-worker.log")
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3000, help="simulated sessions (default 3000)")
    parser.add_argument("--olist", type=Path, default=None,
                        help="measure on the Olist dataset in this folder instead (real orders: posvenda olist)")
    parser.add_argument("--port", type=int, default=6199)
    args = parser.parse_args()
    base = Settings.from_env()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    s = replace(base, topic_prefix=prefix, app_id=prefix + "posvenda", data_dir=Path(tempfile.mkdtemp()) / "worker")
    create_topics(s)
    if args.olist:
        from posvenda import olist

        sample, _rejected = olist.replay(olist.load(args.olist))
    else:
        sample = list(generate(5, args.sessions, START_MS))
    started = time.perf_counter()
    with Publisher(s) as publisher:
        for event in sample:
            publisher.publish(event)
    produce = len(sample) / (time.perf_counter() - started)
    baseline = consume_decode(s, len(sample))
    rate, n = worker_rate(s, len(sample), args.port)
    print(f"events: {len(sample)}")
    print(f"produce (kafka-python, Avro encode):   {produce:10.0f} events/s")
    print(f"baseline consume + Avro decode:        {baseline:10.0f} events/s  (1.00)")
    print(f"posvenda worker, every projection:     {rate:10.0f} events/s  ({rate / baseline:.3f} of baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
