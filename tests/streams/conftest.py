"""Agents under Faust's test_context(), without a broker: nothing acknowledges a changelog record, so
a flush would wait for ever. Here the flush does not wait for them; the store writes, sends and their
acknowledgements are what these tests check, and the changelog is checked against the real broker in
tests/faults."""
from __future__ import annotations

import pytest

from streams import unit_of_work


@pytest.fixture(autouse=True)
def changelog_acknowledged_at_once(monkeypatch):
    async def acknowledged(futures):
        return None

    monkeypatch.setattr(unit_of_work, "acknowledged", acknowledged)
