"""Recovery campaigns: turns recovery.actions into messages, delivers them, and logs them as events.

For each action and each of its channels: render the template of (action type, channel)
(Portuguese, `string.Template` placeholders $order_id, $amount as "R$ 1.234,56", $due_date
"dd/mm/aaaa" and $due_time "HH:MM" in the business time zone), hand the text to a delivery backend,
then append a message_sent event (template = action type, phase = "payment_recovery", action_id) to
messages.events, so the order's audit trail shows what the customer was sent.

An action is data from the log, so it only selects: the templates are the files
alerts/templates/<action type>.<channel>.txt read once at start, and an action whose type or channel
is not among them is skipped and reported with its id (no path is ever built from it). Values from
the event are sanitised before they reach a customer: the order id keeps only letters, digits and
`. _ : -` (no line break, control character or URL can ride in on it), and an amount or due time
that is not a finite number makes the action unrenderable (skipped and reported) rather than a
message with "R$ nan".

Idempotent end to end, because the consumer may see an action again after a crash (offsets are
committed after the batch): the message_sent event id is uuid5(action_id + channel), so a second copy
is the same event; and the outbox backend skips an (action, channel) it already delivered. The event
is published again even when the delivery is skipped: a crash between delivering and publishing must
not leave a message missing from the audit trail.

A real backend (an e-mail or WhatsApp provider) implements `DeliveryBackend`: `delivered` and
`deliver`. The backends never log message text or contact data (LGPD): ids, channel, template only.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from alerts.recovery_rules import TEMPLATES_DIR
from topics import catalogue, codec
from topics.events import Event

log = logging.getLogger(__name__)

PHASE = "payment_recovery"
SOURCE = "crm"
# Fixed namespace of the message_sent event ids: never change it, ids must stay the same forever.
MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")


class TemplateError(LookupError):
    """An action cannot be rendered (no template for its type and channel, a value that is not a
    number), or a template file uses an unknown placeholder. The message names the action id."""


@dataclass(frozen=True)
class OutgoingMessage:
    action_id: str
    channel: str
    template: str  # the action type, e.g. send_payment_reminder
    order_id: str
    customer_id: str | None  # pseudonymous: the backend resolves the contact
    text: str


class DeliveryBackend(Protocol):
    """Where a rendered message goes. `delivered` lets a backend that remembers skip a redelivery."""

    def delivered(self, action_id: str, channel: str) -> bool: ...

    def deliver(self, message: OutgoingMessage) -> None: ...

    def close(self) -> None: ...


class OutboxBackend:
    """Appends each message as a JSON line to a local file (what a sending service would pick up)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._done: set[tuple[str, str]] = set()
        if self.path.exists():
            for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    entry = json.loads(line)
                    self._done.add((entry["action_id"], entry["channel"]))
                except (ValueError, KeyError, TypeError):
                    log.warning("outbox %s line %d is not a delivered message; ignored", self.path, n)
        self._file = self.path.open("a", encoding="utf-8")

    def delivered(self, action_id: str, channel: str) -> bool:
        return (action_id, channel) in self._done

    def deliver(self, message: OutgoingMessage) -> None:
        line = {**asdict(message), "delivered_at": int(time.time() * 1000)}
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()
        self._done.add((message.action_id, message.channel))

    def close(self) -> None:
        self._file.close()


class LogBackend:
    """Logs that a message would go out: ids, channel and template only, never the text."""

    def delivered(self, action_id: str, channel: str) -> bool:
        return False

    def deliver(self, message: OutgoingMessage) -> None:
        log.info("message for action %s via %s (template %s, %d characters)", message.action_id, message.channel,
                 message.template, len(message.text))

    def close(self) -> None:
        pass


# --- rendering ----------------------------------------------------------------------------------

def format_brl(amount: float) -> str:
    """R$ 1.234,56 (Brazilian grouping and decimal comma)."""
    cents = round(amount * 100)
    reais, centavos = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}R$ {reais:,}".replace(",", ".") + f",{centavos:02d}"


TEMPLATE_FILE = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z]+)\.txt$")  # <action type>.<channel>.txt
PLACEHOLDERS = frozenset({"order_id", "amount", "due_date", "due_time"})
_NOT_ID = re.compile(r"[^0-9A-Za-z._:-]")
MAX_ID_CHARS = 64


def load_templates(directory: Path) -> dict[tuple[str, str], string.Template]:
    """{(action type, channel): template} of every <action type>.<channel>.txt in `directory`, with
    their placeholders checked now, so a bad file stops the start instead of a message."""
    found = {}
    for path in sorted(Path(directory).iterdir()):
        match = TEMPLATE_FILE.match(path.name)
        if not (match and path.is_file()):
            continue
        template = string.Template(path.read_text(encoding="utf-8"))
        unknown = sorted(set(template.get_identifiers()) - PLACEHOLDERS)
        if not template.is_valid() or unknown:
            raise TemplateError(f"template {path}: unknown or malformed placeholder {unknown or '$'} "
                                f"(known: {', '.join(sorted(PLACEHOLDERS))})")
        found[match.groups()] = template
    return found


def safe_id(value) -> str:
    """An id as it may appear in a customer's message: letters, digits and `. _ : -`, at most
    MAX_ID_CHARS; anything else (line breaks, control characters, `/`, spaces) is dropped."""
    return _NOT_ID.sub("", str(value))[:MAX_ID_CHARS]


