"""Operator tools on the real broker: Kafka's own command-line tools through `infra/kafka.sh tool`,
`posvenda tail` and `posvenda dlq replay`. Expected values come from what each test wrote."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from posvenda.publish import Publisher
from tests.conftest import REPO, settings_env, wait_until
from topics import catalogue, events

KAFKA_SH = REPO / "infra" / "kafka.sh"
SAMPLE = REPO / "examples" / "events.sample.jsonl"


def run(s, *argv, env_extra=None, timeout=120) -> subprocess.CompletedProcess:
    env = {**settings_env(s), **(env_extra or {})}
    result = subprocess.run(list(argv), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def kafka_tool(s, name, *args) -> str:
    return run(s, str(KAFKA_SH), "tool", name, *args).stdout


def posvenda(s, *args) -> str:
    return run(s, sys.executable, "-m", "posvenda.cli", *args).stdout


def tail_lines(s, *args) -> list[dict]:
    return [json.loads(line) for line in posvenda(s, "tail", *args).splitlines()]


def producer_for(s) -> KafkaProducer:
    return KafkaProducer(acks="all", **s.kafka_python_config())


def sample_events() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


# --- Kafka's tools -------------------------------------------------------------------------------

def test_kafka_topics_lists_the_catalogue_topics_of_the_test(settings):
    # Given the catalogue's topics created under this test's prefix
    expected = {settings.topic_name(t) for t in catalogue.all_topics()}
    # When an operator lists the cluster's topics with Kafka's own tool
    listed = kafka_tool(settings, "kafka-topics", "--list").split()
    # Then exactly the test's topics carry its prefix
    assert {name for name in listed if name.startswith(settings.topic_prefix)} == expected


def test_consumer_group_lag_and_the_console_consumer(settings):
    # Given 5 messages on partition 0 and 3 on partition 1 of a projection topic
    topic = settings.topic_name(catalogue.PROJECTION_ORDERS)
    sent = {0: [f'{{"order_id": "o-{i}", "n": {i}}}' for i in range(5)],
            1: [f'{{"order_id": "o-{i}", "n": {i}}}' for i in range(5, 8)]}
    producer = producer_for(settings)
    for partition, values in sent.items():
        for value in values:
            producer.send(topic, key=json.loads(value)["order_id"].encode(), value=value.encode(), partition=partition)
    producer.flush()
    producer.close()
    # and a consumer group that committed offset 2 on partition 0 and 3 (all) on partition 1
    group = f"{settings.app_id}-downstream"
    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, **settings.kafka_python_config())
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1),
                     TopicPartition(topic, 1): OffsetAndMetadata(3, "", -1)})
    consumer.close()
    # When the operator describes the group with kafka-consumer-groups
    out = kafka_tool(settings, "kafka-consumer-groups", "--describe", "--group", group)
    # Then each partition shows its committed offset, log end and lag
    rows = [line.split() for line in out.splitlines() if line.split()[:2] == [group, topic]]
    header = next(line.split() for line in out.splitlines() if line.split()[:1] == ["GROUP"])
    columns = [{name: row[header.index(name)] for name in ("PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")}
               for row in rows]
    assert sorted(columns, key=lambda c: c["PARTITION"]) == [
        {"PARTITION": "0", "CURRENT-OFFSET": "2", "LOG-END-OFFSET": "5", "LAG": "3"},
        {"PARTITION": "1", "CURRENT-OFFSET": "3", "LOG-END-OFFSET": "3", "LAG": "0"}]
    # When it prints 6 messages from the beginning with kafka-console-consumer
    printed = kafka_tool(settings, "kafka-console-consumer", "--topic", topic, "--from-beginning",
                         "--max-messages", "6", "--timeout-ms", "60000").splitlines()
    # Then it prints 6 distinct messages that were sent, each partition's in the order sent
    all_sent = sent[0] + sent[1]
    assert len(printed) == 6 and len(set(printed)) == 6 and set(printed) <= set(all_sent)
    for values in sent.values():
        mine = [line for line in printed if line in values]
        assert mine == values[:len(mine)]


def test_tool_credentials_go_in_a_private_file_never_on_the_command_line(tmp_path):
    # Given a `java` that records how it was called (no JVM, no broker: this is about the script),
    # a complete jar cache, and SASL_SSL settings whose password needs escaping
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    bin_dir.mkdir()
    out.mkdir()
    (bin_dir / "java").write_text(
        '#!/bin/sh\n'
        '[ "$1" = -version ] && { echo \'openjdk version "17.0.9"\' >&2; exit 0; }\n'
        'printf "%s\\n" "$@" > "$OUT/argv"\n'
        'prev=""; for a in "$@"; do\n'
        '  if [ "$prev" = --command-config ]; then cp "$a" "$OUT/props"; stat -c %a "$a" > "$OUT/mode";\n'
        '    stat -c %a "$(dirname "$a")" > "$OUT/dirmode"; echo "$a" > "$OUT/path"; fi; prev=$a; done\n')
    (bin_dir / "java").chmod(0o755)
    libs = tmp_path / "cache" / "kafka-3.9.1" / "libs"
    libs.mkdir(parents=True)
    (libs / ".complete").write_text(hashlib.sha256((REPO / "infra/kafka/pom.xml").read_bytes()).hexdigest() + "\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked by the script\n")
    password = 's3cr"t\\é'
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out), "POSVENDA_CACHE_DIR": str(tmp_path / "cache"),
           "HOME": os.environ.get("HOME", "/root"), "KAFKA_BOOTSTRAP_SERVERS": "broker.example:9096",
           "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "KAFKA_SASL_USERNAME": "ops", "KAFKA_SASL_PASSWORD": password, "KAFKA_SSL_CAFILE": str(ca)}
    # When kafka-topics is run through infra/kafka.sh
    result = subprocess.run([str(KAFKA_SH), "tool", "kafka-topics", "--list"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Then the command line holds the tool, the cluster and the file, but not the password
    argv = (out / "argv").read_text().splitlines()
    assert "org.apache.kafka.tools.TopicCommand" in argv
    assert argv[argv.index("--bootstrap-server") + 1] == "broker.example:9096"
    assert password not in "\n".join(argv) and "s3cr" not in "\n".join(argv)
    # and the file was readable by its owner only, in a private directory removed afterwards
    assert (out / "mode").read_text().strip() == "600"
    assert (out / "dirmode").read_text().strip() == "700"
    assert not Path((out / "path").read_text().strip()).exists()
    # and it holds the settings, the password escaped for JAAS (\" and \\) and for a properties file
    # (backslashes doubled, non-ASCII as \uXXXX)
    assert (out / "props").read_text().splitlines() == [
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
        'username="ops" password="s3cr\\\\"t\\\\\\\\\\u00e9";',
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={ca}"]


# --- posvenda tail ---------------------------------------------------------------------------------

def test_tail_prints_the_published_events_and_keeps_personal_fields_sealed(settings):
    # Given the sample events published to their topics (personal fields sealed on the way)
    sample = sample_events()
    with Publisher(settings) as publisher:
        for obj in sample:
            publisher.publish(events.from_json(obj))
        publisher.flush()
    orders_family = "posvenda.orders.OrderEvent"
    order_events = [o for o in sample if events.event_type(o["type"]).family == orders_family]
    # When the operator tails orders.events from the beginning
    lines = tail_lines(settings, "orders.events", "--from-beginning")
    # Then it prints every order event published, decoded, with its coordinates and key
    assert sorted(line["value"]["event_id"] for line in lines) == sorted(o["event_id"] for o in order_events)
    assert all(line["key"] == line["value"]["order_id"] and line["schema"] == orders_family for line in lines)
    assert all(isinstance(line["partition"], int) and isinstance(line["offset"], int) and line["timestamp"]
               for line in lines)
    # When it asks for one order's events by key
    order_id = order_events[0]["order_id"]
    by_key = tail_lines(settings, "orders.events", "--key", order_id, "-n", "100")
    # Then it gets exactly that order's events, in the order published
    assert [line["value"]["event_id"] for line in by_key] == [o["event_id"] for o in order_events
                                                             if o["order_id"] == order_id]
    # When it tails the customers' events, the registration's personal fields are printed sealed
    registered = next(o for o in sample if o["type"] == "customer_registered")
    customer_lines = tail_lines(settings, "customers.events", "--from-beginning")
    shown = next(line for line in customer_lines if line["value"]["event_id"] == registered["event_id"])
    for field in ("name", "email", "cpf", "phone"):
        assert shown["value"]["payload"][field].startswith("pd1:")
        assert registered["payload"][field] not in json.dumps(customer_lines, ensure_ascii=False)


def test_tail_prints_a_json_projection_and_its_tombstone(settings):
    # Given an order record and then its tombstone on the compacted projections.orders
    topic = settings.topic_name(catalogue.PROJECTION_ORDERS)
    record = {"order_id": "o-77", "status": "paid", "total": 219.8}
    producer = producer_for(settings)
    producer.send(topic, key=b"o-77", value=json.dumps(record).encode(), partition=1)
    producer.send(topic, key=b"o-77", value=None, partition=1)
    producer.flush()
    producer.close()
    # When the operator tails the topic (the last messages, the default)
    lines = tail_lines(settings, "projections.orders")
    # Then the record comes out as JSON and the tombstone as null, in that order
    assert [(line["partition"], line["offset"], line["key"], line["value"]) for line in lines] == [
        (1, 0, "o-77", record), (1, 1, "o-77", None)]


def test_tail_from_the_beginning_stops_at_n_then_follows_new_messages(settings):
    # Given three visit records on partition 0
    topic = settings.topic_name(catalogue.PROJECTION_VISITS)
    producer = producer_for(settings)

    def send(n: int) -> None:
        producer.send(topic, key=f"s-{n}".encode(), value=json.dumps({"session_id": f"s-{n}"}).encode(), partition=0)
        producer.flush()

    for n in range(3):
        send(n)
    # When tail prints the first two from the beginning and then follows
    process = subprocess.Popen([sys.executable, "-m", "posvenda.cli", "tail", "projections.visits", "--from-beginning",
                                "-n", "2", "--follow"], env=settings_env(settings), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        first = [json.loads(lines.get(timeout=60)) for _ in range(2)]
        # and a fourth record arrives after those two were printed
        send(3)
        followed = json.loads(lines.get(timeout=60))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        producer.close()
    # Then it printed the first two, skipped the rest of the backlog, printed the new one, and Ctrl-C ends it
    assert [(line["offset"], line["key"]) for line in first] == [(0, "s-0"), (1, "s-1")]
    assert (followed["offset"], followed["value"]) == (3, {"session_id": "s-3"})
    assert process.returncode == 130


# --- posvenda dlq replay ---------------------------------------------------------------------------

def test_dlq_replay_puts_the_dead_letter_back_byte_identical(settings):
    # Given two dead letters on orders.events.dlq written as the worker writes them: an order event that
    # a handler failed on (fixed since), and random bytes
    source = settings.topic_name(catalogue.ORDERS)
    dlq = settings.topic_name(catalogue.ORDERS.dead_letters)
    order = next(o for o in sample_events() if o["type"] == "order_placed")
    fixed = events.encode(events.from_json(order))
    garbage = os.urandom(40)

    def headers(reason: str, offset: int) -> list[tuple[str, bytes]]:
        return [("dlq.reason", reason.encode()), ("dlq.detail", b"KeyError: 'x' in orders.py"),
                ("dlq.source.topic", source.encode()), ("dlq.source.partition", b"1"),
                ("dlq.source.offset", str(offset).encode()), ("dlq.event_id", order["event_id"].encode())]

    producer = producer_for(settings)
    producer.send(dlq, key=order["order_id"].encode(), value=fixed, partition=0, headers=headers("handler_error", 7))
    producer.send(dlq, key=b"o-junk", value=garbage, partition=0, headers=headers("corrupt_body", 8))
    producer.flush()
    producer.close()
    # When the operator looks at the dead letters
    shown = tail_lines(settings, "orders.events.dlq", "--from-beginning")
    # Then each shows its reason, source and raw bytes
    assert [(line["offset"], line["headers"]["dlq.reason"], line["headers"]["dlq.source.offset"],
             base64.b64decode(line["value_base64"])) for line in shown] == [
        (0, "handler_error", "7", fixed), (1, "corrupt_body", "8", garbage)]
    # When the operator does a dry run for the handler errors
    dry = posvenda(settings, "dlq", "replay", "orders.events", "--reason", "handler_error", "--dry-run")
    # Then it names the dead letter and sends nothing
    assert "would replay 0:0 (handler_error)" in dry and "1 would be replayed, 0 refused" in dry
    end = KafkaConsumer(**settings.kafka_python_config())
    source_tps = [TopicPartition(source, p) for p in (0, 1)]
    assert sum(end.end_offsets(source_tps).values()) == 0
    end.close()
    # When it replays them
    out = posvenda(settings, "dlq", "replay", "orders.events", "--reason", "handler_error")
    assert "replayed 0:0 (handler_error)" in out and "1 replayed, 0 refused" in out
    # Then exactly that message is on its source partition: same key, same bytes
    consumer = KafkaConsumer(group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=1000, **settings.kafka_python_config())
    consumer.assign(source_tps)
    seen: list = []
    wait_until(lambda: seen.extend(consumer) or seen, 30, what="the replayed message on orders.events")
    consumer.close()
    assert [(m.partition, m.key, m.value) for m in seen] == [(1, order["order_id"].encode(), fixed)]
    assert dict(seen[0].headers) == {"dlq.replayed_from": f"{dlq}:0:0".encode()}
