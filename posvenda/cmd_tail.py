"""`posvenda tail TOPIC`: a catalogue topic's messages as JSON lines, decoded (the kcat habit).

Each line carries the message's partition, offset, timestamp and key beside its value: Avro messages
(single-object encoding) decoded with the schema their fingerprint names, JSON messages as JSON, a
tombstone as `null`. Dead-letter messages show their `dlq.*` headers and the raw value in base64,
since they are what could not be decoded. Sealed personal fields (`pd1:...`) stay sealed: tail holds
no customer key and opens nothing.
"""
from __future__ import annotations

import base64
import datetime as dt
import heapq
import json
import logging
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from topics import catalogue, codec, events

DEFAULT_LAST = 10
POLL_MS = 500


class UnknownTopic(LookupError):
    """A name that is not in the catalogue; the message lists the names that are."""


def add_parser(sub) -> None:
    p = sub.add_parser("tail", help="print a topic's messages decoded, one JSON line each")
    p.add_argument("topic", help="catalogue name without the prefix, e.g. orders.events, projections.orders, "
                                 "orders.events.dlq (POSVENDA_TOPIC_PREFIX is put in front)")
    p.add_argument("--from-beginning", action="store_true",
                   help="from the oldest message (default: only the last -n messages)")
    p.add_argument("--key", default=None, help="only messages with this key (e.g. an order id)")
    p.add_argument("-n", type=int, default=None, metavar="N",
                   help=f"at most N messages: the first N with --from-beginning (default all), else the last N "
                        f"(default {DEFAULT_LAST})")
    p.add_argument("--follow", "-f", action="store_true", help="then keep printing new messages until Ctrl-C")
    p.set_defaults(func=cmd_tail)


def catalogue_topic(name: str) -> catalogue.Topic:
    """The catalogue's topic of a logical name (dead-letter topics included)."""
    by_name = {t.name: t for t in catalogue.all_topics()}
    if name not in by_name:
        raise UnknownTopic(f"{name!r} is not a catalogue topic (give it without POSVENDA_TOPIC_PREFIX); "
                           f"topics: {', '.join(sorted(by_name))}")
    return by_name[name]


# --- decoding and formatting (pure) --------------------------------------------------------------

def jsonable(value):
    """Avro-decoded values as JSON: instants as ISO-8601 UTC, dates as ISO dates, bytes in base64."""
    if isinstance(value, dt.datetime):
        return events.iso(int(value.timestamp() * 1000))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def decode_value(value: bytes | None) -> dict:
    """The fields a line shows for a message value: {"value": ...} (plus "schema" for Avro), or
    {"error": ..., "value_base64": ...} for a value that is neither Avro single-object nor JSON."""
    if value is None:
        return {"value": None}
    if value[:2] == codec.MAGIC:
        try:
            name, record = codec.decode(value)
        except codec.DecodeError as exc:
            return {"error": str(exc), "value_base64": base64.b64encode(value).decode()}
        if _is_event_family(name):
            try:  # the event's JSON form, as `posvenda ingest` takes it
                return {"schema": name, "value": events.to_json(events.decode(value))}
            except (codec.DecodeError, events.InvalidEvent):
                pass  # shown as the record it is
        return {"schema": name, "value": jsonable(record)}
    try:
        return {"value": json.loads(value.decode("utf-8"))}
    except (UnicodeDecodeError, ValueError) as exc:
        return {"error": f"neither Avro single-object nor JSON: {exc}", "value_base64": base64.b64encode(value).decode()}


def _is_event_family(schema_name: str) -> bool:
    return any(t.family == schema_name for t in events.event_types().values())


