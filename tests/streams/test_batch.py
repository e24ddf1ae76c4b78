"""The batch runtime under Faust's test_context(): events folded in one batch write each changed key
once (the latest value), a raising handler discards only its own event, and at the flush a compacted
topic gets the latest message per key while every other send is kept, in order; no write reaches a
table before every send of its batch is acknowledged, none at all when a send fails, and a key is
read from the store once per batch."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import uuid

import pytest

os.environ.setdefault("POSVENDA_DATA_DIR", "/tmp/posvenda-streams-tests")

from projections import funnel
from streams import decoding, sessions, unit_of_work
from streams.app import topic
from tests.streams.polling import eventually
from topics import catalogue
from topics.events import Event, encode

# The table store persists between runs, and the funnel counts between tests: a day of its own each run.
T0 = 946_728_000_000 + random.randrange(9000) * 86_400_000
BOOM = "/p/boom"


def view(session: str, product: str, t: int, path: str | None = None) -> Event:
    return Event(str(uuid.uuid4()), "page_viewed", T0 + t, "web", session, None, None,
                 {"page_type": "product", "path": path or f"/p/{product}", "product_id": product})


async def refuse_boom(event, partition):
    if event.payload.get("path") == BOOM:
        raise ValueError("cannot handle this page")


@pytest.fixture
def batch_of(monkeypatch):
    """Batches of exactly `n` events: the batch is folded when its n-th event arrives."""
    def configure(n: int) -> None:
        monkeypatch.setattr(decoding, "settings", dataclasses.replace(decoding.settings, batch_max_events=n,
                                                                      batch_within_seconds=60.0))
    monkeypatch.setattr(sessions, "catalogue_entry", lambda name, candidates: candidates[0])
    return configure


@pytest.fixture
def table_writes(monkeypatch):
    """[(table name, key, value)] of every write that reached a table's store."""
    writes = []
    set_now = unit_of_work.BufferedTable.set_now

    def record(self, key, value):
        writes.append((self.name, key, value))
        set_now(self, key, value)

    monkeypatch.setattr(unit_of_work.BufferedTable, "set_now", record)
    return writes


@pytest.fixture
def produced(monkeypatch):
    """[(topic name, key, value)] of every send that left a unit, captured instead of produced."""
    out = []

    async def send_now(self, key=None, value=None, **kwargs):
        out.append((self.topics[0], key, value))
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)  # acknowledged at once
        return delivered

    monkeypatch.setattr(unit_of_work.BufferedTopic, "send_now", send_now)
    return out


@pytest.fixture
def dead_letters(monkeypatch):
    out = []

    async def dead_letter(source, message, reason, detail, event_id=None):
        out.append((reason, event_id))

    monkeypatch.setattr("streams.decoding.send_to_dead_letters", dead_letter)
    return out


@pytest.mark.asyncio
async def test_two_events_on_one_key_in_a_batch_write_the_key_once_with_the_latest_value(
        monkeypatch, batch_of, table_writes, produced, dead_letters):
    session = f"s-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [funnel.apply]})
    batch_of(2)
    async with sessions.fold_sessions.test_context() as agent:
        await agent.put(key=session.encode(), value=encode(view(session, "p-1", 0)))
        await agent.put(key=session.encode(), value=encode(view(session, "p-2", 1000)))
        await eventually(lambda: any(key == session for _, key, _ in table_writes), "the batch to be flushed")
    writes = [value for name, key, value in table_writes if name == "funnel-sessions" and key == session]
    assert len(writes) == 1, writes
    assert writes[0]["viewed"] == ["p-1", "p-2"], "the one write holds both events"
    assert dead_letters == []


@pytest.mark.asyncio
async def test_a_raising_handler_in_the_middle_of_a_batch_discards_only_its_event(
        monkeypatch, batch_of, table_writes, produced, dead_letters):
    session = f"s-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [funnel.apply, refuse_boom]})
    batch_of(3)
    boom = view(session, "p-9", 1000, BOOM)
    async with sessions.fold_sessions.test_context() as agent:
        await agent.put(key=session.encode(), value=encode(view(session, "p-1", 0)))
        await agent.put(key=session.encode(), value=encode(boom))
        await agent.put(key=session.encode(), value=encode(view(session, "p-3", 2000)))
        await eventually(lambda: any(key == session for _, key, _ in table_writes), "the batch to be flushed")
    writes = [value for name, key, value in table_writes if name == "funnel-sessions" and key == session]
    assert [w["viewed"] for w in writes] == [["p-1", "p-3"]], "the events around the failure folded, once"
    assert dead_letters == [("handler_error", boom.event_id)]
    assert not any(b"p-9" in (key or b"") for _, key, _ in produced), "the discarded event sent nothing"


