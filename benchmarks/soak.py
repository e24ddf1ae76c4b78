"""(j) A soak: the posvenda worker under a steady rate of simulated traffic for MINUTES, sampled every
10 s (RSS, peak RSS, consumer lag over every topic it consumes, state size on disk), written as CSV
and, when matplotlib is installed, plotted as a PNG beside it. What to look for: RSS flat after
warm-up, lag bounded. Offer about 70% of the worker's measured capacity (`--soak-rate`).
"""
from __future__ import annotations

import csv
import datetime as dt
import sys
import threading
import time
from pathlib import Path

from benchmarks import dataset, drain, runners
from benchmarks.kafka_io import lag
from benchmarks.procstat import directory_bytes, memory_kb
from posvenda.publish import Publisher
from posvenda.simulate import generate
from topics import catalogue, events

SAMPLE_S = 10
FIELDS = ("elapsed_s", "published", "rss_mb", "peak_rss_mb", "lag_messages", "state_mb")


def offer(settings, rate: float, stop: threading.Event, counter: list[int]) -> None:
    """Publishes simulated events at `rate` per second until `stop` is set."""
    stream = generate(11, 10**9, dataset.SIMULATION_START_MS)
    started = time.monotonic()
    with Publisher(settings) as publisher:
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate)
            while counter[0] < due:
                event = next(stream)
                topic = catalogue.for_event_family(events.event_type(event.type).family)
                publisher.publish_raw(topic, catalogue.key_of(topic, event), events.encode(event))
                counter[0] += 1
            time.sleep(0.05)


def sample(st, process, group: str, started: float, published: int) -> dict:
    topics = drain.consumed_topics(st.broker, st.token, st.sources)
    behind = lag(st.broker.committed(group), st.broker.end_offsets(topics))
    return {"elapsed_s": round(time.monotonic() - started), "published": published,
            "rss_mb": round((memory_kb(process.pid, "VmRSS") or 0) / 1024, 1),
            "peak_rss_mb": round((memory_kb(process.pid) or 0) / 1024, 1), "lag_messages": behind,
            "state_mb": round(directory_bytes(st.settings.data_dir) / 2**20, 1)}


def plot(rows: list[dict], png: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: CSV only, no PNG"
    t = [r["elapsed_s"] / 60 for r in rows]
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(8, 8))
    for ax, field, label in zip(axes, ("rss_mb", "lag_messages", "state_mb"), ("RSS (MB)", "lag (messages)",
                                                                             "state (MB)"), strict=True):
        ax.plot(t, [r[field] for r in rows])
        ax.set_ylabel(label)
    axes[-1].set_xlabel("minutes")
    fig.savefig(png)
    return f"plot: {png}"


def main(base, minutes: float, rate: float, results: Path) -> int:
    st = runners.stage("soak", base, dataset.Dataset("simulated", ()))
    results.mkdir(parents=True, exist_ok=True)
    stem = results / f"soak-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M}"
    group, rows = st.settings.app_id, []
    stop, counter = threading.Event(), [0]
    runners.create_topics(st.settings, None)
    process = runners.spawn(runners.posvenda_argv(), runners.posvenda_env(st, runners_port()), st.log("soak"))
    publisher = threading.Thread(target=offer, args=(st.settings, rate, stop, counter), daemon=True)
    started = time.monotonic()
    try:
        publisher.start()
        while time.monotonic() - started < minutes * 60:
            time.sleep(SAMPLE_S)
            if process.poll() is not None:
                raise drain.RunnerFailed(f"worker exited with {process.returncode}; see {st.log('soak')}")
            rows.append(sample(st, process, group, started, counter[0]))
            print(rows[-1], file=sys.stderr, flush=True)
    finally:
        stop.set()
        publisher.join(30)
        runners.stop(process)
        runners.cleanup(st, [group], keep_logs=True)
    with open(stem.with_suffix(".csv"), "w", newline="") as out:
        writer = csv.DictWriter(out, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"soak: {len(rows)} samples, {counter[0]:,} events offered at {rate:.0f}/s -> {stem.with_suffix('.csv')}; "
          + plot(rows, stem.with_suffix(".png")))
    return 0


def runners_port() -> int:
    from benchmarks.run import free_port

    return free_port()
