"""(g) Restore time: the posvenda worker starting with no local state while one table's changelog
holds KEYS keys (the order history's), against the same start with an empty changelog.

Faust restores every table from its changelog before any agent runs, so the time from process
start until the first source event is committed measures start-up plus restore; the difference
between the two starts is the restore. Keys and values are synthetic (JSON, like the table's own),
spread evenly over the changelog's partitions.
"""
from __future__ import annotations

import json
import time

from kafka import KafkaProducer

from benchmarks import dataset, drain, runners
from topics import catalogue
from topics.admin import create_topics

TABLE = "order-history"


def fill_changelog(settings, topic: str, keys: int) -> None:
    producer = KafkaProducer(acks=1, linger_ms=50, batch_size=512 * 1024, **settings.kafka_python_config())
    value = json.dumps({"status": "delivered", "timeline": [], "flags": []}).encode()
    for i in range(keys):
        producer.send(topic, key=json.dumps(f"restore-{i:07d}").encode(), value=value, partition=i % settings.partitions)
    producer.flush()
    producer.close()


def time_to_first_commit(keys: int, base) -> float:
    """Seconds from worker start until a source event published after start is committed."""
    sentinel = dataset.simulated(1)
    first = sentinel.messages[:1]
    st = runners.stage(f"restore{keys}", base, dataset.Dataset("sentinel", first))
    group = st.settings.app_id
    try:
        create_topics(st.settings, None)
        changelog = catalogue.Topic(f"{st.settings.app_id.removeprefix(st.settings.topic_prefix)}-{TABLE}-changelog",
                                    "order_id", ("json",), "compact")
        create_topics(st.settings, (changelog,))
        if keys:
            fill_changelog(st.settings, st.settings.topic_name(changelog), keys)
        process = runners.spawn(runners.posvenda_argv(), runners.posvenda_env(st, _port()), st.log("restore"))
        started = time.monotonic()
        try:
            st.dataset.publish(st.settings)
            topic = st.settings.topic_name(first[0][0])
            while not any(tp.topic == topic and offset > 0 for tp, offset in st.broker.committed(group).items()):
                if process.poll() is not None:
                    raise drain.RunnerFailed(f"worker exited; see {st.log('restore')}")
                if time.monotonic() - started > 900:
                    raise drain.RunnerFailed(f"no commit after 900 s; see {st.log('restore')}")
                time.sleep(drain.POLL_S)
            return time.monotonic() - started
        finally:
            runners.stop(process)
    finally:
        runners.cleanup(st, [group])


def main(base, keys: int) -> dict:
    baseline = time_to_first_commit(0, base)
    loaded = time_to_first_commit(keys, base)
    result = {"keys": keys, "start_empty_s": round(baseline, 1), "start_with_keys_s": round(loaded, 1),
              "restore_s": round(loaded - baseline, 1)}
    print(f"restore of {keys:,} keys ({TABLE} changelog, local state empty): {loaded:.1f} s to the first commit, "
          f"{baseline:.1f} s with an empty changelog -> restore ≈ {loaded - baseline:.1f} s")
    return result


def _port() -> int:
    from benchmarks.run import free_port

    return free_port()


