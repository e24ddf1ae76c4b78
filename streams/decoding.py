"""Turns a raw message into a domain Event, or into a dead letter with the reason; runs the handlers of
an event as one unit of work, so a handler that raises dead-letters the event instead of stopping the
partition."""
from __future__ import annotations

import time
import traceback
from pathlib import Path

from streams import dedupe, metrics, unit_of_work
from streams.app import app
from streams.deadletter import send_to_dead_letters
from topics import duplicates, events, validation

HANDLER_ERROR = "handler_error"


async def decode_or_dead_letter(source, message, key_field: str | None = None) -> events.Event | None:
    """The message's Event, or None after sending it to the dead-letter topic with the reason
    (topics/validation.py: the same verdict ingest gives before publishing)."""
    outcome = validation.verdict(message.value, int(time.time() * 1000), key_field)
    if isinstance(outcome, validation.Rejected):
        await send_to_dead_letters(source, message, outcome.reason, outcome.detail, outcome.event_id)
        return None
    return outcome


def observe_latency(source, message, event: events.Event) -> None:
    """Processing latency from the message's arrival in Kafka (its timestamp: create or log-append
    time), and, apart, how far behind event time the projection is (years for a replay of history)."""
    now = time.time()
    if message.timestamp:
        metrics.PROCESSING_LATENCY.labels(source.name).observe(max(0.0, now - message.timestamp))
    metrics.EVENT_TIME_DELAY.labels(source.name).observe(max(0.0, now - event.occurred_at / 1000))


def handler_failure(exc: BaseException, handle, event: events.Event) -> str:
    """The dead-letter detail of a handler's exception: type, message and where, with every string of
    the event (ids, names, cities...) masked by its field name, so no personal data leaves in it."""
    text = str(exc)
    for path, value in _event_strings(event):
        if len(value) >= 2 and value in text:
            text = text.replace(value, f"<{path}>")
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {'/'.join(Path(frame.filename).parts[-2:])}:{frame.lineno}" if frame else ""
    if handle is None:  # the unit's own check, after every handler ran
        return f"{type(exc).__name__}: {text}"
    name = getattr(handle, "__qualname__", repr(handle))
    return f"{type(exc).__name__}: {text} (handler {handle.__module__}.{name}{where})"


def _event_strings(event: events.Event):
    ids = [(name, getattr(event, name)) for name in ("event_id", *events.ENVELOPE_IDS)]
    pairs = [*ids, *validation.leaves(event.payload, "payload")]
    return sorted(((p, v) for p, v in pairs if isinstance(v, str)), key=lambda pv: -len(pv[1]))


async def dispatch(group: str, source, message, key_field: str | None) -> None:
    """What every source-group agent does with a message: decode once (or dead-letter it), hand the
    event to each read model registered for the group inside one unit of work, and record the latency.

    All or nothing: when a handler raises, the writes and sends of every handler for this event are
    discarded, the event goes to the dead letters with reason `handler_error`, and the partition goes on."""
    from streams import handlers

    event = await decode_or_dead_letter(source, message, key_field)
    if event is None:
        return
    unit = unit_of_work.Unit()
    handle = None
    try:
        with unit_of_work.opened(unit):
            verdict, conflict = dedupe.judge(group, message.key, event)
            for handle in handlers.handlers(group) if verdict != duplicates.CONFLICT else ():
                await handle(event, message.partition)
        handle = None
        unit.ensure_fits(app.conf.producer_max_request_size)
    except Exception as exc:
        unit.discard()
        metrics.HANDLER_ERRORS.labels(source.name).inc()
        await send_to_dead_letters(source, message, HANDLER_ERROR, handler_failure(exc, handle, event), event.event_id)
        return
    if verdict == duplicates.CONFLICT:  # sent outside the unit: a buffered send would be dropped with it
        unit.discard()
        await send_to_dead_letters(source, message, dedupe.CONFLICTING_DUPLICATE, conflict, event.event_id)
        return
    if verdict == duplicates.DUPLICATE:
        metrics.DUPLICATES.labels(source.name).inc()
    await unit.commit()
    metrics.EVENTS_PROCESSED.labels(source.name, event.type).inc()
    observe_latency(source, message, event)
