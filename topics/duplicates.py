"""Duplicates by event_id: the same event again (harmless, counted) or another event under a used id.

An event_id is the idempotency key, so two events with one id must be the same event. When they are
not (total 10 and then 99999 under one id), folding either one would let arrival order decide the
truth; instead the second is set aside as a conflicting duplicate. Each entity (session, order,
customer) remembers a short digest of its latest events' content.
"""
from __future__ import annotations

import hashlib
import json

MAX_REMEMBERED = 1000  # event ids per entity: far more than a session, order or customer has in practice

NEW, DUPLICATE, CONFLICT = "new", "duplicate", "conflict"


def digest(event, ignored_payload_fields: frozenset[str] = frozenset()) -> str:
    """A short digest of what the event says. Fields that may legitimately read differently on a
    redelivery (personal data that an erasure made unreadable) are left out."""
    payload = {k: v for k, v in event.payload.items() if k not in ignored_payload_fields}
    content = [event.type, event.occurred_at, event.source, event.session_id, event.customer_id, event.order_id,
               payload]
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def verdict(remembered: dict | None, event_id: str, content_digest: str) -> str:
    known = (remembered or {}).get(event_id)
    if known is None:
        return NEW
    return DUPLICATE if known == content_digest else CONFLICT


def remember(remembered: dict | None, event_id: str, content_digest: str) -> dict:
    """The entity's digests with this event's; the oldest go beyond MAX_REMEMBERED (insertion order)."""
    out = dict(remembered or {})
    out.pop(event_id, None)
    out[event_id] = content_digest
    while len(out) > MAX_REMEMBERED:
        out.pop(next(iter(out)))
    return out