class Templates:
    """The message templates, read once at start. An action's type and channel only look one up."""

    def __init__(self, directory: Path = TEMPLATES_DIR, timezone: str = "America/Sao_Paulo"):
        self.directory = Path(directory)
        self.zone = ZoneInfo(timezone)
        self.by_key = load_templates(self.directory)

    def _template(self, action: dict, channel: str) -> string.Template:
        template = self.by_key.get((action["type"], channel))
        if template is None:
            known = ", ".join(f"{t}.{c}" for t, c in sorted(self.by_key))
            raise TemplateError(f"action {action['action_id']!r}: no template for type {action['type']!r} on "
                                f"channel {channel!r} in {self.directory} (known: {known})")
        return template

    def _values(self, action: dict) -> dict[str, str]:
        amount, due_at = action["amount"], action["due_at"]
        if not (isinstance(amount, int | float) and math.isfinite(amount)):
            raise TemplateError(f"action {action['action_id']!r}: amount {amount!r} is not a finite number")
        try:
            due = dt.datetime.fromtimestamp(due_at / 1000, self.zone)
        except (OverflowError, OSError, ValueError, TypeError):
            raise TemplateError(f"action {action['action_id']!r}: due_at {due_at!r} is not a time") from None
        return {"order_id": safe_id(action["order_id"]), "amount": format_brl(amount),
                "due_date": due.strftime("%d/%m/%Y"), "due_time": due.strftime("%H:%M")}

    def render(self, action: dict, channel: str) -> str:
        return self._template(action, channel).substitute(self._values(action)).strip() + "\n"


def message_event_id(action_id: str, channel: str) -> str:
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{action_id}|{channel}"))


def message_sent_event(action: dict, channel: str, sent_at_ms: int) -> Event:
    return Event(event_id=message_event_id(action["action_id"], channel), type="message_sent",
                 occurred_at=sent_at_ms, source=SOURCE, customer_id=action.get("customer_id"),
                 order_id=action["order_id"],
                 payload={"channel": channel, "template": action["type"], "phase": PHASE,
                          "action_id": action["action_id"]})


def decode_action(value: bytes) -> dict:
    """A recovery.actions message as a dict with times in UTC millis."""
    name, record = codec.decode(value)
    if name != "posvenda.recovery.RecoveryAction":
        raise codec.DecodeError("wrong_schema", f"{name} is not a RecoveryAction")
    out = dict(record)
    for key in ("due_at", "scheduled_at"):
        if isinstance(out[key], dt.datetime):
            out[key] = int(out[key].timestamp() * 1000)
    return out


class Campaign:
    """Handles one action: render, deliver (unless already delivered), publish message_sent."""

    def __init__(self, backend: DeliveryBackend, publish: Callable[[Event], None], templates: Templates,
                 clock: Callable[[], float] = time.time):
        self.backend, self.publish, self.templates, self.clock = backend, publish, templates, clock
        self.delivered = self.skipped = 0

    def handle(self, action: dict) -> list[Event]:
        """Renders every channel before delivering any: an action that cannot be rendered on one
        channel (TemplateError) sends nothing at all."""
        texts = {channel: self.templates.render(action, channel) for channel in action["channels"]}
        events = []
        for channel, text in texts.items():
            if self.backend.delivered(action["action_id"], channel):
                self.skipped += 1
            else:
                self.backend.deliver(OutgoingMessage(action["action_id"], channel, action["type"], action["order_id"],
                                                     action.get("customer_id"), text))
                self.delivered += 1
            event = message_sent_event(action, channel, int(self.clock() * 1000))
            self.publish(event)
            events.append(event)
        return events


def handle_record(campaign: Campaign, record) -> bool:
    """Handles one recovery.actions record; False (and an error log naming the record and the
    action id) when it cannot be decoded or rendered, so the next actions still go out."""
    try:
        campaign.handle(decode_action(record.value))
    except (codec.DecodeError, TemplateError) as exc:
        log.error("recovery.actions partition %s offset %s skipped: %s", record.partition, record.offset, exc)
        return False
    return True


def run(settings, backend: DeliveryBackend, group_id: str, *, until_idle_s: float | None = None,
        templates: Templates | None = None, poll_ms: int = 500) -> dict:
    """Consumes recovery.actions (committed transactions only) until stopped or idle for until_idle_s."""
    from kafka import KafkaConsumer

    from posvenda.publish import Publisher

    templates = templates or Templates(timezone=settings.business_timezone)
    consumer = KafkaConsumer(settings.topic_name(catalogue.RECOVERY_ACTIONS), group_id=group_id,
                             client_id="posvenda-campaigns", enable_auto_commit=False, auto_offset_reset="earliest",
                             isolation_level="read_committed", **settings.kafka_python_config())
    stats = {"actions": 0, "delivered": 0, "skipped": 0, "invalid": 0}
    last_seen = time.monotonic()
    try:
        with Publisher(settings) as publisher:
            campaign = Campaign(backend, publisher.publish, templates)
            while True:
                batches = consumer.poll(timeout_ms=poll_ms, max_records=200)
                records = [r for batch in batches.values() for r in batch]
                if not records:
                    if until_idle_s is not None and time.monotonic() - last_seen >= until_idle_s:
                        break
                    continue
                last_seen = time.monotonic()
                for record in records:
                    stats["actions" if handle_record(campaign, record) else "invalid"] += 1
                publisher.producer.flush()
                consumer.commit()
            stats.update(delivered=campaign.delivered, skipped=campaign.skipped)
    finally:
        consumer.close()
        backend.close()
    return stats
