"""Events as the rest of the code sees them: a flat envelope plus a payload dict.

Times are integers (UTC milliseconds) everywhere in the domain code; Avro's timestamp-millis and date
logical types are converted at this edge. The event type (`order_placed`) selects the family schema
and the payload branch (`posvenda.orders.OrderPlaced`).
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from functools import cache

from fastavro._validate_common import ValidationError
from fastavro.validation import validate

from topics import codec, schemas

ENVELOPE_IDS = ("session_id", "customer_id", "order_id")
SOURCES = frozenset({"web", "app", "erp", "psp", "carrier", "crm"})
UTC = dt.UTC
EPOCH_DATE = dt.date(1970, 1, 1)
# The instants a datetime (and so Avro's timestamp-millis on our side) can hold: years 1..9999.
MIN_MILLIS = -62_135_596_800_000
MAX_MILLIS = 253_402_300_799_999


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    occurred_at: int  # UTC millis
    source: str
    session_id: str | None = None
    customer_id: str | None = None
    order_id: str | None = None
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EventType:
    name: str  # snake_case, e.g. order_placed
    family: str  # family schema full name, e.g. posvenda.orders.OrderEvent
    branch: str  # payload record full name, e.g. posvenda.orders.OrderPlaced
    branch_schema: dict  # the payload record's raw schema


class InvalidEvent(ValueError):
    """A record that breaks its schema; names the field and the reason."""

    def __init__(self, field_name: str, reason: str):
        super().__init__(f"field {field_name!r}: {reason}")
        self.field = field_name
        self.reason = reason


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@cache
def event_types() -> dict[str, EventType]:
    """Every event type of every envelope family, by snake_case name."""
    found = {}
    for schema in schemas.current().values():
        payload = next((f for f in schema.raw["fields"] if f["name"] == "payload"), None)
        if payload is None:
            continue
        namespace = schema.raw["namespace"]
        for branch in payload["type"]:
            full = f"{namespace}.{branch['name']}"
            found[snake(branch["name"])] = EventType(snake(branch["name"]), schema.name, full, branch)
    return found


def event_type(name: str) -> EventType:
    try:
        return event_types()[name]
    except KeyError:
        raise InvalidEvent("type", f"unknown event type {name!r}") from None


# --- edge conversions -------------------------------------------------------------------------

def millis(value) -> int:
    """UTC millis from an int, a datetime, or an ISO-8601 string with a timezone; ValueError when it
    lies outside the years 1..9999 (10**20 ms is no time, not an OverflowError later)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    if isinstance(value, int):
        if not MIN_MILLIS <= value <= MAX_MILLIS:
            raise ValueError(f"{value} ms is outside the years 1..9999")
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("datetime without a timezone")
        return int(value.timestamp() * 1000)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)  # Python 3.11+ reads "Z"
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no timezone (add Z or an offset)")
        return int(parsed.timestamp() * 1000)
    raise TypeError(f"{type(value).__name__} is not a time")


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_logical(typ, logical: str) -> bool:
    if isinstance(typ, dict) and typ.get("logicalType") == logical:
        return True
    return isinstance(typ, list) and any(is_logical(t, logical) for t in typ)


def _payload_from_json(branch: dict, payload: dict, path: str = "payload") -> dict:
    """Converts JSON payload values to what fastavro writes (datetimes, dates), naming bad fields."""
    if not isinstance(payload, dict):
        raise InvalidEvent(path, f"expected an object, got {type(payload).__name__}")
    known = {f["name"] for f in branch["fields"]}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise InvalidEvent(f"{path}.{unknown[0]}", f"not a field of {branch['name']} (fields: {sorted(known)})")
    out = dict(payload)
    for f in branch["fields"]:
        name, typ = f["name"], f["type"]
        if name not in out:
            if "default" in f:
                out[name] = f["default"]
                continue
            raise InvalidEvent(f"{path}.{name}", "missing required field")
        value = out[name]
        if value is None:
            continue
        try:
            if is_logical(typ, "timestamp-millis"):
                out[name] = dt.datetime.fromtimestamp(millis(value) / 1000, UTC)
            elif is_logical(typ, "date"):
                out[name] = dt.date.fromisoformat(value) if isinstance(value, str) else value
        except (TypeError, ValueError) as exc:
            raise InvalidEvent(f"{path}.{name}", str(exc)) from None
    return out


def _to_domain(value):
    """Avro-decoded values to domain values: datetimes to millis, dates to ISO strings."""
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _to_domain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_domain(v) for v in value]
    return value


