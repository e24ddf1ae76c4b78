"""The content rules every event meets, and the verdict on a message: one function for ingest and worker.

The worker's decode path (streams/decoding.py) and ingest (posvenda/ingest.py) both call `verdict()`
on the Avro bytes of an event, so ingest rejects exactly what the worker would dead-letter and a file
that ingests with "0 rejected" loses nothing downstream. Pure: no Faust, no Kafka.

Rules the schema cannot express (`problem()`):
- `event_id` is a UUID, `source` one of `events.SOURCES`, the message key's id field is present;
- `occurred_at` lies between 2000-01-01 and a day ahead of now; payload timestamps between 2000 and 2100;
- every number is finite and at most `MAX_MAGNITUDE` in size (a NaN, an infinity or 1e308 breaks the
  folds' arithmetic), money is not negative, quantities are positive, an NPS score is 0..10;
- no string holds a C0 control character (U+0000..U+001F): ids, names, cities, carriers, paths end up
  in keys, logs, reports and customer messages. Free-text fields (`FREE_TEXT_FIELDS`: the NPS comment,
  a received message's subject) may hold tab, line feed and carriage return, nothing else below U+0020.
"""
from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from functools import cache

from topics import catalogue, codec, events

EARLIEST_PLAUSIBLE_MS = 946_684_800_000  # 2000-01-01: the store did not exist before (1970 = a zero timestamp)
LATEST_PAYLOAD_TIME_MS = 4_102_444_800_000  # 2100-01-01: the latest due date or promised delivery we accept
FUTURE_TOLERANCE_MS = 24 * 3600 * 1000  # producers' clocks may run ahead; a day more is a wrong clock
MAX_AMOUNT_BRL = 10_000_000  # no order, charge or refund of this store comes near R$ 10 million
MAX_MAGNITUDE = MAX_AMOUNT_BRL  # the bound of every number of a payload (amounts, quantities, days)
MONEY_FIELDS = frozenset({"total", "amount", "freight", "price", "unit_price"})
FREE_TEXT_FIELDS = frozenset({"comment", "subject"})
NPS_SCALE = (0, 10)

_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # tab, LF and CR allowed


@dataclass(frozen=True)
class Problem:
    """What is wrong with an event: the field (dotted path) and why. Never echoes a string's value."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True)
class Rejected:
    """A message the worker dead-letters: the DLQ reason code, the detail, the event id when known,
    and the field at fault with the bare reason (for ingest's `line N: field F: reason`)."""

    reason: str
    detail: str
    event_id: str | None = None
    field: str = "(message)"
    why: str = ""


def key_field(topic: catalogue.Topic) -> str | None:
    """The envelope id a source topic is keyed by, which its agent requires (None for messages.events:
    keyed by order, else by customer)."""
    return topic.key if topic.key in events.ENVELOPE_IDS else None


def verdict(data: bytes, now_ms: int, key_field: str | None) -> events.Event | Rejected:
    """The decoded event, or why it cannot be folded (`dlq.reason` codes: the codec's, `invalid_field`,
    `undecodable`, `implausible_value`)."""
    try:
        event = events.decode(data)
    except codec.DecodeError as exc:
        return Rejected(exc.reason, exc.detail)
    except events.InvalidEvent as exc:
        return Rejected("invalid_field", str(exc), field=exc.field, why=exc.reason)
    except Exception as exc:  # anything else a hostile message triggers must not stop the partition
        return Rejected("undecodable", f"{type(exc).__name__}: {exc}")
    found = problem(event, now_ms, key_field)
    if found is not None:
        return Rejected("implausible_value", str(found), event.event_id, found.field, found.reason)
    return event


def problem(event: events.Event, now_ms: int, key_field: str | None = None) -> Problem | None:
    """The first rule `event` breaks, or None."""
    for check in (_envelope_problem, _time_problem):
        found = check(event, now_ms)
        if found:
            return found
    if key_field and not getattr(event, key_field):
        return Problem(key_field, "missing or empty (it is the message key)")
    return _strings_problem(event) or _payload_problem(event)


def _envelope_problem(event: events.Event, now_ms: int) -> Problem | None:
    try:
        uuid.UUID(event.event_id)
    except (TypeError, ValueError, AttributeError):
        return Problem("event_id", "not a UUID")
    if event.source not in events.SOURCES:
        return Problem("source", f"not one of {sorted(events.SOURCES)}")
    return None


def _time_problem(event: events.Event, now_ms: int) -> Problem | None:
    if event.occurred_at < EARLIEST_PLAUSIBLE_MS:
        return Problem("occurred_at", f"{_when(event.occurred_at)} is before 2000")
    if event.occurred_at > now_ms + FUTURE_TOLERANCE_MS:
        return Problem("occurred_at", f"{_when(event.occurred_at)} is more than a day in the future")
    return None


def _when(ms: int) -> str:
    try:
        return events.iso(ms)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"


def _strings_problem(event: events.Event) -> Problem | None:
    envelope = {"event_id": event.event_id, "type": event.type, "source": event.source,
                **{name: getattr(event, name) for name in events.ENVELOPE_IDS}}
    for path, value in (*envelope.items(), *leaves(event.payload, "payload")):
        if not isinstance(value, str):
            continue
        pattern = _CONTROL_IN_TEXT if _name(path) in FREE_TEXT_FIELDS else _CONTROL
        hit = pattern.search(value)
        if hit:
            return Problem(path, f"control character U+{ord(hit.group()):04X} at position {hit.start()}")
    return None


def _payload_problem(event: events.Event) -> Problem | None:
    stamps = timestamp_fields(event.type)
    for path, value in leaves(event.payload, "payload"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        name = _name(path)
        if name in stamps:
            found = _payload_time_problem(path, value)
        else:
            found = _number_problem(path, name, value)
        if found:
            return found
    if event.type == "nps_answered":
        score = event.payload.get("score")
        if not NPS_SCALE[0] <= score <= NPS_SCALE[1]:
            return Problem("payload.score", f"{score} is outside {NPS_SCALE[0]}..{NPS_SCALE[1]}")
    return None


def _number_problem(path: str, name: str, value: float) -> Problem | None:
    if not math.isfinite(value):
        return Problem(path, f"{value} is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        return Problem(path, f"{value:g} is beyond the plausible maximum of {MAX_MAGNITUDE:,}")
    if name in MONEY_FIELDS and value < 0:
        return Problem(path, f"is negative ({value})")
    if name == "quantity" and value <= 0:
        return Problem(path, f"{value} is not positive")
    return None


def _payload_time_problem(path: str, ms: int) -> Problem | None:
    if not EARLIEST_PLAUSIBLE_MS <= ms < LATEST_PAYLOAD_TIME_MS:
        return Problem(path, f"{_when(ms)} is outside 2000..2100")
    return None


def leaves(value, path: str):
    """(dotted path, value) of every scalar inside a payload; list items as `path[i]`."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaves(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from leaves(inner, f"{path}[{i}]")
    else:
        yield path, value


def _name(path: str) -> str:
    return path.rsplit(".", 1)[-1].split("[", 1)[0]


@cache
def timestamp_fields(type_name: str) -> frozenset[str]:
    """Payload fields of an event type that hold UTC millis (Avro timestamp-millis)."""
    etype = events.event_types().get(type_name)
    if etype is None:
        return frozenset()
    return frozenset(f["name"] for f in etype.branch_schema["fields"] if events.is_logical(f["type"], "timestamp-millis"))
