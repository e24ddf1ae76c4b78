"""`posvenda ingest FILE.jsonl`: validates every line, publishes the valid ones, reports the rest.

A line is rejected, named by its number, field and reason, and the run goes on, when it is not UTF-8,
not JSON (or nested too deeply to read), breaks its schema, breaks a content rule (the worker's own
verdict, topics/validation.py: what ingest accepts the worker folds), or encodes to more bytes than the
producer may send. A valid line the broker refuses is reported the same way. "Published" counts the
sends the broker acknowledged, not the ones queued.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kafka.errors import KafkaError

from posvenda.publish import MessageTooLarge
from topics import catalogue, events, validation

PENDING_SENDS = 10_000  # sends kept waiting for their acknowledgement before the producer is flushed
SETTLE_TIMEOUT_S = 30  # after a flush every future is resolved; this only bounds a stuck one


@dataclass(frozen=True)
class Rejection:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: field {self.field}: {self.reason}"


@dataclass
class IngestResult:
    published: int = 0  # acknowledged by the broker
    rejected: list[Rejection] = field(default_factory=list)


def parse_line(number: int, line: str | bytes, now_ms: int | None = None) -> events.Event | Rejection:
    """The line as an Event the worker will fold, or a Rejection naming the line, field and reason."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(number, "(line)", f"not UTF-8: byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}")
    try:
        obj = json.loads(line)
    except RecursionError:
        return Rejection(number, "(line)", "JSON nested too deeply to read")
    except json.JSONDecodeError as exc:
        return Rejection(number, "(line)", f"malformed JSON: {exc.msg} at column {exc.colno}")
    except ValueError as exc:  # e.g. an integer literal of thousands of digits
        return Rejection(number, "(line)", f"malformed JSON: {exc}")
    try:
        event = events.from_json(obj)
    except events.InvalidEvent as exc:
        return Rejection(number, exc.field, exc.reason)
    except RecursionError:
        return Rejection(number, "(line)", "a value nested too deeply to read")
    return _worker_verdict(number, event, int(time.time() * 1000) if now_ms is None else now_ms)


def _worker_verdict(number: int, event: events.Event, now_ms: int) -> events.Event | Rejection:
    """The event when the worker would fold it; else why the worker would dead-letter it."""
    topic = catalogue.for_event_family(events.event_type(event.type).family)
    outcome = validation.verdict(events.encode(event), now_ms, validation.key_field(topic))
    if isinstance(outcome, validation.Rejected):
        return Rejection(number, outcome.field, outcome.why or outcome.detail)
    return event


def parse_lines(lines: Iterable[str | bytes], now_ms: int | None = None) -> Iterator[events.Event | Rejection]:
    """Each non-blank line as an Event, or a Rejection naming its line number, field and reason."""
    for _number, item in _numbered(lines, now_ms):
        yield item


def _numbered(lines: Iterable[str | bytes], now_ms: int | None = None) -> Iterator[tuple[int, events.Event | Rejection]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, parse_line(number, line, now_ms)


def count_lines(path: Path) -> int:
    """Non-blank lines of a file, whatever bytes they hold (for a progress bar)."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def largest_field(event: events.Event) -> str:
    """The dotted path of the longest string of an event (what makes an oversized event too large)."""
    strings = [(len(v), p) for p, v in validation.leaves(event.payload, "payload") if isinstance(v, str)]
    return max(strings)[1] if strings else "payload"


def ingest(path: Path, publisher, progress=None) -> IngestResult:
    """Publishes every valid line of `path`; returns how many the broker acknowledged and every
    rejected line (invalid, too large to send, or refused by the broker)."""
    result = IngestResult()
    pending: list[tuple[int, object]] = []
    with path.open("rb") as handle:
        for number, item in _numbered(handle):
            if isinstance(item, Rejection):
                result.rejected.append(item)
            else:
                _send(publisher, item, number, pending, result)
            if len(pending) >= PENDING_SENDS:
                _settle(publisher, pending, result)
            if progress is not None:
                progress.update(1)
    _settle(publisher, pending, result)
    result.rejected.sort(key=lambda r: r.line)
    return result


def _send(publisher, event: events.Event, number: int, pending: list, result: IngestResult) -> None:
    try:
        pending.append((number, publisher.publish(event)))
    except MessageTooLarge as exc:
        result.rejected.append(Rejection(number, largest_field(event), str(exc)))


def _settle(publisher, pending: list, result: IngestResult) -> None:
    """Flushes the producer and counts each send: acknowledged, or refused (named by its line)."""
    publisher.flush()
    for number, future in pending:
        try:
            future.get(timeout=SETTLE_TIMEOUT_S)
            result.published += 1
        except KafkaError as exc:
            result.rejected.append(Rejection(number, "(send)", f"refused by the broker: {type(exc).__name__}: {exc}"))
    pending.clear()
