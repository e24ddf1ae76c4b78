"""Turns a raw message into a domain Event, or into a dead letter with the reason."""
from __future__ import annotations

import time

from streams import metrics
from streams.deadletter import send_to_dead_letters
from topics import events
from topics.codec import DecodeError

# Event times outside this range are absurd for a store opened after 2000 (1970 = a zero timestamp).
EARLIEST_PLAUSIBLE_MS = 946_684_800_000  # 2000-01-01
FUTURE_TOLERANCE_MS = 24 * 3600 * 1000


def implausible(event: events.Event, now_ms: int) -> str | None:
    """A business-rule check of values the schema cannot express; returns the reason or None."""
    if event.occurred_at < EARLIEST_PLAUSIBLE_MS:
        return f"occurred_at {events.iso(event.occurred_at)} is before 2000"
    if event.occurred_at > now_ms + FUTURE_TOLERANCE_MS:
        return f"occurred_at {events.iso(event.occurred_at)} is in the future"
    for name in ("total", "amount", "freight", "price", "unit_price"):
        value = event.payload.get(name)
        if isinstance(value, (int, float)) and value < 0:
            return f"payload.{name} is negative ({value})"
    for item in event.payload.get("items") or ():
        if item.get("quantity", 1) <= 0:
            return f"payload.items quantity {item.get('quantity')} is not positive"
    score = event.payload.get("score")
    if event.type == "nps_answered" and not 0 <= score <= 10:
        return f"payload.score {score} is outside 0..10"
    return None


async def decode_or_dead_letter(source, message, key_field: str | None = None) -> events.Event | None:
    """The message's Event, or None after sending it to the dead-letter topic with the reason."""
    try:
        event = events.decode(message.value)
    except DecodeError as exc:
        await send_to_dead_letters(source, message, exc.reason, exc.detail)
        return None
    except events.InvalidEvent as exc:
        await send_to_dead_letters(source, message, "invalid_field", str(exc))
        return None
    except Exception as exc:  # anything else a hostile message triggers must not stop the partition
        await send_to_dead_letters(source, message, "undecodable", f"{type(exc).__name__}: {exc}")
        return None
    reason = implausible(event, int(time.time() * 1000))
    if reason is None and key_field and getattr(event, key_field) is None:
        reason = f"{key_field} is missing"
    if reason:
        await send_to_dead_letters(source, message, "implausible_value", reason, event.event_id)
        return None
    metrics.EVENTS_PROCESSED.labels(source.name, event.type).inc()
    return event


def observe_latency(source, event: events.Event) -> None:
    metrics.PROCESSING_LATENCY.labels(source.name).observe(max(0.0, time.time() - event.occurred_at / 1000))


async def dispatch(group: str, source, message, key_field: str | None) -> None:
    """What every source-group agent does with a message: decode once (or dead-letter it), hand the
    event to each read model registered for the group, and record the processing latency."""
    from streams import handlers

    event = await decode_or_dead_letter(source, message, key_field)
    if event is None:
        return
    for handle in handlers.handlers(group):
        await handle(event, message.partition)
    observe_latency(source, event)