def text_or_base64(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def dead_letter_fields(value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> dict:
    """A dead letter as it was received: its `dlq.*` headers and the raw value in base64."""
    return {"headers": {name: text_or_base64(raw) for name, raw in headers or () if name.startswith("dlq.")},
            "value_base64": None if value is None else base64.b64encode(value).decode()}


def message_line(topic: catalogue.Topic, message) -> dict:
    """One output line (as a dict) for a consumed message (kafka-python ConsumerRecord)."""
    line = {"topic": topic.name, "partition": message.partition, "offset": message.offset,
            "timestamp": events.iso(message.timestamp) if message.timestamp is not None else None,
            "key": text_or_base64(message.key)}
    if is_dead_letter_topic(topic):
        line.update(dead_letter_fields(message.value, message.headers))
    else:
        line.update(decode_value(message.value))
    return line


def is_dead_letter_topic(topic: catalogue.Topic) -> bool:
    return topic.value_schemas == ("raw",)


def newest(per_partition: dict[int, Iterable], n: int) -> list:
    """The n newest messages over all partitions (by timestamp, then partition and offset), oldest
    first; each partition's messages are in offset order."""
    merged = heapq.merge(*per_partition.values(), key=lambda m: (m.timestamp, m.partition, m.offset))
    return list(deque(merged, maxlen=n)) if n > 0 else []


# --- reading -------------------------------------------------------------------------------------

def consumer_for(settings):
    """A kafka-python consumer without a group: tail and replay never move anyone's offsets."""
    from kafka import KafkaConsumer

    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # stdout is the data; a failure raises anyway

    return KafkaConsumer(group_id=None, enable_auto_commit=False, client_id="posvenda-tail",
                         **settings.kafka_python_config())


def assign(consumer, settings, topic: catalogue.Topic) -> list:
    from kafka import TopicPartition

    name = settings.topic_name(topic)
    partitions = consumer.partitions_for_topic(name)
    if not partitions:
        raise UnknownTopic(f"{name} not found on {settings.bootstrap_servers}: run `posvenda topics create`, "
                           f"and check POSVENDA_TOPIC_PREFIX ({settings.topic_prefix!r})")
    tps = [TopicPartition(name, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return tps


def read_range(consumer, starts: dict, ends: dict) -> Iterator:
    """Messages from `starts` up to (not including) `ends`, per partition in offset order."""
    remaining = set()
    for tp, offset in starts.items():
        if offset < ends[tp]:
            consumer.seek(tp, offset)
            remaining.add(tp)
        else:
            consumer.pause(tp)
    while remaining:
        for tp, messages in consumer.poll(timeout_ms=POLL_MS, max_records=2000).items():
            for m in messages:
                if m.offset >= ends[tp]:
                    break
                yield m
            if consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
                consumer.pause(tp)


def follow(consumer, ends: dict) -> Iterator:
    """Messages from `ends` on, as they arrive, until interrupted."""
    for tp, offset in ends.items():
        consumer.seek(tp, offset)
    consumer.resume(*ends)
    while True:
        for messages in consumer.poll(timeout_ms=POLL_MS).values():
            yield from messages


def tail(settings, topic: catalogue.Topic, *, from_beginning: bool, key: str | None, n: int | None,
         follow_new: bool, emit: Callable[[dict], None]) -> int:
    """Emits the selected messages as lines; returns how many."""
    wanted = None if key is None else key.encode()

    def matches(m) -> bool:
        return wanted is None or m.key == wanted

    consumer = consumer_for(settings)
    count = 0
    try:
        tps = assign(consumer, settings, topic)
        begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        if from_beginning:
            backlog = (m for m in read_range(consumer, begin, end) if matches(m))
        else:
            last = DEFAULT_LAST if n is None else n
            # Without a key the newest `last` of each partition suffice; a key's messages may lie anywhere.
            starts = begin if wanted is not None else {tp: max(begin[tp], end[tp] - last) for tp in tps}
            per_partition: dict[int, deque] = {tp.partition: deque(maxlen=max(last, 0)) for tp in tps}
            for m in read_range(consumer, starts, end):
                if matches(m):
                    per_partition[m.partition].append(m)
            backlog = iter(newest(per_partition, last))
        for m in backlog:
            if from_beginning and n is not None and count >= n:
                break
            emit(message_line(topic, m))
            count += 1
        if follow_new:
            for m in follow(consumer, end):
                if matches(m):
                    emit(message_line(topic, m))
                    count += 1
    finally:
        consumer.close()
    return count


def print_line(line: dict) -> None:
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def cmd_tail(args) -> int:
    from streams.settings import Settings

    if args.n is not None and args.n < 0:
        print("posvenda tail: -n must be 0 or more", file=sys.stderr)
        return 2
    try:
        topic = catalogue_topic(args.topic)
        tail(Settings.from_env(), topic, from_beginning=args.from_beginning, key=args.key, n=args.n,
             follow_new=args.follow, emit=print_line)
    except UnknownTopic as exc:
        print(f"posvenda tail: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
