"""Sealed personal fields: valid Avro on the wire, no clear value in the bytes, opened with the
customer's key, left out (not an error) once the key is gone, and bound to their customer and field."""
import uuid

import pytest

from projections import customer360_fold
from topics import events, personal_data

T0 = 1_795_514_400_000
CLEAR = {"name": "Ana Quitéria Souza", "email": "ana.q@example.com", "cpf": "123.456.789-09",
         "phone": "+55 11 91234-5678", "birth_date": "1990-05-17", "city": "Campinas"}


def registration(customer_id="c-1"):
    payload = {**CLEAR, "sex": "f", "uf": "SP", "consents": ["email"]}
    return events.Event(str(uuid.uuid4()), "customer_registered", T0, "crm", None, customer_id, None, payload)


def wire(event) -> bytes:
    return events.encode(event)


def test_a_sealed_registration_is_valid_avro_and_holds_no_clear_personal_value():
    # Given a registration sealed under its customer's key
    key = personal_data.new_key("c-1")
    sealed = personal_data.seal(registration(), key)
    # When it is encoded for the log
    data = wire(sealed)
    # Then no personal value is in the bytes (the birth date neither as text nor as an Avro date)
    for value in CLEAR.values():
        assert value.encode() not in data
    assert sealed.payload["birth_date"] is None and sealed.payload["birth_date_sealed"].startswith("pd1:")
    # and what is not personal stays readable
    decoded = events.decode(data)
    assert decoded.payload["uf"] == "SP" and decoded.payload["sex"] == "f"


def test_the_key_opens_every_field_as_it_was():
    key = personal_data.new_key("c-1")
    decoded = events.decode(wire(personal_data.seal(registration(), key)))
    opened = personal_data.reveal(decoded, key)
    assert {f: opened.payload[f] for f in CLEAR} == CLEAR
    assert "birth_date_sealed" not in opened.payload


def test_without_the_key_the_personal_fields_are_absent_and_the_rest_is_kept():
    key = personal_data.new_key("c-1")
    decoded = events.decode(wire(personal_data.seal(registration(), key)))
    shredded = personal_data.reveal(decoded, None)
    assert not set(CLEAR) & set(shredded.payload)
    assert shredded.payload["uf"] == "SP" and shredded.payload["consents"] == ["email"]
    # a later key of the same customer (after an erasure) does not open the old values either
    assert not set(CLEAR) & set(personal_data.reveal(decoded, personal_data.new_key("c-1")).payload)


def test_a_value_moved_to_another_customer_or_field_does_not_open():
    key = personal_data.new_key("c-1")
    name = personal_data.seal_value(key, "name", "Ana")
    assert personal_data.open_value(key, "c-1", "name", name) == "Ana"
    assert personal_data.open_value(key, "c-1", "city", name) is None
    same_secret_other_customer = personal_data.CustomerKey("c-2", key.key_id, key.secret)
    assert personal_data.open_value(same_secret_other_customer, "c-2", "name", name) is None
    tampered = name[:-2] + ("A" if name[-2] != "A" else "B") + name[-1]
    assert personal_data.open_value(key, "c-1", "name", tampered) is None


def test_events_written_before_sealing_are_read_as_they_are():
    plain = events.decode(wire(registration()))
    assert {f: personal_data.reveal(plain, None).payload[f] for f in CLEAR} == CLEAR


@pytest.mark.parametrize("type_, payload, field", [
    ("customer_updated", {"email": "novo@example.com", "phone": None, "uf": "RJ", "city": "Niterói"}, "email"),
    ("nps_answered", {"score": 9, "comment": "liguem para Ana no 11 99999-0000"}, "comment"),
    ("order_delivered", {"receiver": "Joana Prado"}, "receiver"),
])
def test_other_events_with_personal_fields_are_sealed_too(type_, payload, field):
    key = personal_data.new_key("c-1")
    event = events.Event(str(uuid.uuid4()), type_, T0, "crm", None, "c-1", "o-1", payload)
    assert personal_data.carries_personal_data(event)
    data = wire(personal_data.seal(event, key))
    assert payload[field].encode() not in data
    assert personal_data.reveal(events.decode(data), key).payload[field] == payload[field]
    assert field not in personal_data.reveal(events.decode(data), None).payload


def test_a_key_round_trips_through_its_topic_record_and_never_shows_in_a_repr():
    key = personal_data.new_key("c-1")
    assert personal_data.key_from_record(personal_data.key_record(key, T0)) == key
    assert key.secret.hex() not in repr(key) and str(key.secret) not in repr(key)
    assert personal_data.key_from_record(b"not json") is None
    assert personal_data.key_from_record(b'{"customer_id": "c-1", "key_id": "00", "secret": "AAAA"}') is None


def test_the_360_view_opens_name_and_city_with_the_key_and_an_erased_record_is_hidden():
    # Given the 360 record folded from a sealed registration (as the worker keeps it)
    key = personal_data.new_key("c-1")
    sealed = events.decode(wire(personal_data.seal(registration(), key)))
    state = customer360_fold.apply_event(None, sealed)
    view = customer360_fold.view(state)
    assert view["name"].startswith("pd1:") and view["city"].startswith("pd1:"), "kept sealed"
    # Then the key opens them for the view, and without it they are absent
    assert customer360_fold.revealed(view, key)["name"] == CLEAR["name"]
    assert customer360_fold.revealed(view, None)["city"] is None
    # and an erasure hides the record
    erasure = events.Event(str(uuid.uuid4()), "customer_erasure_requested", T0 + 1, "crm", None, "c-1", None,
                           {"reason": "lgpd_request"})
    assert customer360_fold.shown(state) and not customer360_fold.shown(customer360_fold.apply_event(state, erasure))


def test_a_value_of_the_wrong_type_is_left_for_the_schema_to_reject():
    event = registration()
    event = events.Event(event.event_id, event.type, T0, "crm", None, "c-1", None, {**event.payload, "name": 123})
    sealed = personal_data.seal(event, personal_data.new_key("c-1"))
    assert sealed.payload["name"] == 123 and sealed.payload["email"].startswith("pd1:")
    with pytest.raises(events.InvalidEvent, match="name"):
        events.encode(sealed)
