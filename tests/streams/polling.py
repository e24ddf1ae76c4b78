"""Waiting for an agent under Faust's test_context(): `put` returns once the event is in the stream, and
the agent folds it with its batch a little later."""
from __future__ import annotations

import asyncio
import time


async def eventually(check, what: str, timeout: float = 10.0):
    """Polls `check()` (yielding to the agent in between) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
