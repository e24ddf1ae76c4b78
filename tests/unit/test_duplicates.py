from dataclasses import replace

from topics import duplicates
from topics.events import Event

PLACED = Event("e-1", "order_placed", 1_741_611_600_000, "web", "s-1", "c-1", "o-1",
               {"total": 10.0, "items": [{"product_id": "p-1", "quantity": 1}], "name": "Ana"})


def test_the_same_event_again_is_a_duplicate_and_other_content_under_its_id_is_a_conflict():
    remembered = duplicates.remember(None, "e-1", duplicates.digest(PLACED))
    assert duplicates.verdict(remembered, "e-1", duplicates.digest(PLACED)) == duplicates.DUPLICATE
    changed = replace(PLACED, payload={**PLACED.payload, "total": 99999.0})
    assert duplicates.verdict(remembered, "e-1", duplicates.digest(changed)) == duplicates.CONFLICT
    assert duplicates.verdict(remembered, "e-2", duplicates.digest(changed)) == duplicates.NEW


def test_payload_order_does_not_matter_and_ignored_fields_do_not_count():
    reordered = replace(PLACED, payload=dict(reversed(list(PLACED.payload.items()))))
    assert duplicates.digest(reordered) == duplicates.digest(PLACED)
    erased = replace(PLACED, payload={k: v for k, v in PLACED.payload.items() if k != "name"})
    assert duplicates.digest(erased, frozenset({"name"})) == duplicates.digest(PLACED, frozenset({"name"}))
    assert duplicates.digest(erased) != duplicates.digest(PLACED)


def test_an_entity_remembers_its_latest_ids_only():
    remembered = None
    for i in range(duplicates.MAX_REMEMBERED + 5):
        remembered = duplicates.remember(remembered, f"e-{i}", "d")
    assert len(remembered) == duplicates.MAX_REMEMBERED
    assert "e-0" not in remembered and f"e-{duplicates.MAX_REMEMBERED + 4}" in remembered
