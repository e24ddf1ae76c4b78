"""Every schema is documented, shares the envelope, and stays backward compatible with its releases."""
import json

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from topics import schemas
from topics.events import event_types

ENVELOPE = ["event_id", "type", "occurred_at", "source", "session_id", "customer_id", "order_id"]
FAMILIES = ["visits", "cart", "checkout", "orders", "customers", "messages", "feedback"]


def fields_of(record):
    for field in record["fields"]:
        yield field
        types = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for t in types:
            if isinstance(t, dict) and t.get("type") == "record":
                yield from fields_of(t)
            if isinstance(t, dict) and t.get("type") == "array" and isinstance(t["items"], dict):
                yield from fields_of(t["items"])


@pytest.mark.parametrize("name", sorted(schemas.current()))
def test_every_field_has_a_doc_and_the_schema_a_namespace(name):
    raw = schemas.get(name).raw
    assert raw["namespace"].startswith("posvenda.")
    undocumented = [f["name"] for f in fields_of(raw) if not f.get("doc")]
    assert undocumented == []


def test_every_event_family_shares_the_envelope():
    families = {s.raw["namespace"].split(".")[1]: s for s in schemas.current().values() if "payload" in json.dumps(s.raw)}
    assert set(FAMILIES) <= set(families)
    for domain in FAMILIES:
        names = [f["name"] for f in families[domain].raw["fields"]]
        assert names[: len(ENVELOPE)] == ENVELOPE and names[-1] == "payload", domain
        occurred = families[domain].raw["fields"][2]["type"]
        assert occurred == {"type": "long", "logicalType": "timestamp-millis"}


def test_event_types_cover_the_domain():
    expected = {"session_started", "page_viewed", "cart_item_added", "shipping_option_chosen", "payment_method_chosen",
                "registration_completed", "order_placed", "payment_pending", "order_paid", "order_invoiced",
                "order_shipped", "order_delivered", "order_cancelled", "return_requested", "order_returned",
                "customer_registered", "message_sent", "ticket_opened", "nps_answered"}
    assert expected <= set(event_types())


@pytest.mark.parametrize("name", sorted(schemas.current()))
def test_current_schema_reads_every_released_version(name):
    released = schemas.releases().get(name)
    assert released, f"{name} has no release under topics/schemas/releases/{name}/"
    reader = avro.schema.parse(json.dumps(schemas.get(name).raw))
    for version in released:
        writer = avro.schema.parse(json.dumps(version.raw))
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
        assert result.compatibility is SchemaCompatibilityType.compatible, (version.path, result.messages)


def test_the_checker_would_catch_a_breaking_change():
    raw = json.loads(json.dumps(schemas.get("posvenda.orders.OrderEvent").raw))
    raw["fields"].append({"name": "channel", "type": "string", "doc": "new required field, no default"})
    reader = avro.schema.parse(json.dumps(raw))
    writer = avro.schema.parse(json.dumps(schemas.get("posvenda.orders.OrderEvent").raw))
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    assert result.compatibility is SchemaCompatibilityType.incompatible


def test_fingerprints_follow_the_avro_spec():
    # Avro spec test vector: CRC-64-AVRO of "null" is 0x63dd24e7cc258f8a, written little-endian.
    from fastavro.schema import fingerprint

    assert bytes.fromhex(fingerprint('"null"', "CRC-64-AVRO")) == (0x63DD24E7CC258F8A).to_bytes(8, "little")
