"""The Olist mapping on a hand-written dataset: the named rules (largest payment is the method, boleto
due date, unpaid boleto expiry, review stars as NPS), deterministic ids, and a bad row rejected by
order id while the rest is kept."""
import csv
import gzip

import pytest

from posvenda import olist

HEADERS = {
    "orders": ["order_id", "customer_id", "order_status", "order_purchase_timestamp", "order_approved_at",
               "order_delivered_carrier_date", "order_delivered_customer_date", "order_estimated_delivery_date"],
    "items": ["order_id", "order_item_id", "product_id", "seller_id", "shipping_limit_date", "price", "freight_value"],
    "payments": ["order_id", "payment_sequential", "payment_type", "payment_installments", "payment_value"],
    "reviews": ["review_id", "order_id", "review_score", "review_comment_title", "review_comment_message",
                "review_creation_date", "review_answer_timestamp"],
    "customers": ["customer_id", "customer_unique_id", "customer_zip_code_prefix", "customer_city", "customer_state"],
}


def write(tmp_path, rows: dict) -> None:
    for key, name in olist.FILES.items():
        with gzip.open(tmp_path / f"{name}.gz", "wt", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=HEADERS[key])
            w.writeheader()
            w.writerows(rows.get(key, []))


@pytest.fixture
def dataset(tmp_path):
    write(tmp_path, {
        "orders": [
            {"order_id": "a1", "customer_id": "k1", "order_status": "delivered",
             "order_purchase_timestamp": "2017-10-02 10:56:33", "order_approved_at": "2017-10-02 11:07:15",
             "order_delivered_carrier_date": "2017-10-04 19:55:00", "order_delivered_customer_date": "2017-10-10 21:25:13",
             "order_estimated_delivery_date": "2017-10-18 00:00:00"},
            {"order_id": "b2", "customer_id": "k2", "order_status": "canceled",
             "order_purchase_timestamp": "2018-01-05 09:00:00", "order_approved_at": "",
             "order_delivered_carrier_date": "", "order_delivered_customer_date": "",
             "order_estimated_delivery_date": "2018-01-30 00:00:00"},
            {"order_id": "c3", "customer_id": "k3", "order_status": "delivered",
             "order_purchase_timestamp": "not a time", "order_approved_at": "", "order_delivered_carrier_date": "",
             "order_delivered_customer_date": "", "order_estimated_delivery_date": ""},
        ],
        "items": [{"order_id": "a1", "order_item_id": "1", "product_id": "p1", "seller_id": "s", "shipping_limit_date": "",
                   "price": "29.99", "freight_value": "8.72"},
                  {"order_id": "a1", "order_item_id": "2", "product_id": "p1", "seller_id": "s", "shipping_limit_date": "",
                   "price": "29.99", "freight_value": "8.72"},
                  {"order_id": "b2", "order_item_id": "1", "product_id": "p2", "seller_id": "s", "shipping_limit_date": "",
                   "price": "100.00", "freight_value": "10.00"}],
        "payments": [{"order_id": "a1", "payment_sequential": "1", "payment_type": "voucher", "payment_installments": "1",
                      "payment_value": "20.00"},
                     {"order_id": "a1", "payment_sequential": "2", "payment_type": "credit_card",
                      "payment_installments": "3", "payment_value": "57.42"},
                     {"order_id": "b2", "payment_sequential": "1", "payment_type": "boleto", "payment_installments": "1",
                      "payment_value": "110.00"}],
        "reviews": [{"review_id": "r1", "order_id": "a1", "review_score": "4", "review_comment_title": "",
                     "review_comment_message": "", "review_creation_date": "2017-10-11 00:00:00",
                     "review_answer_timestamp": "2017-10-12 08:00:00"}],
        "customers": [{"customer_id": f"k{n}", "customer_unique_id": f"u{n}", "customer_zip_code_prefix": "1",
                       "customer_city": "campinas", "customer_state": "SP"} for n in (1, 2, 3)],
    })
    return tmp_path


def test_orders_become_the_transitions_the_rules_name(dataset):
    events, rejected = olist.replay(olist.load(dataset))
    assert rejected == ["order c3: ValueError: Invalid isoformat string: 'not a time'"]
    a1 = [e for e in events if e.order_id == "a1"]
    assert [e.type for e in a1] == ["order_placed", "order_paid", "order_shipped", "order_delivered", "nps_answered"]
    placed = a1[0].payload
    assert placed["payment_method"] == "credit_card" and placed["installments"] == 3, "the largest payment"
    assert placed["items"] == [{"product_id": "p1", "quantity": 2, "unit_price": 29.99}]
    assert placed["total"] == 77.42 and placed["freight"] == 17.44
    assert a1[0].customer_id == "u1" and a1[-1].payload["score"] == 8
    assert a1[0].occurred_at == 1506952593000  # 2017-10-02 10:56:33 in Brasília (UTC-3)
    b2 = {e.type: e for e in events if e.order_id == "b2"}
    due = b2["payment_pending"].payload["due_at"]
    assert due == 1515463199000  # 2018-01-08 23:59:59 in Brasília summer time (UTC-2) = 01:59:59Z: 3 days later
    assert b2["payment_expired"].occurred_at == due + olist.MINUTE_MS
    assert b2["order_cancelled"].payload["reason"] == "payment_not_made"


def test_ids_are_deterministic(dataset):
    first, _ = olist.replay(olist.load(dataset))
    again, _ = olist.replay(olist.load(dataset))
    assert [e.event_id for e in first] == [e.event_id for e in again] and len({e.event_id for e in first}) == len(first)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(olist.DatasetError, match="olist_orders_dataset.csv"):
        olist.load(tmp_path)
