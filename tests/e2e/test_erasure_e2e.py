"""Erasure that holds on an immutable log (LGPD art. 18), end to end on the real broker.

Given customers registered through `posvenda ingest` (name, e-mail, CPF, birth date; an e-mail change,
an NPS comment naming the customer, a dead-lettered copy), a worker that folded them, and one customer
erased through `posvenda ingest`: once compaction has run, the raw bytes of every topic of the test's
namespace (sources, keys, changelogs, projections, dead letters) and of the worker's RocksDB directory
hold none of that customer's name, e-mail or CPF, nor their data key; the other customers stay
readable over HTTP, and the views and reports show nothing of the erased one.

The test's own settings, so that compaction happens within the test: the compacted topics that hold
personal data or keys get segment.ms / max.compaction.lag.ms / delete.retention.ms = 1 s and
min.cleanable.dirty.ratio = 0.01 (the catalogue's are 1 h / 24 h / 24 h / 0.1), and the test appends a
tombstone of an unused key to each of their partitions so that the segment holding the erasure rolls
(the log cleaner never cleans the active segment). The local broker's cleaner backs off 2 s.
"""
from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
import urllib.error
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from posvenda.publish import Publisher
from tests.conftest import REPO, settings_env, wait_until
from topics import catalogue
from topics.events import Event, iso

NOW_MS = 1_788_271_200_000  # 2026-09-01T14:00Z
DAY = 86_400_000
TEST_COMPACTION = {"segment.ms": "1000", "max.compaction.lag.ms": "1000", "min.compaction.lag.ms": "0",
                   "delete.retention.ms": "1000", "min.cleanable.dirty.ratio": "0.01"}
NUDGE_KEY = b'"compaction-nudge"'  # valid JSON too: the changelog's keys are JSON


def person(rng: random.Random, birth: str, sex: str) -> dict:
    """A customer whose personal values are unique strings (ASCII, so JSON keeps them as they are)."""
    tag = uuid.UUID(int=rng.getrandbits(128)).hex[:10]
    digits = "".join(rng.choice("0123456789") for _ in range(11))
    return {"customer_id": f"ce-{tag}", "name": f"Quenia {tag.upper()} Tavares", "email": f"q.{tag}@example.com",
            "cpf": f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}", "birth_date": birth, "sex": sex}


def personal_values(p: dict) -> list[bytes]:
    return [p["name"].encode(), p["email"].encode(), p["cpf"].encode()]


def line(type_: str, at: int, customer_id: str, payload: dict, order_id: str | None = None) -> dict:
    out = {"event_id": str(uuid.uuid4()), "type": type_, "occurred_at": iso(at), "source": "crm",
           "customer_id": customer_id, "payload": payload}
    if order_id:
        out["order_id"] = order_id
    return out


def registration(p: dict, at: int) -> dict:
    return line("customer_registered", at, p["customer_id"], {
        "name": p["name"], "email": p["email"], "cpf": p["cpf"], "phone": "+55 11 90000-0000",
        "birth_date": p["birth_date"], "sex": p["sex"], "uf": "SP", "city": "Campinas", "consents": ["email"]})


def ingest(settings, tmp_path: Path, lines: list[dict], name: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "ingest", str(path), "-q"], env=settings_env(settings),
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def report(settings, tmp_path: Path, name: str, *extra) -> list[dict]:
    out = tmp_path / f"{name}.csv"
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "report", name, "--today", "2026-09-01", "--out",
                           str(out), "-q", *extra], env=settings_env(settings), cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))


# --- what is on the broker and on disk ----------------------------------------------------------

def namespace_topics(settings) -> list[str]:
    admin = KafkaAdminClient(client_id="erasure-test", **settings.kafka_python_config())
    try:
        return sorted(t for t in admin.list_topics() if t.startswith(settings.topic_prefix))
    finally:
        admin.close()


def topic_bytes(settings) -> dict[str, bytes]:
    """Every message (key, value, headers) of every topic of the namespace, read from the beginning."""
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, client_id="erasure-scan",
                             **settings.kafka_python_config())
    out = {}
    try:
        for name in namespace_topics(settings):
            partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            chunks = []
            while any(consumer.position(tp) < end[tp] for tp in partitions):
                for messages in consumer.poll(timeout_ms=1000).values():
                    for m in messages:
                        chunks += [m.key or b"", m.value or b""]
                        chunks += [k.encode() + v for k, v in m.headers or ()]
            out[name] = b"\x00".join(chunks)
    finally:
        consumer.close()
    return out


def directory_bytes(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in path.rglob("*") if f.is_file()}


def hits(blobs: dict[str, bytes], needles: list[bytes]) -> list[tuple[str, bytes]]:
    return [(where, needle) for where, blob in blobs.items() for needle in needles if needle in blob]


def set_test_compaction(settings, names: list[str]) -> None:
    admin = KafkaAdminClient(client_id="erasure-test", **settings.kafka_python_config())
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, n, configs=TEST_COMPACTION) for n in names])
    finally:
        admin.close()


def nudge(settings, names: list[str]) -> bool:
    """Appends a tombstone of an unused key to every partition, so the segment before it can roll."""
    producer = KafkaProducer(client_id="erasure-nudge", **settings.kafka_python_config())
    try:
        for name in names:
            for p in producer.partitions_for(name):
                producer.send(name, key=NUDGE_KEY, value=None, partition=p)
        producer.flush()
    finally:
        producer.close()
    return True


def current_key_secret(settings, customer_id: str) -> bytes:
    consumer = KafkaConsumer(settings.topic_name(catalogue.CUSTOMER_KEYS), group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000, **settings.kafka_python_config())
    try:
        values = [m.value for m in consumer if m.key == customer_id.encode()]
    finally:
        consumer.close()
    assert values and values[-1] is not None, "a key was written for the customer"
    return json.loads(values[-1])["secret"].encode()


