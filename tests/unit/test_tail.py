"""`posvenda tail`'s lines, built from messages without a broker: decoding, dead letters, selection."""
from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from posvenda import cmd_dlq, cmd_tail
from topics import catalogue, codec, events, personal_data

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "events.sample.jsonl"


def sample_events() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


def record(partition=0, offset=0, timestamp=1_764_000_000_000, key=b"k", value=None, headers=()):
    return SimpleNamespace(partition=partition, offset=offset, timestamp=timestamp, key=key, value=value,
                           headers=list(headers))


@pytest.mark.parametrize("obj", sample_events(), ids=lambda o: o["type"])
def test_an_avro_event_is_printed_in_its_ingest_json_form(obj):
    # Given an event of the sample file, encoded as it travels on its topic
    value = events.encode(events.from_json(obj))
    # When tail decodes it
    shown = cmd_tail.decode_value(value)
    # Then the line holds the event as the ingest file gave it (fields it left out at their schema
    # defaults), and its schema's name
    branch = events.event_type(obj["type"]).branch_schema
    defaults = {f["name"]: f["default"] for f in branch["fields"] if "default" in f}
    assert shown["value"] == {**obj, "payload": {**defaults, **obj["payload"]}}
    assert shown["schema"] == events.event_type(obj["type"]).family


def test_a_sealed_personal_field_is_printed_sealed():
    # Given a registration whose personal fields are sealed under the customer's key
    obj = next(o for o in sample_events() if o["type"] == "customer_registered")
    sealed = personal_data.seal(events.from_json(obj), personal_data.new_key(obj["customer_id"]))
    # When tail decodes it
    shown = cmd_tail.decode_value(events.encode(sealed))
    # Then the sealed strings come out as they are, and the clear name and e-mail appear nowhere
    text = json.dumps(shown)
    assert shown["value"]["payload"]["name"] == sealed.payload["name"]
    assert shown["value"]["payload"]["name"].startswith("pd1:")
    assert obj["payload"]["name"] not in text and obj["payload"]["email"] not in text


def test_an_avro_record_that_is_not_an_event_has_its_times_in_iso_form():
    # Given a recovery action on recovery.actions
    due = dt.datetime(2026, 11, 20, 13, 0, tzinfo=dt.UTC)
    action = {"action_id": "ch-1:reminder", "type": "send_payment_reminder", "step": "reminder",
              "charge_id": "ch-1", "order_id": "o-1", "customer_id": None, "method": "boleto", "amount": 219.8,
              "due_at": due, "scheduled_at": due - dt.timedelta(hours=14), "channels": ["email"]}
    # When tail decodes it
    shown = cmd_tail.decode_value(codec.encode("posvenda.recovery.RecoveryAction", action))
    # Then every field is there and the instants are ISO-8601 UTC
    assert shown["schema"] == "posvenda.recovery.RecoveryAction"
    assert shown["value"]["due_at"] == "2026-11-20T13:00:00.000Z"
    assert shown["value"]["scheduled_at"] == "2026-11-19T23:00:00.000Z"
    assert {k: v for k, v in shown["value"].items() if k not in ("due_at", "scheduled_at")} == \
        {k: v for k, v in action.items() if k not in ("due_at", "scheduled_at")}


def test_json_values_tombstones_and_undecodable_bytes():
    assert cmd_tail.decode_value(b'{"order_id": "o-1", "status": "paid"}') == {"value": {"order_id": "o-1", "status": "paid"}}
    assert cmd_tail.decode_value(None) == {"value": None}
    garbage = b"\xc3\x01\x00\x01\x02"  # the Avro marker, then too short for a fingerprint
    shown = cmd_tail.decode_value(garbage)
    assert shown["error"].startswith("truncated")
    assert base64.b64decode(shown["value_base64"]) == garbage
    shown = cmd_tail.decode_value(b"\xff\xfe not json")
    assert "neither Avro single-object nor JSON" in shown["error"]
    assert base64.b64decode(shown["value_base64"]) == b"\xff\xfe not json"


def test_a_dead_letter_shows_its_dlq_headers_and_raw_value():
    # Given a dead letter as streams/deadletter.py writes it, plus a header that is not ours
    raw = b"\x00\x01 poison"
    headers = [("dlq.reason", b"corrupt_body"), ("dlq.detail", b"EOFError"), ("dlq.source.topic", b"t.orders.events"),
               ("dlq.source.partition", b"1"), ("dlq.source.offset", b"7"), ("traceparent", b"00-abc")]
    message = record(partition=0, offset=3, timestamp=1_764_000_000_000, key=b"o-1", value=raw, headers=headers)
    # When tail formats it
    line = cmd_tail.message_line(catalogue.ORDERS.dead_letters, message)
    # Then the line has its coordinates, the dlq.* headers in clear and the raw bytes in base64
    assert line == {"topic": "orders.events.dlq", "partition": 0, "offset": 3, "timestamp": "2025-11-24T16:00:00.000Z",
                    "key": "o-1", "headers": {"dlq.reason": "corrupt_body", "dlq.detail": "EOFError",
                                              "dlq.source.topic": "t.orders.events", "dlq.source.partition": "1",
                                              "dlq.source.offset": "7"},
                    "value_base64": base64.b64encode(raw).decode()}


def test_a_projection_line_carries_partition_offset_timestamp_and_key():
    message = record(partition=1, offset=42, timestamp=0, key=b"o-9", value=None)
    assert cmd_tail.message_line(catalogue.PROJECTION_ORDERS, message) == {
        "topic": "projections.orders", "partition": 1, "offset": 42, "timestamp": "1970-01-01T00:00:00.000Z",
        "key": "o-9", "value": None}


def test_the_newest_n_over_partitions_come_out_oldest_first():
    # Given two partitions whose messages interleave in time
    p0 = [record(0, o, t) for o, t in ((0, 100), (1, 300), (2, 500))]
    p1 = [record(1, o, t) for o, t in ((0, 200), (1, 400), (2, 600))]
    # When the newest four are taken
    picked = cmd_tail.newest({0: p0, 1: p1}, 4)
    # Then they are the messages of times 300..600, in time order
    assert [m.timestamp for m in picked] == [300, 400, 500, 600]
    assert cmd_tail.newest({0: p0, 1: p1}, 0) == []


def test_an_unknown_topic_name_lists_the_catalogue():
    with pytest.raises(cmd_tail.UnknownTopic, match="orders.events.dlq"):
        cmd_tail.catalogue_topic("orders.event")


def test_a_dead_letter_goes_back_only_to_its_own_source_topic():
    def dead_letter(**headers):
        return record(partition=2, offset=9, headers=[(k.replace("_", "."), v.encode()) for k, v in headers.items()])

    good = cmd_dlq.plan(dead_letter(dlq_reason="handler_error", dlq_source_topic="p.orders.events",
                                    dlq_source_partition="1"), "p.orders.events")
    assert (good.target, good.partition, good.reason, good.problem) == ("p.orders.events", 1, "handler_error", None)
    elsewhere = cmd_dlq.plan(dead_letter(dlq_reason="x", dlq_source_topic="p.payments"), "p.orders.events")
    assert elsewhere.target is None and "is not 'p.orders.events'" in elsewhere.problem
    no_source = cmd_dlq.plan(dead_letter(dlq_reason="x"), "p.orders.events")
    assert no_source.target is None and "no dlq.source.topic" in no_source.problem
    assert cmd_dlq.partition_offset("3:17") == (3, 17)
    with pytest.raises(ValueError):
        cmd_dlq.partition_offset("3-17")
