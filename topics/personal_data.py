"""Personal data on the log, sealed with a per-customer data key (crypto-shredding).

Events are immutable and copied everywhere (source topics, dead letters, changelogs, backups), so an
erasure cannot delete the values: it deletes the customer's key, and every sealed copy becomes
ciphertext nobody can open. Which fields are personal, how a value is sealed and opened, and what a
key looks like on the keys topic live here; reading and writing that topic is the callers' job
(posvenda/publish.py for producers, projections/rebuild.py for log readers, streams/customer_keys.py
for the worker).

A sealed value replaces the field's own string, so the event stays valid Avro under its schema:
`pd1:` + base64url(key id (8 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag). The
associated data binds it to the customer and the field, so a value copied into another customer's
or another field's place does not open. A birth date is an Avro date (an int), so it travels sealed
in the string field `birth_date_sealed` and `birth_date` is left null.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "pd1:"
KEY_ID_SIZE, NONCE_SIZE = 8, 12
SEALED_DATES = {"birth_date": "birth_date_sealed"}  # date fields -> the string field carrying them sealed

# Event type -> its payload fields that hold personal data (free text included: it may name people).
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "customer_registered": ("name", "email", "cpf", "phone", "birth_date", "city"),
    "customer_updated": ("email", "phone", "city"),
    "nps_answered": ("comment",),
    "order_delivered": ("receiver",),
}


@dataclass(frozen=True)
class CustomerKey:
    customer_id: str
    key_id: str  # hex; a new key never reuses an id, so values sealed under a shredded key stay closed
    secret: bytes = b""

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"CustomerKey({self.customer_id!r}, key_id={self.key_id!r})"


def new_key(customer_id: str) -> CustomerKey:
    return CustomerKey(customer_id, os.urandom(KEY_ID_SIZE).hex(), AESGCM.generate_key(bit_length=256))


def key_record(key: CustomerKey, created_at: int) -> bytes:
    """The keys topic's value for a key (JSON; the message key is the customer id)."""
    return json.dumps({"customer_id": key.customer_id, "key_id": key.key_id,
                       "secret": base64.b64encode(key.secret).decode(), "created_at": created_at}).encode()


def key_from_record(value: bytes | dict) -> CustomerKey | None:
    """The key a keys-topic value holds, or None when it is not one (a tombstone or garbage)."""
    try:
        record = json.loads(value) if isinstance(value, (bytes, str)) else value
        secret = base64.b64decode(record["secret"], validate=True)
        if len(secret) != 32 or len(bytes.fromhex(record["key_id"])) != KEY_ID_SIZE:
            return None
        return CustomerKey(str(record["customer_id"]), record["key_id"], secret)
    except (TypeError, ValueError, KeyError, binascii.Error):
        return None


def carries_personal_data(event) -> bool:
    return bool(event.customer_id) and any(event.payload.get(f) is not None for f in PERSONAL_FIELDS.get(event.type, ()))


def is_sealed(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _aad(customer_id: str, field: str) -> bytes:
    return f"posvenda.personal|{customer_id}|{field}".encode()


def seal_value(key: CustomerKey, field: str, value: str) -> str:
    nonce = os.urandom(NONCE_SIZE)
    sealed = AESGCM(key.secret).encrypt(nonce, value.encode(), _aad(key.customer_id, field))
    return PREFIX + base64.urlsafe_b64encode(bytes.fromhex(key.key_id) + nonce + sealed).decode()


def key_id_of(value: str) -> str | None:
    """The id of the key a sealed value needs, or None when the value is not well formed."""
    try:
        raw = base64.urlsafe_b64decode(value[len(PREFIX):])
    except (ValueError, binascii.Error):
        return None
    return raw[:KEY_ID_SIZE].hex() if len(raw) > KEY_ID_SIZE + NONCE_SIZE else None


def open_value(key: CustomerKey | None, customer_id: str, field: str, value):
    """The clear value: itself when not sealed; None when its key is gone, another one, or it was tampered."""
    if not is_sealed(value):
        return value
    if key is None or key.customer_id != customer_id or key_id_of(value) != key.key_id:
        return None
    raw = base64.urlsafe_b64decode(value[len(PREFIX):])
    nonce, sealed = raw[KEY_ID_SIZE:KEY_ID_SIZE + NONCE_SIZE], raw[KEY_ID_SIZE + NONCE_SIZE:]
    try:
        return AESGCM(key.secret).decrypt(nonce, sealed, _aad(customer_id, field)).decode()
    except (InvalidTag, UnicodeDecodeError):
        return None


def seal(event, key: CustomerKey):
    """The event with its personal fields sealed under the customer's key (a new Event)."""
    payload = dict(event.payload)
    for field in PERSONAL_FIELDS.get(event.type, ()):
        value = payload.get(field)
        if isinstance(value, dt.date):
            value = value.isoformat()
        if not isinstance(value, str) or is_sealed(value):
            continue  # absent, sealed already, or of a wrong type that the schema validation rejects
        if field in SEALED_DATES:
            payload[field] = None
            payload[SEALED_DATES[field]] = seal_value(key, field, value)
        else:
            payload[field] = seal_value(key, field, value)
    return replace(event, payload=payload)


def reveal(event, key: CustomerKey | None):
    """The event with its sealed fields opened; a field whose key is gone is left out (not an error)."""
    fields = PERSONAL_FIELDS.get(event.type, ())
    if not fields:
        return event
    payload = dict(event.payload)
    for field, carrier in SEALED_DATES.items():
        sealed = payload.pop(carrier, None)
        if field in fields and sealed is not None:
            payload[field] = sealed
    for field in fields:
        if is_sealed(payload.get(field)):
            clear = open_value(key, event.customer_id or "", field, payload[field])
            if clear is None:
                del payload[field]
            else:
                payload[field] = clear
    return replace(event, payload=payload)

