"""The Olist public dataset (real orders of a Brazilian marketplace, 2016-2018) as posvenda events.

Olist records an order as one row of timestamps (purchase, payment approval, handed to the carrier,
delivered, estimated delivery) plus its items, payments and reviews. `order_events` turns each order
into the transitions posvenda logs, with deterministic event ids (a replay of the same files is a
no-op for the projections). What Olist does not record is filled in by the named rules below, so
the mapping is explicit and testable:

- the customer is `customer_unique_id` (Olist's `customer_id` is one per order);
- the order's payment method is its largest payment (a voucher topping up a card is not the method);
- a boleto is issued at purchase and due at the end of the local day BOLETO_DUE_DAYS later; the
  approval timestamp is the bank's payment confirmation; a cancelled order whose boleto was never
  confirmed expired at the due date and was cancelled for `payment_not_made` an hour later;
- any other cancellation (status `canceled` or `unavailable`) is dated a minute after the order's
  last known timestamp, with the Olist status as the reason;
- the carrier is CARRIER (the dataset does not name it), the promised delivery is the end of the
  estimated delivery day, and a 1-5 star review is an NPS answer by REVIEW_TO_NPS.

Data-quality quirks are kept, not repaired: an order handed to the carrier before its payment was
approved becomes a flagged transition on its order history, as the state machine intends.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from topics.events import Event

OLIST_TZ = ZoneInfo("America/Sao_Paulo")  # Olist's timestamps are Brasília local times without offset
BOLETO_DUE_DAYS = 3  # Brazilian stores usually give a boleto 1-3 days; Olist does not record it
CARRIER = "olist"
REVIEW_TO_NPS = {1: 0, 2: 3, 3: 5, 4: 8, 5: 10}  # 5 stars a promoter, 4 a passive, 1-3 detractors
PAYMENT_METHODS = {"credit_card": "credit_card", "debit_card": "debit_card", "boleto": "boleto",
                   "voucher": "voucher", "not_defined": "other"}
CANCELLED_STATUSES = frozenset({"canceled", "unavailable"})
ID_NAMESPACE = uuid.UUID("6f1e3a52-0b8c-4c1e-9a47-0d1b9e3c7a10")  # uuid5 namespace of Olist event ids

FILES = {
    "orders": "olist_orders_dataset.csv",
    "items": "olist_order_items_dataset.csv",
    "payments": "olist_order_payments_dataset.csv",
    "reviews": "olist_order_reviews_dataset.csv",
    "customers": "olist_customers_dataset.csv",
}
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


class DatasetError(ValueError):
    """A file of the dataset is missing or a row cannot be read; names the file, row and reason."""


@dataclass(frozen=True)
class Order:
    """One Olist order with everything the dataset holds about it."""
    row: dict
    items: tuple[dict, ...]
    payments: tuple[dict, ...]
    reviews: tuple[dict, ...]
    customer: dict


def _path(directory: Path, name: str) -> Path:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{directory}: {name}(.gz) not found (the Olist dataset's files are expected there)")


def read_rows(directory: Path, key: str) -> list[dict]:
    path = _path(directory, FILES[key])
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def load(directory: Path, limit: int | None = None) -> list[Order]:
    """The dataset's orders by purchase time; with `limit`, the first `limit` order ids in sorted
    order (Olist ids are random hex, so that is a uniform sample across the two years)."""
    directory = Path(directory)
    rows = {key: read_rows(directory, key) for key in FILES}
    by_order: dict[str, dict[str, list]] = {k: defaultdict(list) for k in ("items", "payments", "reviews")}
    for key, grouped in by_order.items():
        for row in rows[key]:
            grouped[row["order_id"]].append(row)
    customers = {row["customer_id"]: row for row in rows["customers"]}
    orders = sorted(rows["orders"], key=lambda r: r["order_id"])
    if limit is not None:
        orders = orders[:limit]
    out = []
    for row in orders:
        customer = customers.get(row["customer_id"])
        if customer is None:
            raise DatasetError(f"orders: order {row['order_id']}: customer {row['customer_id']} not in customers")
        out.append(Order(row, tuple(by_order["items"][row["order_id"]]), tuple(by_order["payments"][row["order_id"]]),
                         tuple(by_order["reviews"][row["order_id"]]), customer))
    return sorted(out, key=lambda o: (o.row["order_purchase_timestamp"], o.row["order_id"]))


def local_ms(text: str) -> int | None:
    """An Olist timestamp ("2017-10-02 10:56:33", Brasília local) as UTC millis; None when empty."""
    if not text:
        return None
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=OLIST_TZ).timestamp() * 1000)


def end_of_local_day(day: dt.date) -> int:
    """The last second of `day` in Brasília, as UTC millis."""
    next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=OLIST_TZ)
    return int(next_midnight.timestamp() * 1000) - 1000


def primary_payment(payments: Iterable[dict]) -> dict | None:
    """The largest payment (ties: the first in sequence): the order's payment method."""
    ranked = sorted(payments, key=lambda p: (-float(p["payment_value"]), int(p["payment_sequential"])))
    return ranked[0] if ranked else None


