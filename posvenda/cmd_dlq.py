"""`posvenda dlq replay TOPIC`: puts dead-lettered messages back on their source topic after a fix.

Each selected message of `<TOPIC>.dlq` is sent to the topic its `dlq.source.topic` header names, in the
partition its `dlq.source.partition` header names, with the same key and the same value bytes (plus a `dlq.replayed_from` header naming the dead letter). Replaying
twice is harmless: every event keeps its `event_id`, and the folds count an event id once. A message
that fails again goes back to the dead letters with its new reason.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from posvenda.cmd_tail import UnknownTopic, assign, catalogue_topic, consumer_for, read_range

REPLAYED_FROM_HEADER = "dlq.replayed_from"


def add_parser(sub) -> None:
    p = sub.add_parser("dlq", help="dead letters: replay them to their source topic after a fix")
    actions = p.add_subparsers(dest="dlq_action", required=True, metavar="ACTION")
    r = actions.add_parser("replay", help="re-publish the dead letters of TOPIC.dlq to TOPIC (same key, same bytes)")
    r.add_argument("topic", help="source topic without the prefix, e.g. orders.events (its dead letters are orders.events.dlq)")
    r.add_argument("--reason", default=None, help="only dead letters with this dlq.reason (e.g. handler_error)")
    r.add_argument("--offset", action="append", default=[], metavar="P:O", type=partition_offset,
                   help="only the dead letter at this partition:offset of the .dlq topic (as `posvenda tail "
                        "TOPIC.dlq` shows it); repeatable")
    r.add_argument("--dry-run", action="store_true", help="report what would be replayed, send nothing")
    r.set_defaults(func=cmd_dlq_replay)


def partition_offset(text: str) -> tuple[int, int]:
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r} is not PARTITION:OFFSET")
    return int(partition), int(offset)


partition_offset.__name__ = "partition:offset"  # argparse names the type in its error message


@dataclass(frozen=True)
class Replay:
    """Where a dead letter goes back to, or why it cannot."""

    dlq_partition: int
    dlq_offset: int
    reason: str
    target: str | None  # full topic name
    partition: int | None
    problem: str | None = None


def header(headers, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", errors="replace")
    return None


def plan(message, expected_source: str) -> Replay:
    """Reads a dead letter's headers: its reason and the source topic and partition to send it back to.
    Only the topic the DLQ belongs to is a valid target, whatever a header says."""
    headers = message.headers
    reason = header(headers, "dlq.reason") or "(no dlq.reason)"
    source = header(headers, "dlq.source.topic")
    partition = header(headers, "dlq.source.partition")
    base = (message.partition, message.offset, reason)
    if source is None:
        return Replay(*base, None, None, "no dlq.source.topic header")
    if source != expected_source:
        return Replay(*base, None, None, f"dlq.source.topic {source!r} is not {expected_source!r}")
    if partition is not None and not partition.isdigit():
        return Replay(*base, None, None, f"dlq.source.partition {partition!r} is not a partition number")
    return Replay(*base, source, int(partition) if partition is not None else None)


def selected(message, reason: str | None, offsets: set[tuple[int, int]]) -> bool:
    if offsets and (message.partition, message.offset) not in offsets:
        return False
    return reason is None or header(message.headers, "dlq.reason") == reason


def replay(settings, source_name: str, *, reason: str | None, offsets: list[tuple[int, int]], dry_run: bool,
           report=print) -> tuple[int, int]:
    """Replays the selected dead letters of `source_name`.dlq; returns (replayed, refused)."""
    from kafka import KafkaProducer

    source = catalogue_topic(source_name.removesuffix(".dlq"))
    dead_letters = catalogue_topic(source.dead_letters.name)
    expected = settings.topic_name(source)
    consumer = consumer_for(settings)
    producer = None if dry_run else KafkaProducer(client_id="posvenda-dlq-replay", acks="all", enable_idempotence=True,
                                                  **settings.kafka_python_config())
    replayed = refused = 0
    try:
        tps = assign(consumer, settings, dead_letters)
        source_partitions = consumer.partitions_for_topic(expected) or set()
        wanted = set(offsets)
        for m in read_range(consumer, consumer.beginning_offsets(tps), consumer.end_offsets(tps)):
            if not selected(m, reason, wanted):
                continue
            step = plan(m, expected)
            if step.problem is None and step.partition is not None and step.partition not in source_partitions:
                step = Replay(step.dlq_partition, step.dlq_offset, step.reason, None, None,
                              f"partition {step.partition} is not a partition of {expected}")
            where = f"{m.partition}:{m.offset} ({step.reason})"
            if step.problem:
                report(f"not replayed {where}: {step.problem}")
                refused += 1
                continue
            if producer is not None:
                marker = f"{settings.topic_name(dead_letters)}:{m.partition}:{m.offset}".encode()
                producer.send(step.target, key=m.key, value=m.value, partition=step.partition,
                              headers=[(REPLAYED_FROM_HEADER, marker)]).get(timeout=30)
            report(f"{'would replay' if dry_run else 'replayed'} {where} -> {step.target}"
                   f"{'' if step.partition is None else f' partition {step.partition}'}")
            replayed += 1
    finally:
        consumer.close()
        if producer is not None:
            producer.close()
    return replayed, refused


def cmd_dlq_replay(args) -> int:
    from streams.settings import Settings

    try:
        replayed, refused = replay(Settings.from_env(), args.topic, reason=args.reason, offsets=args.offset,
                                   dry_run=args.dry_run)
    except UnknownTopic as exc:
        print(f"posvenda dlq replay: {exc}", file=sys.stderr)
        return 2
    verb = "would be replayed" if args.dry_run else "replayed"
    print(f"dlq replay: {replayed} {verb}, {refused} refused")
    return 1 if refused else 0
