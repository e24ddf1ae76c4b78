"""The sessions agent under Faust's test_context(): decoding, dispatch to the funnel fold, and the
dead-letter path, without a broker (the e2e and fault suites cover the real one)."""
from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("POSVENDA_DATA_DIR", "/tmp/posvenda-streams-tests")

from projections import funnel
from streams import sessions
from topics.events import Event, encode

T0 = 1_741_611_600_000
ANDROID = "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36"


SESSION = f"s-{uuid.uuid4().hex[:8]}"  # the table store persists between runs: a new session each time


def event(type_, payload, t=0):
    return Event(str(uuid.uuid4()), type_, T0 + t, "web", SESSION, None, None, payload)


@pytest.mark.asyncio
async def test_the_agent_folds_session_events_into_the_funnel_state(monkeypatch):
    sent = []

    async def dead_letter(source, message, reason, detail, event_id=None):
        sent.append(reason)

    monkeypatch.setattr("streams.decoding.send_to_dead_letters", dead_letter)
    published = []

    class ProjectionTopic:  # the compacted projection topic, captured instead of produced
        async def send(self, key, value):
            published.append((key, value))

    monkeypatch.setattr(funnel, "topic", lambda entry: ProjectionTopic())
    # only the funnel read model (other test modules may have imported more, which would produce)
    monkeypatch.setattr("streams.handlers._handlers", {"sessions": [funnel.apply]})
    # test_context() feeds an in-memory channel (topic "<internal>"): treat it as visits.events
    monkeypatch.setattr(sessions, "catalogue_entry", lambda name, candidates: candidates[0])
    async with sessions.fold_sessions.test_context() as agent:
        await agent.put(key=SESSION.encode(), value=encode(event("session_started", {
            "user_agent": ANDROID, "channel": "email", "utm_source": None, "utm_campaign": None, "landing_page": "/"})))
        await agent.put(key=SESSION.encode(), value=encode(event("page_viewed", {
            "page_type": "product", "path": "/p/7", "product_id": "p-7"}, 1000)))
        await agent.put(key=SESSION.encode(), value=b"garbage, not avro at all")
        state = funnel.sessions_table[SESSION]
    assert state["device"] == "mobile" and state["channel"] == "email"
    assert state["steps"] == ["product_page"] and state["viewed"] == ["p-7"]
    assert sent == ["bad_magic"]
    assert any(key.startswith(b"all|2025-03-10|all|product_page|") for key, _ in published), published
