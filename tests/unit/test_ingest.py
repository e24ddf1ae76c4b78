"""Ingest validation: each kind of bad line is named by line number, field and reason."""
import json
import uuid
from datetime import UTC, datetime

import pytest

from posvenda.ingest import Rejection, parse_lines
from topics.events import Event


def good(**changes):
    line = {"event_id": str(uuid.uuid4()), "type": "page_viewed", "occurred_at": "2026-11-20T13:45:10.123Z",
            "source": "web", "session_id": "s-1", "payload": {"page_type": "product", "path": "/p/1", "product_id": "p-1"}}
    line.update(changes)
    return json.dumps(line)


def payload(**changes):
    base = {"page_type": "product", "path": "/p/1", "product_id": "p-1"}
    base.update(changes)
    return base


@pytest.mark.parametrize(("line", "field", "reason_part"), [
    ('{"event_id": "x", "type": ', "(line)", "malformed JSON"),
    ("[1, 2]", "(line)", "expected a JSON object"),
    (good(type="order_teleported"), "type", "unknown event type"),
    (good(event_id="not-a-uuid"), "event_id", "not a UUID"),
    (good(occurred_at="yesterday"), "occurred_at", "Invalid isoformat"),
    (good(occurred_at="2026-11-20T13:45:10"), "occurred_at", "no timezone"),
    (good(source="fax"), "source", "is not one of"),
    (good(payload={"page_type": "product"}), "payload.path", "missing required field"),
    (good(payload=payload(path=42)), "payload.path", "42 of type int, expected string"),
    (good(payload=payload(product_id={"a": 1})), "payload.product_id", "of type dict, expected null or string"),
    (good(payload=payload(colour="red")), "payload.colour", "not a field of PageViewed"),
    (good(shoe_size=42), "shoe_size", "not an envelope field"),
    (good(source=["web"]), "source", "is not one of"),
    (good(session_id=["s-1"]), "session_id", "['s-1'] of type list, expected null or string"),
    (good(occurred_at=10**20), "occurred_at", "outside the years 1..9999"),
    (good(occurred_at=-10**16), "occurred_at", "outside the years 1..9999"),
    (good(occurred_at="1900-01-01T00:00:00Z"), "occurred_at", "before 2000"),
    (good(payload=payload(path="/p/\u0000")), "payload.path", "control character U+0000"),
    (good().encode()[:-3] + b"\xff\"}", "(line)", "not UTF-8"),
    ('{"event_id": ' + "[" * 100_000 + "]" * 100_000 + "}", "(line)", "nested too deeply"),
])
def test_each_kind_of_bad_line_is_rejected_with_its_field(line, field, reason_part):
    (result,) = parse_lines([line])
    assert isinstance(result, Rejection)
    assert result.line == 1 and result.field == field and reason_part in result.reason, result


def test_missing_envelope_field():
    obj = json.loads(good())
    del obj["occurred_at"]
    (result,) = parse_lines([json.dumps(obj)])
    assert (result.field, result.reason) == ("occurred_at", "missing required field")


def test_valid_lines_keep_their_id_and_time_and_bad_ones_are_numbered():
    ok = good()
    results = list(parse_lines([ok, "", "{oops", good(source="fax")]))
    assert isinstance(results[0], Event)
    assert results[0].event_id == json.loads(ok)["event_id"]
    expected = datetime(2026, 11, 20, 13, 45, 10, 123000, tzinfo=UTC).timestamp() * 1000
    assert results[0].occurred_at == int(expected)
    assert [(r.line, r.field) for r in results[1:]] == [(3, "(line)"), (4, "source")]
