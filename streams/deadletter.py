"""Dead letters: a message that cannot be processed is kept, with its reason, and processing goes on."""
from __future__ import annotations

import logging

from streams import metrics
from streams.app import topic

log = logging.getLogger(__name__)


async def send_to_dead_letters(source, message, reason: str, detail: str, event_id: str | None = None) -> None:
    """Publishes the original bytes to `<source>.dlq` with headers naming the record and the reason."""
    headers = {
        "dlq.reason": reason.encode(),
        "dlq.detail": detail[:1000].encode(),
        "dlq.source.topic": message.topic.encode(),
        "dlq.source.partition": str(message.partition).encode(),
        "dlq.source.offset": str(message.offset).encode(),
    }
    if event_id:
        headers["dlq.event_id"] = event_id.encode()
    await topic(source.dead_letters).send(key=message.key, value=message.value, headers=headers)
    metrics.DEAD_LETTERS.labels(source.name, reason).inc()
    log.warning("dead letter: %s partition %s offset %s event %s: %s: %s", message.topic, message.partition,
                message.offset, event_id or "-", reason, detail[:200])
