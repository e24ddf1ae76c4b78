"""Real order history end to end: the bundled Olist sample (800 real orders of 2016-2018, see
examples/olist/README.md) replayed twice through `posvenda olist replay` into the real broker.

The oracle reads the CSV files directly (no import of posvenda.olist): an order's status from its own
timestamps, which orders the state machine must flag (Olist has orders handed to the carrier before
the payment was approved, and cancellations after shipping), the customers' order counts, payment
methods and latest NPS, late deliveries, and the boleto recovery actions from the cadence as the
business states it.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import subprocess
import sys
from collections import defaultdict
from zoneinfo import ZoneInfo

from tests.conftest import REPO, settings_env, wait_until
from tests.e2e.test_recovery_e2e import ActionReader
from tests.e2e.test_visits_customers_orders_e2e import all_items

SAMPLE = REPO / "examples" / "olist"
TZ = ZoneInfo("America/Sao_Paulo")
H, DAY = 3_600_000, 86_400_000
# The business's rules for a dataset that records no due dates, carrier or NPS (README, "Olist"):
BOLETO_DUE_DAYS, NPS_OF_STARS = 3, {1: 0, 2: 3, 3: 5, 4: 8, 5: 10}
FIXED_HOLIDAYS = {"01-01", "04-21", "05-01", "09-07", "10-12", "11-02", "11-15", "11-20", "12-25"}


def rows(name: str) -> list[dict]:
    with gzip.open(SAMPLE / f"olist_{name}_dataset.csv.gz", "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def ms(text: str) -> int | None:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp() * 1000) if text else None


def day_end(day: dt.date) -> int:
    return int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=TZ).timestamp() * 1000) - 1000


def plus_business_days(at: int, n: int) -> int:
    day = dt.datetime.fromtimestamp(at / 1000, TZ)
    while n:
        day += dt.timedelta(days=1)
        n -= day.weekday() < 5 and day.strftime("%m-%d") not in FIXED_HOLIDAYS
    return int(day.timestamp() * 1000)


def oracle() -> dict[str, dict]:
    """Per order: customer, method, expected status, whether it must be flagged, its boleto steps."""
    customers = {r["customer_id"]: r["customer_unique_id"] for r in rows("customers")}
    payments, reviews = defaultdict(list), defaultdict(list)
    for p in rows("order_payments"):
        payments[p["order_id"]].append(p)
    for r in rows("order_reviews"):
        reviews[r["order_id"]].append(r)
    out = {}
    for o in rows("orders"):
        oid = o["order_id"]
        placed, approved = ms(o["order_purchase_timestamp"]), ms(o["order_approved_at"])
        carrier, delivered = ms(o["order_delivered_carrier_date"]), ms(o["order_delivered_customer_date"])
        biggest = max(payments[oid], key=lambda p: (float(p["payment_value"]), -int(p["payment_sequential"])), default=None)
        method = {"not_defined": "other"}.get(biggest["payment_type"], biggest["payment_type"]) if biggest else "other"
        cancelled = o["order_status"] in ("canceled", "unavailable")
        known = [t for t in (placed, approved, carrier, delivered) if t is not None]
        flagged = (known != sorted(known)  # e.g. handed to the carrier before the payment was approved
                   or (approved is None and (carrier or delivered) is not None)  # shipped unpaid
                   or (carrier is None and delivered is not None)  # delivered, never shipped
                   or (cancelled and carrier is not None))  # cancelled after shipping
        status = ("cancelled" if cancelled else "delivered" if delivered else "shipped" if carrier
                  else "paid" if approved else "payment_pending" if method == "boleto" else "placed")
        steps = {}
        if method == "boleto":
            due = day_end(dt.datetime.fromtimestamp(placed / 1000, TZ).date() + dt.timedelta(days=BOLETO_DUE_DAYS))
            steps = {"last_call": due - 14 * H, "new_boleto": plus_business_days(due, 3) + 2 * H}
            if placed + 24 * H < steps["last_call"]:
                steps["reminder"] = placed + 24 * H
            # a payment at or before a step cancels it; an unpaid cancelled order keeps its new-boleto offer
            steps = {k: at for k, at in steps.items() if approved is None or approved > at}
        answered = sorted((ms(r["review_answer_timestamp"]), NPS_OF_STARS[int(r["review_score"])]) for r in reviews[oid])
        out[oid] = {"customer_id": customers[o["customer_id"]], "method": method, "status": status,
                    "flagged": flagged, "placed_at": placed, "approved_at": approved, "steps": steps,
                    "late": None if delivered is None or carrier is None or not o["order_estimated_delivery_date"]
                    else delivered > day_end(dt.date.fromisoformat(o["order_estimated_delivery_date"][:10])),
                    "nps": answered[-1] if answered else None}
    return out


def replay(settings) -> str:
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "olist", "replay", "--dir", str(SAMPLE), "-q"],
                          env=settings_env(settings), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_olist_orders_replayed_twice_match_the_dataset(settings, worker_factory):
    # Given the real orders of the sample, and what the CSV files say about them
    want = oracle()
    assert len(want) == 800
    assert sum(o["flagged"] for o in want.values()) >= 5, "the sample holds real out-of-order timestamps"
    assert sum(o["method"] == "boleto" for o in want.values()) >= 100

    # When they are replayed into the broker twice (the second replay must change nothing) and folded
    first = replay(settings)
    assert "olist: 800 orders" in first and "events published" in first
    replay(settings)
    worker = worker_factory(settings)

    # Then every order has the status its timestamps give, flagged exactly where they are out of order
    def orders_settled():
        got = {r["order_id"]: r for r in all_items(worker, "/orders")}
        return got if len(got) == len(want) and all(r["placed_at"] for r in got.values()) else None

    got = wait_until(orders_settled, timeout=240, what="all 800 Olist orders on /orders")
    wait_until(lambda: {oid: r["flagged_count"] > 0 for oid, r in orders_settled().items()}
               == {oid: o["flagged"] for oid, o in want.items()}, timeout=120, what="flags to match the dataset")
    got = orders_settled()
    wrong = {oid: (got[oid]["status"], o["status"]) for oid, o in want.items()
             if not o["flagged"] and got[oid]["status"] != o["status"]}
    assert not wrong, f"status (got, want) differs for {len(wrong)} orders: {dict(list(wrong.items())[:5])}"
    assert all(got[oid]["status"] != "delivered" for oid, o in want.items() if o["flagged"])
    assert all(got[oid]["customer_id"] == o["customer_id"] for oid, o in want.items())

    # and each customer's 360 counts the orders, methods and latest NPS answer of the dataset
    by_customer = defaultdict(list)
    for o in want.values():
        by_customer[o["customer_id"]].append(o)
    def counts(mine) -> dict:
        """Orders per stage the 360 must show (stages after a flagged transition are not asserted)."""
        out = {"placed": len(mine)}
        if not any(o["flagged"] for o in mine):
            out.update(delivered=sum(o["status"] == "delivered" for o in mine),
                       cancelled=sum(o["status"] == "cancelled" for o in mine))
        return out

    def customers_settled():  # order snapshots reach the customers through customers.facts: wait for all
        got = {r["customer_id"]: r for r in all_items(worker, "/customers")}
        return got if set(got) == set(by_customer) and all(
            {k: got[cid]["orders"][k] for k in counts(mine)} == counts(mine)
            for cid, mine in by_customer.items()) else None

    customers = wait_until(customers_settled, timeout=180, what="every Olist customer's order counts on /customers")
    for cid, mine in by_customer.items():
        c = customers[cid]
        assert c["orders"]["placed"] == len(mine), cid
        assert c["payment_methods"] == sorted({o["method"] for o in mine}), cid
        if not any(o["flagged"] for o in mine):
            assert c["orders"]["delivered"] == sum(o["status"] == "delivered" for o in mine), cid
            assert c["orders"]["cancelled"] == sum(o["status"] == "cancelled" for o in mine), cid
        answers = [o["nps"] for o in mine if o["nps"]]
        assert (c["nps"] or {}).get("score") == (max(answers)[1] if answers else None), cid

    # and each delivery's promised date and time on its history say late exactly where the dataset does
    def late(record) -> bool | None:
        delivered = [e["at"] for e in record["timeline"] if e["type"] == "order_delivered"]
        shipped = any(e["type"] == "order_shipped" for e in record["timeline"])  # flagged or not
        return delivered[0] > record["promised_delivery_at"] if delivered and shipped else None

    assert {oid: late(got[oid]) for oid in want} == {oid: o["late"] for oid, o in want.items()}
    assert sum(o["late"] is True for o in want.values()) >= 20

    # and boleto recovery emitted, once each, the actions the cadence gives for the real payment delays
    # (charges of the sample's last 60 days are left out: their steps may lie beyond the watermark)
    horizon = max(o["placed_at"] for o in want.values()) - 60 * DAY
    expected = {f"{oid}-boleto:{step}" for oid, o in want.items() if o["placed_at"] < horizon for step in o["steps"]}
    assert len(expected) > 50
    reader = ActionReader(settings)
    try:
        def actions():
            seen = [a for a in reader.read() if a["charge_id"].removesuffix("-boleto") in want
                    and want[a["charge_id"].removesuffix("-boleto")]["placed_at"] < horizon]
            return seen if {a["action_id"] for a in seen} >= expected else None

        seen = wait_until(actions, timeout=120, what="the boleto recovery actions")
    finally:
        reader.close()
    ids = [a["action_id"] for a in seen]
    assert len(ids) == len(set(ids)), "an action was emitted twice"
    assert set(ids) == expected
    recovered = {oid for oid, o in want.items() if o["placed_at"] < horizon and o["approved_at"] is not None
                 and any(at < o["approved_at"] for at in o["steps"].values())}
    body = worker.get("/recovery")["methods"]["boleto"]
    assert body["recovered"] >= len(recovered) > 0
