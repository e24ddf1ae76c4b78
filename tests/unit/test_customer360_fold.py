"""Customer 360: profile by event time, erasure that sticks, latest NPS, session/order snapshots where
the highest seq wins (stale and retracted ones change nothing), and the customer's visitor cells."""
import random
import uuid

from projections import customer360_fold as fold_module
from topics.events import Event

T0 = 1_795_514_400_000
H = 3_600_000


def ev(type_, at, payload, customer_id="c-1", order_id=None):
    return Event(str(uuid.uuid4()), type_, at, "crm", None, customer_id, order_id, payload)


def registered(at, name="Ana Souza", uf="SP", city="Campinas"):
    return ev("customer_registered", at, {"name": name, "email": "ana@example.com", "cpf": "12345678909",
                                          "phone": None, "birth_date": None, "sex": "f", "uf": uf, "city": city,
                                          "consents": ["email"]})


def updated(at, uf, city):
    return ev("customer_updated", at, {"email": None, "phone": None, "uf": uf, "city": city})


def nps(at, score, order_id="o-1"):
    return ev("nps_answered", at, {"score": score, "comment": "adorei, liguem 11 99999-0000"}, order_id=order_id)


def session_fact(sid, seq, visits, browser="Chrome", os="Windows", days=("2026-11-24",), cart=(), last_at=None,
                 customer_id="c-1"):
    fact = {"kind": "session", "id": sid, "customer_id": customer_id, "visits": visits, "browser": browser,
            "os": os, "device": "desktop", "channel": "organic", "visit_days": list(days), "cart_days": list(cart),
            "last_at": last_at or max(v["ended_at"] for v in visits)}
    return fold_module.fact_message("session", sid, customer_id, seq, fact)


def order_fact(oid, seq, reached, methods=("pix",), day="2026-11-24", last_at=T0):
    fact = {"kind": "order", "id": oid, "customer_id": "c-1", "status": reached[-1], "reached": sorted(reached),
            "placed_day": day, "payment_methods": list(methods), "last_at": last_at}
    return fold_module.fact_message("order", oid, "c-1", seq, fact)


def visit(start, pages, duration):
    return {"started_at": start, "ended_at": start + duration, "pages": pages, "landing_page": "/",
            "time_on_site_ms": duration}


def apply(messages):
    state = None
    for m in messages:
        state = fold_module.apply_fact(state, m) if isinstance(m, dict) else fold_module.apply_event(state, m)
    return state


INPUT = [
    registered(T0), updated(T0 + 5 * H, "RJ", "Niterói"), updated(T0 + 2 * H, "MG", "Uberaba"),
    nps(T0 + 50 * H, 9), nps(T0 + 20 * H, 3, "o-0"),
    session_fact("s-1", 1, [visit(T0, 2, 1000)]),
    session_fact("s-1", 3, [visit(T0, 4, 5000), visit(T0 + 2 * H, 1, 0)], cart=("2026-11-24",)),
    session_fact("s-1", 2, [visit(T0, 3, 4000)]),  # stale: seq 2 < 3
    session_fact("s-2", 1, [visit(T0 + 30 * H, 6, 60_000)], browser="Firefox", os="Linux", days=("2026-11-25",)),
    order_fact("o-1", 1, ["placed"], methods=("boleto",)),
    order_fact("o-1", 4, ["placed", "paid", "invoiced", "shipped"], methods=("boleto",), last_at=T0 + 60 * H),
    order_fact("o-2", 2, ["placed", "cancelled"], day="2026-11-25"),
]


def test_the_record_from_events_and_facts():
    record = fold_module.view(apply(INPUT))
    assert (record["name"], record["uf"], record["city"]) == ("Ana Souza", "RJ", "Niterói")
    assert record["visit_count"] == 3 and record["pages"] == 11
    assert record["time_on_site_ms"] == 65_000 and record["avg_time_on_site_ms"] == round(65_000 / 3, 1)
    assert [v["pages"] for v in record["visits"]] == [4, 1, 6]
    assert record["browsers"] == ["Chrome", "Firefox"] and record["os"] == ["Linux", "Windows"]
    assert record["orders"] == {"placed": 2, "paid": 1, "shipped": 1, "delivered": 0, "cancelled": 1, "returned": 0}
    assert record["payment_methods"] == ["boleto", "pix"]
    assert record["nps"] == {"score": 9, "order_id": "o-1", "answered_at": T0 + 50 * H}
    assert record["last_seen_at"] == T0 + 60 * H
    assert "99999" not in repr(apply(INPUT)), "the NPS comment (free text) is not kept"


def test_any_order_and_redelivery_give_the_same_record():
    expected = fold_module.view(apply(INPUT))
    for seed in range(10):
        shuffled = list(INPUT)
        random.Random(seed).shuffle(shuffled)
        assert fold_module.view(apply(shuffled + shuffled[:4])) == expected


def test_erasure_drops_personal_data_for_good():
    erasure = ev("customer_erasure_requested", T0 + 10 * H, {"reason": "lgpd_request"})
    for order in ([*INPUT, erasure], [erasure, *INPUT]):
        state = apply(order)
        record = fold_module.view(state)
        assert record["erased"] and record["name"] is None and record["city"] is None
        assert "Ana Souza" not in repr(state) and "Niterói" not in repr(state)
        assert record["uf"] == "RJ" and record["visit_count"] == 3, "behaviour and coarse location stay"


def test_a_retracted_session_leaves_and_a_stale_snapshot_does_not_bring_it_back():
    state = apply([*INPUT, fold_module.fact_message("session", "s-2", "c-1", 5, None),
                   session_fact("s-2", 4, [visit(T0, 1, 0)])])
    record = fold_module.view(state)
    assert record["visit_count"] == 2 and record["browsers"] == ["Chrome"]


def test_cells_count_each_day_and_stage_once_per_customer():
    assert fold_module.cells(apply(INPUT)) == {
        ("2026-11-24", "visitors"), ("2026-11-25", "visitors"), ("2026-11-24", "carted"),
        ("2026-11-24", "ordered"), ("2026-11-24", "shipped"), ("2026-11-25", "ordered")}


def test_a_customer_with_only_retractions_does_not_exist():
    assert not fold_module.exists(apply([session_fact("s-1", 1, [visit(T0, 1, 0)]),
                                         fold_module.fact_message("session", "s-1", "c-1", 2, None)]))
    assert fold_module.exists(apply([registered(T0)]))