def _event_id(order_id: str, what: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{order_id}:{what}"))


def order_events(order: Order) -> list[Event]:
    """Every event of one order, in event time."""
    row = order.row
    oid, cid = row["order_id"], order.customer["customer_unique_id"]
    placed_at = local_ms(row["order_purchase_timestamp"])
    approved_at = local_ms(row["order_approved_at"])
    carrier_at = local_ms(row["order_delivered_carrier_date"])
    delivered_at = local_ms(row["order_delivered_customer_date"])
    estimated = row["order_estimated_delivery_date"]
    out: list[Event] = []

    def emit(type_: str, at: int, source: str, payload: dict, what: str | None = None) -> None:
        out.append(Event(_event_id(oid, what or type_), type_, at, source, None, cid, oid, payload))

    quantities: dict[str, int] = defaultdict(int)
    prices: dict[str, float] = {}
    for item in sorted(order.items, key=lambda i: int(i["order_item_id"])):
        quantities[item["product_id"]] += 1
        prices.setdefault(item["product_id"], round(float(item["price"]), 2))
    freight = round(sum(float(i["freight_value"]) for i in order.items), 2)
    paid_total = round(sum(float(p["payment_value"]) for p in order.payments), 2)
    total = round(sum(float(i["price"]) for i in order.items) + freight, 2) if order.items else paid_total
    primary = primary_payment(order.payments)
    method = PAYMENT_METHODS.get(primary["payment_type"], "other") if primary else "other"
    emit("order_placed", placed_at, "web", {
        "items": [{"product_id": p, "quantity": q, "unit_price": prices[p]} for p, q in quantities.items()],
        "total": total, "freight": freight, "payment_method": method,
        "installments": max(1, int(primary["payment_installments"])) if primary else 1,
        "uf": order.customer["customer_state"], "city": order.customer["customer_city"], "carrier": None,
        "promised_delivery_at": end_of_local_day(dt.date.fromisoformat(estimated[:10])) if estimated else placed_at,
    })
    charge_id = f"{oid}-boleto" if method == "boleto" else None
    if charge_id:
        due_at = end_of_local_day(dt.datetime.fromtimestamp(placed_at / 1000, OLIST_TZ).date()
                                  + dt.timedelta(days=BOLETO_DUE_DAYS))
        emit("payment_pending", placed_at, "psp", {"charge_id": charge_id, "method": "boleto",
                                                   "amount": round(float(primary["payment_value"]), 2),
                                                   "due_at": due_at})
    if approved_at is not None:
        emit("order_paid", approved_at, "psp", {"charge_id": charge_id, "method": method, "amount": paid_total})
    if carrier_at is not None:
        emit("order_shipped", carrier_at, "erp", {"carrier": CARRIER, "tracking_code": f"OL{oid[:11].upper()}BR"})
    if delivered_at is not None:
        emit("order_delivered", delivered_at, "carrier", {"receiver": None})
    if row["order_status"] in CANCELLED_STATUSES:
        if charge_id and approved_at is None:
            emit("payment_expired", due_at + MINUTE_MS, "psp", {"charge_id": charge_id, "method": "boleto"})
            emit("order_cancelled", due_at + HOUR_MS, "erp", {"reason": "payment_not_made"})
        else:
            last = max(t for t in (placed_at, approved_at, carrier_at, delivered_at) if t is not None)
            emit("order_cancelled", last + MINUTE_MS, "erp", {"reason": row["order_status"]})
    for review in order.reviews:
        answered_at = local_ms(review["review_answer_timestamp"])
        if answered_at is None:
            continue
        out.append(Event(_event_id(oid, f"review:{review['review_id']}"), "nps_answered", answered_at, "crm",
                         None, cid, oid, {"score": REVIEW_TO_NPS[int(review["review_score"])],
                                          "comment": review["review_comment_message"] or None}))
    return sorted(out, key=lambda e: e.occurred_at)


def replay(orders: Iterable[Order]) -> tuple[list[Event], list[str]]:
    """Every order's events merged in event time, as the log would have received them, and one
    line per order that could not be read ("order <id>: <reason>"; none of its events is kept)."""
    merged, rejected = [], []
    for order in orders:
        try:
            merged.extend(order_events(order))
        except (ValueError, KeyError, TypeError) as exc:
            rejected.append(f"order {order.row.get('order_id')}: {type(exc).__name__}: {exc}")
    merged.sort(key=lambda e: (e.occurred_at, e.order_id or "", e.event_id))
    return merged, rejected


def write_subset(source: Path, target: Path, limit: int) -> int:
    """Copies the rows of the first `limit` orders (see `load`) of every file into `target` (gzip CSV),
    keeping the files consistent by order id; returns the number of orders."""
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    orders = sorted(read_rows(source, "orders"), key=lambda r: r["order_id"])[:limit]
    order_ids = {r["order_id"] for r in orders}
    customer_ids = {r["customer_id"] for r in orders}
    for key, name in FILES.items():
        rows = read_rows(source, key)
        keep = [r for r in rows if (r["customer_id"] in customer_ids if key == "customers" else r["order_id"] in order_ids)]
        with gzip.GzipFile(target / f"{name}.gz", "wb", mtime=0) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:  # mtime 0: same bytes each time
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(keep)
    return len(orders)
