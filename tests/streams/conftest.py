"""Agents under Faust's test_context(), without a broker: nothing acknowledges a changelog record, so
a flush would wait for ever. Here a table's changelog record is acknowledged at once (its offset is
not persisted); the store writes, sends and acknowledgements are what these tests check, and the
changelog is checked against the real broker in tests/faults."""
from __future__ import annotations

import asyncio

import pytest

from streams import unit_of_work


@pytest.fixture(autouse=True)
def changelog_acknowledged_at_once(monkeypatch):
    def send_changelog_only(self, key, value):
        acknowledged = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    monkeypatch.setattr(unit_of_work.BufferedTable, "send_changelog_only", send_changelog_only)