@pytest.mark.asyncio
async def test_a_compacted_topic_gets_the_latest_message_per_key_and_other_sends_are_all_kept(
        monkeypatch, batch_of, table_writes, produced, dead_letters):
    sessions_seen = [f"s-{uuid.uuid4().hex[:8]}" for _ in range(2)]

    async def project_and_trigger(event, partition):
        """Per event: the session's record on a compacted projection, and a trigger (not compacted)."""
        value = event.payload["product_id"].encode()
        await topic(catalogue.PROJECTION_VISITS).send(key=event.session_id.encode(), value=value)
        await topic(catalogue.RECOVERY_ACTIONS).send(key=event.session_id.encode(), value=value)

    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [project_and_trigger]})
    batch_of(4)
    a, b = sessions_seen
    views = [view(a, "p-1", 0), view(b, "p-2", 0), view(a, "p-3", 1000), view(b, "p-4", 1000)]
    async with sessions.fold_sessions.test_context() as agent:
        for v in views:
            await agent.put(key=v.session_id.encode(), value=encode(v))
        await eventually(lambda: len(produced) >= 6, "the batch's sends")
    projections = [(key, value) for name, key, value in produced if name.endswith(catalogue.PROJECTION_VISITS.name)]
    triggers = [(key, value) for name, key, value in produced if name.endswith(catalogue.RECOVERY_ACTIONS.name)]
    assert sorted(projections) == sorted([(a.encode(), b"p-3"), (b.encode(), b"p-4")]), "the latest per key, once"
    assert triggers == [(v.session_id.encode(), v.payload["product_id"].encode()) for v in views], "all, in order"
    assert len(produced) == 6 and dead_letters == []


@pytest.fixture
def held_sends(monkeypatch):
    """Sends whose acknowledgement the test gives (or fails) by hand: [(key, future)]."""
    held = []

    async def send_now(self, key=None, value=None, **kwargs):
        delivered = asyncio.get_running_loop().create_future()
        held.append((key, delivered))
        return delivered

    monkeypatch.setattr(unit_of_work.BufferedTopic, "send_now", send_now)
    return held


async def project(event, partition):
    await funnel.apply(event, partition)
    await topic(catalogue.PROJECTION_VISITS).send(key=event.session_id.encode(), value=b"seen")


@pytest.mark.asyncio
async def test_the_writes_of_a_batch_wait_until_every_send_is_acknowledged(
        monkeypatch, batch_of, table_writes, held_sends, dead_letters):
    session = f"s-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [project]})
    batch_of(1)
    async with sessions.fold_sessions.test_context() as agent:
        await agent.put(key=session.encode(), value=encode(view(session, "p-1", 0)))
        await eventually(lambda: held_sends, "the batch's send")
        await asyncio.sleep(0.2)
        assert not any(key == session for _, key, _ in table_writes), "written before the send was acknowledged"
        for _, delivered in held_sends:
            delivered.set_result(None)
        await eventually(lambda: any(key == session for _, key, _ in table_writes), "the write after the ack")


@pytest.mark.asyncio
async def test_a_failed_send_leaves_every_table_as_it_was(monkeypatch, batch_of, table_writes, held_sends,
                                                          dead_letters):
    session = f"s-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [project]})
    batch_of(1)
    async with sessions.fold_sessions.test_context() as agent:
        await agent.put(key=session.encode(), value=encode(view(session, "p-1", 0)))
        await eventually(lambda: held_sends, "the batch's send")
        held_sends[0][1].set_exception(RuntimeError("broker refused the message"))
        for _, delivered in held_sends[1:]:
            delivered.set_result(None)
        await asyncio.sleep(0.3)
    assert not any(key == session for _, key, _ in table_writes), "a write survived a failed send"


@pytest.mark.asyncio
async def test_a_key_is_read_from_the_store_once_per_batch(monkeypatch, batch_of, table_writes, produced, dead_letters):
    import faust

    absent, reads = f"nobody-{uuid.uuid4().hex[:8]}", []
    store_read = faust.Table.__getitem__

    def counting(self, key):
        if key == absent:
            reads.append(key)
        return store_read(self, key)

    async def look_up(event, partition):
        assert funnel.sessions_table.get(absent) is None and absent not in funnel.sessions_table

    monkeypatch.setattr(faust.Table, "__getitem__", counting)
    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [look_up, funnel.apply]})
    batch_of(3)
    session = f"s-{uuid.uuid4().hex[:8]}"
    async with sessions.fold_sessions.test_context() as agent:
        for t in range(3):
            await agent.put(key=session.encode(), value=encode(view(session, f"p-{t}", t * 1000)))
        await eventually(lambda: any(key == session for _, key, _ in table_writes), "the batch to be flushed")
    assert reads == [absent], "three events asked, the store was read once"


@pytest.mark.asyncio
async def test_while_a_flush_waits_for_its_sends_a_reader_outside_sees_its_writes(
        monkeypatch, batch_of, table_writes, held_sends, dead_letters):
    """A rebuild of derived counts from the table (projections/derived.py) must see a batch whose moves
    were already counted, even before its writes reach the store."""
    session = f"s-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [project]})
    batch_of(1)
    async with sessions.fold_sessions.test_context() as agent:
        await agent.put(key=session.encode(), value=encode(view(session, "p-1", 0)))
        await eventually(lambda: held_sends, "the batch's send")
        assert not any(key == session for _, key, _ in table_writes), "the store was written before the ack"
        assert session in dict(funnel.sessions_table.items()), "a reader outside the batch missed its write"
        for _, delivered in held_sends:
            delivered.set_result(None)
        await eventually(lambda: any(key == session for _, key, _ in table_writes), "the write after the ack")