def http_status(worker, path: str) -> int:
    try:
        worker.get(path)
        return 200
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.timeout(900)
def test_an_erased_customer_leaves_no_readable_trace(settings, worker_factory, tmp_path):
    # Given four customers registered through the ingest path, one of whom will be erased
    rng = random.Random(2026)
    erased, *others = [person(rng, birth, sex) for birth, sex in
                       (("1990-09-10", "f"), ("1985-09-12", "m"), ("2001-09-20", "f"), ("1970-09-25", "m"))]
    lines = [registration(p, NOW_MS - 10 * DAY + i) for i, p in enumerate([erased, *others])]
    lines.append(line("customer_updated", NOW_MS - 5 * DAY, erased["customer_id"],
                      {"email": erased["email"], "phone": None, "uf": "SP", "city": "Campinas"}))
    lines.append(line("nps_answered", NOW_MS - 4 * DAY, erased["customer_id"],
                      {"score": 3, "comment": f"Sou {erased['name']}, CPF {erased['cpf']}"}, order_id="oe-1"))
    ingest(settings, tmp_path, lines, "customers")
    # and a copy the worker will dead-letter (dated before 2000), published the way ingest does
    with Publisher(settings) as publisher:
        bad = registration(erased, 0)
        publisher.publish(Event(bad["event_id"], "customer_registered", 915_148_800_000, "crm",
                                customer_id=erased["customer_id"], payload=bad["payload"]))
    data_key = current_key_secret(settings, erased["customer_id"])
    worker = worker_factory(settings)
    for p in [erased, *others]:
        wait_until(lambda p=p: worker.get(f"/customers/{p['customer_id']}")["name"] == p["name"], timeout=120,
                   what=f"the 360 of {p['customer_id']} to show the name")
    dlq = settings.topic_name(catalogue.CUSTOMERS.dead_letters)
    wait_until(lambda: topic_bytes(settings).get(dlq), timeout=60, what="the dead-lettered copy")
    # the scan finds what is in clear: the 360 records on projections.customers, before the erasure
    compacted = [settings.topic_name(catalogue.PROJECTION_CUSTOMERS), settings.topic_name(catalogue.CUSTOMER_KEYS),
                 f"{settings.app_id}-customer-360-changelog"]
    wait_until(lambda: hits(topic_bytes(settings), [erased["name"].encode()]), timeout=60,
               what="the erased customer's 360 record in clear on projections.customers before the erasure")
    # and what is sealed is not there in clear even before: the sources, keys, DLQ and RocksDB
    before = topic_bytes(settings)
    sealed_places = {k: v for k, v in before.items() if k != compacted[0]}
    assert hits(sealed_places, personal_values(erased)) == []
    assert hits(directory_bytes(settings.data_dir), personal_values(erased)) == []
    set_test_compaction(settings, compacted)

    # When the customer is erased through the ingest path
    ingest(settings, tmp_path, [line("customer_erasure_requested", NOW_MS - DAY, erased["customer_id"],
                                     {"reason": "lgpd_request"})], "erasure")
    wait_until(lambda: http_status(worker, f"/customers/{erased['customer_id']}") == 404, timeout=120,
               what="the erased customer's 360 to be gone")
    # and compaction has run over the topics that keep a latest value per key
    needles = [*personal_values(erased), data_key]
    wait_until(lambda: nudge(settings, compacted) and not hits(topic_bytes(settings), needles), timeout=240,
               interval=2, what="compaction to drop the erased customer's 360 record and data key")

    # Then no topic of the namespace holds the erased customer's name, e-mail, CPF or data key
    topics_now = topic_bytes(settings)
    assert {settings.topic_name(t) for t in (catalogue.CUSTOMERS, catalogue.CUSTOMERS.dead_letters,
                                             catalogue.FEEDBACK)} | set(compacted) <= set(topics_now)
    assert hits(topics_now, needles) == []
    # while the others' names are still there in clear (the scan does find what is there)
    assert {p["name"] for p in others if hits(topics_now, [p["name"].encode()])} == {p["name"] for p in others}
    # and the worker's RocksDB directory holds none of them either, though it holds the table's records
    on_disk = directory_bytes(settings.data_dir)
    assert hits(on_disk, personal_values(erased)) == []
    assert all(hits(on_disk, [p["customer_id"].encode()]) for p in others), "the scan reads the 360 table's files"
    # (the table keeps every customer's name sealed: no one's name is on disk in clear, only sealed values)
    assert hits(on_disk, [p["name"].encode() for p in others]) == [] and hits(on_disk, [b'"pd1:'])
    # and the others stay readable; the views show nothing of the erased one
    for p in others:
        assert worker.get(f"/customers/{p['customer_id']}")["name"] == p["name"]
    listed = worker.get("/customers?limit=100")
    assert {c["customer_id"] for c in listed["items"]} == {p["customer_id"] for p in others}
    assert hits({"views": json.dumps(listed).encode()}, personal_values(erased)) == []
    assert hits({"log": worker.log().encode()}, [v for p in [erased, *others] for v in personal_values(p)]) == []
    # and the reports count and list the others only
    by_age_sex = report(settings, tmp_path, "customers-by-age-sex")
    assert sum(int(r["customers"]) for r in by_age_sex) == len(others)
    birthdays = report(settings, tmp_path, "birthdays", "--from", "2026-09-01", "--to", "2026-09-30")
    assert {r["customer_id"] for r in birthdays} == {p["customer_id"] for p in others}
