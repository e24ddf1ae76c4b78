"""The terminal renderers of the demo and `posvenda funnel`: money in Brazilian form, the recovery
line per method, and the backlog read from a worker's Prometheus text."""
from posvenda.live import backlog, brl, render_recovery


def test_brl_uses_the_brazilian_separators():
    assert brl(1234.5) == "R$ 1.234,50"
    assert brl(0) == "R$ 0,00" and brl(1234567.891) == "R$ 1.234.567,89"


def test_recovery_line_per_method():
    body = {"methods": {"boleto": {"charges": 31, "pending": 30, "targeted": 21, "recovered": 1,
                                   "recovered_revenue_brl": 546.7, "recovery_rate": 0.0476},
                        "pix": {"charges": 0, "pending": 0, "targeted": 0, "recovered": 0,
                                "recovered_revenue_brl": 0.0, "recovery_rate": None}},
            "actions": {"boleto": {"reminder": 14, "last_call": 10}, "pix": {}}}
    boleto, pix = render_recovery(body).splitlines()
    assert "31 charges" in boleto and "last_call 10, reminder 14" in boleto and "R$ 546,70" in boleto
    assert "rate 5%" in boleto and "actions: none" in pix and "rate -" in pix


def test_backlog_sums_the_lag_of_every_partition():
    text = """# HELP posvenda_consumer_lag_messages Messages behind the log end.
# TYPE posvenda_consumer_lag_messages gauge
posvenda_consumer_lag_messages{partition="0",topic="visits.events"} 120.0
posvenda_consumer_lag_messages{partition="1",topic="orders.events"} 3.0
# HELP posvenda_events_processed_total Events.
# TYPE posvenda_events_processed_total counter
posvenda_events_processed_total{topic="visits.events",type="page_viewed"} 99.0
"""
    assert backlog(text) == 123
    assert backlog("") == 0
