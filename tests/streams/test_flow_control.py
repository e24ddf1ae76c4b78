"""The app's flow control keeps the agents' buffered events when flow resumes and empties the buffers
only when Faust suspends flow (rebalance, shutdown): resuming at the end of a rebalance used to drop
events fetched from the committed offset, which Faust then skipped as already read (lost events)."""
from __future__ import annotations

import asyncio

import pytest
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams.app import KeepBuffersOnResume, app  # tests/conftest.py gives the app its own data dir and prefix


def buffered(flow: FlowControlEvent) -> FlowControlQueue:
    """A buffer as Faust makes one for an agent's channel, holding two fetched events."""
    buffer = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    buffer.put_nowait("fetched from the committed offset")
    buffer.put_nowait("the next one")
    return buffer


def drain(buffer: FlowControlQueue) -> list[str]:
    return [buffer.get_nowait() for _ in range(buffer.qsize())]


def test_the_app_uses_the_flow_control_that_keeps_buffers_on_resume():
    assert isinstance(app.flow_control, KeepBuffersOnResume)
    assert list(app.flow_control.cleared_on_resume()) == [app.tables.changelog_queue]  # as before for recovery


@pytest.mark.asyncio
async def test_the_stock_flow_control_drops_buffered_events_on_resume():
    """What Faust's end of recovery (seek to the committed offsets, then resume) did to fetched events."""
    flow = FlowControlEvent()
    buffer = buffered(flow)
    flow.resume()
    assert drain(buffer) == []


@pytest.mark.asyncio
async def test_resuming_keeps_the_buffered_events():
    flow = KeepBuffersOnResume()
    buffer = buffered(flow)
    flow.resume()
    assert flow.is_active()
    assert drain(buffer) == ["fetched from the committed offset", "the next one"]


@pytest.mark.asyncio
async def test_the_queues_named_cleared_on_resume_are_still_emptied_on_resume():
    changelog = []
    flow = KeepBuffersOnResume(cleared_on_resume=lambda: changelog)
    agent_buffer, changelog_buffer = buffered(flow), buffered(flow)
    changelog.append(changelog_buffer)
    flow.resume()
    assert drain(changelog_buffer) == [] and len(drain(agent_buffer)) == 2


@pytest.mark.asyncio
async def test_suspend_then_clear_still_empties_the_buffers_and_resume_lets_producers_in():
    """A rebalance or shutdown (App._on_partitions_revoked, App._stop_consumer): suspend, then clear."""
    flow = KeepBuffersOnResume()
    buffer = buffered(flow)
    flow.suspend()
    flow.clear()
    assert not flow.is_active() and drain(buffer) == []
    waiter = asyncio.ensure_future(flow.acquire())  # what the conductor awaits before buffering an event
    await asyncio.sleep(0)
    assert not waiter.done()
    flow.resume()
    await asyncio.wait_for(waiter, 1)
