"""The backbone end to end on the real broker: simulate -> file -> ingest -> worker -> HTTP funnel,
compared with the funnel computed independently from the same file; and ingest's rejections."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

from kafka import KafkaConsumer

from tests.conftest import REPO, settings_env, wait_until
from tests.groundtruth import funnel, funnel_from_view
from topics import catalogue, events

START_MS = 1_741_611_600_000  # 2025-03-10T13:00Z: in the past, so nothing is "in the future"


def run_cli(s, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "posvenda.cli", *args], env=settings_env(s), cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"posvenda {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def consume_all(s, topic, expected: int, timeout: float = 60) -> list:
    consumer = KafkaConsumer(s.topic_name(topic), group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1000, **s.kafka_python_config())
    seen = []
    try:
        wait_until(lambda: seen.extend(consumer) or len(seen) >= expected, timeout, what=f"{expected} messages on {topic.name}")
    finally:
        consumer.close()
    return seen


def test_simulated_traffic_ingested_gives_the_independently_computed_funnel(settings, worker_factory, tmp_path):
    # Given a simulated file
    path = tmp_path / "events.jsonl"
    run_cli(settings, "simulate", "--seed", "7", "--sessions", "400", "--start-ms", str(START_MS),
            "--out", str(path), "--no-produce", "-q")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    expected = funnel(lines)
    assert expected[("all", "2025-03-10", "all", "order_placed")] > 0, "the simulation should produce orders"
    # When it is ingested and a worker folds it
    result = run_cli(settings, "ingest", str(path), "-q")
    assert f"{len(lines)} published, 0 rejected" in result.stdout
    worker = worker_factory(settings)
    # Then every dimension of the funnel over HTTP equals the independent computation
    for dimension in ("all", "device", "channel", "product"):
        want = {k: v for k, v in expected.items() if k[0] == dimension}
        wait_until(lambda d=dimension, w=want: funnel_from_view(d, worker.get(f"/funnel?dimension={d}")) == w,
                   timeout=180, what=f"funnel by {dimension} to match the ground truth")
    body = worker.get("/funnel")
    row = body["days"]["2025-03-10"]["all"]
    assert row["conversion"]["cart"] == round(row["steps"]["cart"] / row["steps"]["product_page"], 4)


def test_ingest_rejects_bad_lines_and_publishes_the_rest(settings, tmp_path):
    good = [{"event_id": str(uuid.uuid4()), "type": "nps_answered", "occurred_at": START_MS + i, "source": "crm",
             "customer_id": f"c-{i}", "payload": {"score": i % 11}} for i in range(5)]
    bad = ['{"broken json', json.dumps({**good[0], "event_id": str(uuid.uuid4()), "payload": {"score": "ten"}}),
           json.dumps({**good[0], "event_id": str(uuid.uuid4()), "type": "order_teleported"})]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([json.dumps(good[0]), bad[0], json.dumps(good[1]), bad[1], *map(json.dumps, good[2:]), bad[2]]) + "\n")
    result = run_cli(settings, "ingest", str(path), "-q", check=False)
    assert result.returncode == 1
    assert "5 published, 3 rejected" in result.stdout
    assert "line 2: field (line): malformed JSON" in result.stderr
    assert "line 4: field payload.score: 'ten' of type str, expected int" in result.stderr
    assert "line 8: field type: unknown event type 'order_teleported'" in result.stderr
    received = consume_all(settings, catalogue.FEEDBACK, 5)
    decoded = sorted((events.decode(m.value) for m in received), key=lambda e: e.occurred_at)
    assert [e.event_id for e in decoded] == [g["event_id"] for g in good]
    assert [e.occurred_at for e in decoded] == [g["occurred_at"] for g in good]
    assert {m.key.decode() for m in received} == {g["customer_id"] for g in good}


def test_malformed_messages_go_to_the_dead_letter_topic_and_processing_goes_on(settings, worker_factory):
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka_python_config())
    topic = settings.topic_name(catalogue.VISITS)
    producer.send(topic, key=b"s-bad", value=b"\x00random bytes")
    ok = events.Event(str(uuid.uuid4()), "page_viewed", START_MS, "web", "s-ok", None, None,
                      {"page_type": "product", "path": "/p/9", "product_id": "p-9"})
    producer.send(topic, key=b"s-ok", value=events.encode(ok))
    producer.flush()
    worker = worker_factory(settings)
    dead = consume_all(settings, catalogue.VISITS.dead_letters, 1)
    headers = dict(dead[0].headers)
    assert dead[0].value == b"\x00random bytes" and headers["dlq.reason"] == b"bad_magic"
    assert headers["dlq.source.topic"].decode() == topic
    wait_until(lambda: worker.get("/funnel")["days"].get("2025-03-10", {}).get("all", {}).get("steps", {}).get("product_page") == 1,
               what="the valid event after the bad one to be counted")