def _to_json(value):
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def from_json(obj: dict) -> Event:
    """Builds and fully validates an Event from its JSON form (see README, "Event JSON form")."""
    if not isinstance(obj, dict):
        raise InvalidEvent("(line)", f"expected a JSON object, got {type(obj).__name__}")
    for name in ("event_id", "type", "occurred_at", "source"):
        if name not in obj:
            raise InvalidEvent(name, "missing required field")
    unknown = sorted(set(obj) - {"event_id", "type", "occurred_at", "source", "payload", *ENVELOPE_IDS})
    if unknown:
        raise InvalidEvent(unknown[0], "not an envelope field")
    etype = event_type(obj["type"]) if isinstance(obj["type"], str) else None
    if etype is None:
        raise InvalidEvent("type", f"expected a string, got {type(obj['type']).__name__}")
    try:
        occurred_at = millis(obj["occurred_at"])
    except (TypeError, ValueError) as exc:
        raise InvalidEvent("occurred_at", str(exc)) from None
    if not isinstance(obj["source"], str) or obj["source"] not in SOURCES:
        raise InvalidEvent("source", f"{_short(obj['source'])} is not one of {sorted(SOURCES)}")
    event = Event(
        event_id=obj["event_id"], type=etype.name, occurred_at=occurred_at, source=obj["source"],
        session_id=obj.get("session_id"), customer_id=obj.get("customer_id"), order_id=obj.get("order_id"),
        payload=obj.get("payload") or {},
    )
    to_record(event)  # validates every field
    return event


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def to_json(event: Event) -> dict:
    out = {"event_id": event.event_id, "type": event.type, "occurred_at": iso(event.occurred_at), "source": event.source}
    for name in ENVELOPE_IDS:
        if getattr(event, name) is not None:
            out[name] = getattr(event, name)
    out["payload"] = _to_json(event.payload)
    return out


def to_record(event: Event) -> tuple[str, dict]:
    """(family schema name, Avro record) for an event; raises InvalidEvent naming the bad field."""
    etype = event_type(event.type)
    payload = _payload_from_json(etype.branch_schema, event.payload)
    record = {
        "event_id": event.event_id, "type": event.type,
        "occurred_at": dt.datetime.fromtimestamp(event.occurred_at / 1000, UTC), "source": event.source,
        "session_id": event.session_id, "customer_id": event.customer_id, "order_id": event.order_id,
        "payload": (etype.branch, payload),
    }
    _validate_uuid(event.event_id)
    try:
        validate(record, schemas.get(etype.family).parsed, raise_errors=True)
    except ValidationError as exc:
        raise InvalidEvent(*_explain(exc, etype)) from None
    return etype.family, record


def _validate_uuid(value) -> None:
    if not isinstance(value, str):
        raise InvalidEvent("event_id", f"expected a UUID string, got {type(value).__name__}")
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidEvent("event_id", f"{value!r} is not a UUID") from None


def _explain(exc: ValidationError, etype: EventType) -> tuple[str, str]:
    """(field, reason) of fastavro's first failure: the envelope field, or `payload.<field>`, with what
    the schema expected (every branch of a union: "null or string")."""
    errors = [e for e in exc.errors if hasattr(e, "field") and hasattr(e, "schema")]
    if not errors:
        return "(record)", str(exc)[:200]
    first = errors[0]
    record, _, name = first.field.rpartition(".")
    if name == "payload" and record == etype.family:  # the union failed as a whole
        return _payload_fault(etype)
    path = name if record == etype.family else f"payload.{name}"
    expected = " or ".join(dict.fromkeys(_schema_name(e.schema) for e in errors if e.field == first.field))
    return path, f"{_short(first.datum)} of type {type(first.datum).__name__}, expected {expected}"


def _schema_name(schema) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("logicalType") or schema.get("type"))
    if isinstance(schema, list):
        return " or ".join(_schema_name(s) for s in schema)
    return str(schema)


def _payload_fault(etype: EventType) -> tuple[str, str]:
    return "payload", f"does not match {etype.branch} (a field has the wrong type)"


def encode(event: Event) -> bytes:
    family, record = to_record(event)
    return codec.encode(family, record)


def decode(data: bytes) -> Event:
    """Decodes a framed message into an Event; raises codec.DecodeError or InvalidEvent."""
    name, record = codec.decode(data)
    if "payload" not in record or "event_id" not in record:
        raise codec.DecodeError("not_an_event", f"{name} is not an event family")
    etype = event_types().get(record["type"])
    if etype is None or etype.family != name:
        raise codec.DecodeError("type_mismatch", f"type {record['type']!r} does not belong to {name}")
    return Event(
        event_id=_to_domain(record["event_id"]), type=record["type"], occurred_at=_to_domain(record["occurred_at"]),
        source=record["source"], session_id=record["session_id"], customer_id=record["customer_id"],
        order_id=record["order_id"], payload=_to_domain(record["payload"]),
    )
