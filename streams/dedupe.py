"""Duplicates by event_id, judged once per source group before any read model sees the event.

Each entity (the message key: session, order or customer) remembers a digest of its latest events
(topics/duplicates.py). The same event again is counted in posvenda_duplicate_events_total and still
handed to the read models: their folds are idempotent, and a redelivery after a crash must be able to
redo a send the crash lost. Another event under a used id goes to the dead letters as
`conflicting_duplicate` instead of letting arrival order pick the truth.
"""
from __future__ import annotations

from streams.app import app, settings
from topics import duplicates, personal_data

CONFLICTING_DUPLICATE = "conflicting_duplicate"

digests_table = app.Table("event-digests", default=None, partitions=settings.partitions)


def _ignored(event_type: str) -> frozenset[str]:
    """Sealed personal fields: sealing draws a new nonce each time, so a re-published event differs there."""
    fields = personal_data.PERSONAL_FIELDS.get(event_type, ())
    return frozenset((*fields, *(personal_data.SEALED_DATES.get(f) for f in fields if f in personal_data.SEALED_DATES)))


def judge(group: str, message_key: bytes | None, event) -> tuple[str, str | None]:
    """(verdict, detail) for the event, remembering it when new (inside the caller's unit of work)."""
    entity = (message_key or b"").decode(errors="replace") or event.event_id
    key = f"{group}|{entity}"
    remembered = digests_table.get(key)
    digest = duplicates.digest(event, _ignored(event.type))
    verdict = duplicates.verdict(remembered, event.event_id, digest)
    if verdict == duplicates.NEW:
        digests_table[key] = duplicates.remember(remembered, event.event_id, digest)
        return verdict, None
    if verdict == duplicates.CONFLICT:
        return verdict, (f"event_id {event.event_id} was already folded with other content "
                         f"(digest {remembered[event.event_id]}, this one {digest})")
    return verdict, None
