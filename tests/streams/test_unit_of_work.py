"""A handler that raises under Faust's test_context(): the event is dead-lettered as handler_error and
every write and send of the group's handlers for it is discarded; the next events fold as usual."""
from __future__ import annotations

import json
import os
import random
import uuid

import pytest

os.environ.setdefault("POSVENDA_DATA_DIR", "/tmp/posvenda-streams-tests")

from projections import funnel
from streams import sessions, unit_of_work
from topics.events import Event, encode

# The table store persists between runs, and the funnel counts between tests: a new session on a day
# of its own (between 2000 and 2024) each time.
T0 = 946_728_000_000 + random.randrange(9000) * 86_400_000
SESSION = f"s-{uuid.uuid4().hex[:8]}"
BOOM = "/p/boom-9"


def view(path, product, t):
    return Event(str(uuid.uuid4()), "page_viewed", T0 + t, "web", SESSION, None, None,
                 {"page_type": "product", "path": path, "product_id": product})


async def refuse_boom(event, partition):
    """A read model that cannot handle one page: raises after funnel.apply wrote and sent for it."""
    if event.payload.get("path") == BOOM:
        raise ValueError(f"cannot handle {event.payload['path']} of {event.session_id}")


@pytest.mark.asyncio
async def test_a_raising_handler_discards_the_whole_event_and_the_partition_goes_on(monkeypatch):
    dead = []

    async def dead_letter(source, message, reason, detail, event_id=None):
        dead.append((reason, detail))

    monkeypatch.setattr("streams.decoding.send_to_dead_letters", dead_letter)
    published = []

    async def send_now(self, key=None, value=None, **kwargs):  # what leaves the unit, captured, not produced
        published.append((key, value))

    monkeypatch.setattr(unit_of_work.BufferedTopic, "send_now", send_now)
    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [funnel.apply, refuse_boom]})
    monkeypatch.setattr(sessions, "catalogue_entry", lambda name, candidates: candidates[0])
    async with sessions.fold_sessions.test_context() as agent:
        await agent.put(key=SESSION.encode(), value=encode(view(BOOM, "p-9", 0)))
        assert funnel.sessions_table.get(SESSION) is None, "the discarded event wrote nothing"
        await agent.put(key=SESSION.encode(), value=encode(view("/p/7", "p-7", 1000)))
        state = funnel.sessions_table[SESSION]
    assert state["viewed"] == ["p-7"], "only the event after the failure is folded"
    assert [reason for reason, _ in dead] == ["handler_error"]
    detail = dead[0][1]
    assert detail.startswith("ValueError: cannot handle <payload.path> of <session_id>"), detail
    assert SESSION not in detail and BOOM not in detail
    assert published and not any(b"p-9" in key for key, _ in published), published
    (all_views,) = [json.loads(value)["sessions"] for key, value in published if key.startswith(b"all|")]
    assert all_views == 1, "the funnel count moved for the discarded event was undone"
