"""Single-object Avro framing: round trips for every event type, and clear reasons for bad bytes."""
import uuid

import fastavro
import pytest

from topics import codec, events, schemas

NOW = 1_795_514_400_000


def sample_value(schema, name):
    if isinstance(schema, list):
        return sample_value([t for t in schema if t != "null"][0], name)
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis":
            return NOW + 3_600_000
        if schema.get("logicalType") == "date":
            return "1990-05-17"
        if schema["type"] == "array":
            return [sample_value(schema["items"], name)]
        if schema["type"] == "map":
            return {"k": sample_value(schema["values"], name)}
        if schema["type"] == "record":
            return {f["name"]: sample_value(f["type"], f["name"]) for f in schema["fields"]}
        return sample_value(schema["type"], name)
    return {"string": f"{name}-x", "int": 3, "long": 4, "double": 12.5, "boolean": True}[schema]


def resolve_named(branch_schema):
    """ReturnItem is referenced by name in OrderReturned: use its definition for sample values."""
    import json

    text = json.dumps(branch_schema).replace('"items": "ReturnItem"', '"items": {"type": "record", "name": "R", '
                                             '"fields": [{"name": "product_id", "type": "string"}, {"name": "quantity", "type": "int"}]}')
    return json.loads(text)


@pytest.mark.parametrize("type_name", sorted(events.event_types()))
def test_every_event_type_round_trips(type_name):
    etype = events.event_type(type_name)
    payload = sample_value(resolve_named(etype.branch_schema), "payload")
    event = events.Event(str(uuid.uuid4()), type_name, NOW, "web", "s-1", "c-1", "o-1", payload)
    data = events.encode(event)
    assert data[:2] == codec.MAGIC and data[2:10] == schemas.get(etype.family).fingerprint
    assert events.decode(data) == events.from_json(events.to_json(event))
    assert events.decode(data).payload == events.from_json(events.to_json(event)).payload


@pytest.mark.parametrize("name", ["posvenda.recovery.RecoveryAction", "posvenda.alerts.AlertEvent"])
def test_trigger_records_round_trip(name):
    raw = schemas.get(name).raw
    record = sample_value(raw, "r")
    import datetime as dt

    for field in raw["fields"]:
        if isinstance(field["type"], dict) and field["type"].get("logicalType") == "timestamp-millis":
            record[field["name"]] = dt.datetime.fromtimestamp(record[field["name"]] / 1000, dt.UTC)
    assert codec.decode(codec.encode(name, record)) == (name, record)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "truncated"),
    (b"not avro at all", "bad_magic"),
    (codec.MAGIC + b"\x00" * 8 + b"body", "unknown_schema"),
])
def test_bad_bytes_get_a_reason(data, reason):
    with pytest.raises(codec.DecodeError) as caught:
        codec.decode(data)
    assert caught.value.reason == reason


def test_a_truncated_body_is_corrupt():
    event = events.Event(str(uuid.uuid4()), "nps_answered", NOW, "crm", None, "c-1", "o-1", {"score": 9, "comment": "ótimo"})
    data = events.encode(event)
    with pytest.raises(codec.DecodeError) as caught:
        codec.decode(data[:-4])
    assert caught.value.reason == "corrupt_body"


def test_valid_avro_of_the_wrong_record_is_not_an_event():
    name = "posvenda.alerts.AlertEvent"
    record = sample_value(schemas.get(name).raw, "r")
    record["occurred_at"] = NOW
    with pytest.raises(codec.DecodeError) as caught:
        events.decode(codec.encode(name, record))
    assert caught.value.reason == "not_an_event"


def test_an_old_writer_schema_is_resolved_by_fingerprint(tmp_path, monkeypatch):
    """A message written with a past release decodes with the current schema (new field gets its default)."""
    import json

    old = json.loads(json.dumps(schemas.get("posvenda.feedback.FeedbackEvent").raw))
    nps = old["fields"][-1]["type"][0]
    nps["fields"] = [f for f in nps["fields"] if f["name"] != "comment"]  # v0 had no comment
    parsed = fastavro.parse_schema(old)
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(old), "CRC-64-AVRO"))
    index = dict(schemas.by_fingerprint())
    index[fp] = schemas.Schema("posvenda.feedback.FeedbackEvent", old, parsed, fp, tmp_path / "v0.avsc")
    monkeypatch.setattr(schemas, "by_fingerprint", lambda: index)
    import io

    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, {"event_id": str(uuid.uuid4()), "type": "nps_answered", "occurred_at": NOW,
                                              "source": "crm", "session_id": None, "customer_id": "c-9", "order_id": None,
                                              "payload": {"score": 10}})
    event = events.decode(codec.MAGIC + fp + body.getvalue())
    assert event.payload == {"score": 10, "comment": None} and event.customer_id == "c-9"
