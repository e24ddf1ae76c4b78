"""Hostile lines mixed with valid ones (hypothesis): ingest parses every line without a traceback,
reports every bad line by its number, and keeps every valid line with its event id.

The strategies are shared with the broker test (tests/faults/test_poison.py), which publishes such
files and reads the valid events back from the topics."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posvenda.ingest import Rejection, parse_lines
from posvenda.simulate import generate
from topics import events

START_MS = 1_741_611_600_000  # 2025-03-10T13:00Z
VALID = [events.to_json(e) for e in generate(5, 40, START_MS)]
STRING_FIELDS = ("source", "session_id", "customer_id", "order_id")


@dataclass(frozen=True)
class Line:
    raw: bytes
    event_id: str | None  # the id of a valid line, None for a hostile one


def dump(obj) -> bytes:
    return json.dumps(obj).encode()


@st.composite
def valid_lines(draw) -> Line:
    obj = {**draw(st.sampled_from(VALID)), "event_id": str(draw(st.uuids()))}
    return Line(dump(obj), obj["event_id"])


def _with(obj: dict, path: tuple, value) -> dict:
    out = json.loads(json.dumps(obj))
    target = out
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    return out


def _numeric_paths(obj: dict) -> list[tuple]:
    return [("payload", k) for k, v in obj["payload"].items() if isinstance(v, float)]


def _string_paths(obj: dict) -> list[tuple]:
    paths = [(k,) for k in STRING_FIELDS if isinstance(obj.get(k), str)]
    free_text = {"comment", "subject"}
    return paths + [("payload", k) for k, v in obj["payload"].items() if isinstance(v, str) and k not in free_text]


@st.composite
def hostile_lines(draw) -> Line:
    """A line no rule may let through: each kind is bad whatever the draw."""
    obj = {**draw(st.sampled_from(VALID)), "event_id": str(draw(st.uuids()))}
    kind = draw(st.sampled_from(["bytes", "utf8", "nested", "truncated", "list_for_string", "non_finite", "huge",
                                 "negative", "control", "timestamp", "not_object", "big_int"]))
    if kind == "bytes":
        raw = draw(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b.strip() and not _is_object(b)))
        return Line(raw, None)
    if kind == "utf8":
        return Line(dump(obj)[:-2] + b"\xff\xfe" + dump(obj)[-2:], None)
    if kind == "nested":
        depth = draw(st.integers(min_value=1_100, max_value=50_000))
        return Line(b'{"event_id": ' + b"[" * depth + b"]" * depth + b"}", None)
    if kind == "truncated":
        raw = dump(obj)
        return Line(raw[:draw(st.integers(min_value=1, max_value=len(raw) - 1))], None)
    if kind == "list_for_string":
        path = draw(st.sampled_from(_string_paths(obj)))
        return Line(dump(_with(obj, path, [draw(st.text(max_size=5))])), None)
    if kind == "control":
        path = draw(st.sampled_from(_string_paths(obj)))
        control = chr(draw(st.integers(min_value=0, max_value=31)))
        return Line(dump(_with(obj, path, f"a{control}b")), None)
    if kind == "timestamp":
        ms = draw(st.one_of(st.integers(max_value=946_684_799_999), st.integers(min_value=10**14)))
        return Line(dump({**obj, "occurred_at": ms}), None)
    if kind == "not_object":
        return Line(dump(draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=10), st.integers()))), None)
    if kind == "big_int":
        return Line(dump(obj).replace(b'"payload"', b'"n": ' + b"9" * 5000 + b', "payload"', 1), None)
    numbers = _numeric_paths(obj)
    if not numbers:  # this event has no amount: make it hostile another way
        return Line(dump({**obj, "source": ["web"]}), None)
    path = draw(st.sampled_from(numbers))
    value = {"non_finite": draw(st.sampled_from([math.nan, math.inf, -math.inf])),
             "huge": draw(st.floats(min_value=1e7 + 1, max_value=1e308)),
             "negative": draw(st.floats(max_value=-0.01, min_value=-1e6))}[kind]
    return Line(dump(_with(obj, path, value)), None)


def _is_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


mixed_files = st.lists(st.one_of(valid_lines(), hostile_lines()), min_size=1, max_size=25)


def check_parsed(lines: list[Line], results: list) -> None:
    """Every line has its result at its number: valid ones as events with their id, the rest rejected."""
    assert len(results) == len(lines)
    for number, (line, result) in enumerate(zip(lines, results, strict=True), start=1):
        if line.event_id is None:
            assert isinstance(result, Rejection) and result.line == number, (number, line.raw[:120], result)
            assert result.field and result.reason
        else:
            assert isinstance(result, events.Event) and result.event_id == line.event_id, (number, result)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mixed_files)
def test_every_hostile_line_is_reported_and_every_valid_line_kept(lines):
    results = list(parse_lines(line.raw for line in lines))
    check_parsed(lines, results)
