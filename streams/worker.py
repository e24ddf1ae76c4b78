"""Imports every agent and view, then runs the Faust worker (`posvenda worker`)."""
from __future__ import annotations

import logging
import sys
import time

# Importing a module registers its agents, tables, handlers and views with the app.
from projections import customer360, funnel, handling_time, http, order_history, recovery, returns, visits  # noqa: F401
from streams import customers, lag, orders, product_alerts, sessions  # noqa: F401
from streams import recovery as recovery_agents  # noqa: F401
from streams.app import app, settings
from streams.web_auth import open_http_refusal


class RepeatFilter(logging.Filter):
    """Lets one identical record through per `interval_s`: while the broker is down, aiokafka's
    sender and fetcher retry without pause and log ~2,700 identical errors a second; an operator
    needs one line a few seconds, with the count of what was folded."""

    def __init__(self, interval_s: float = 5.0):
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = f"{record.name}:{record.getMessage()[:120]}"
        now = time.monotonic()
        last_at, suppressed = self._last.get(key, (0.0, 0))
        if now - last_at < self.interval_s:
            self._last[key] = (last_at, suppressed + 1)
            return False
        if suppressed:
            record.msg = f"{record.msg} (and {suppressed} more like it in the last {self.interval_s:.0f} s)"
        self._last[key] = (now, 0)
        return True


def copartitioning_errors() -> list[str]:
    """Existing source topics whose partition count breaks the co-partitioning of an agent's group."""
    from topics import catalogue
    from topics.admin import copartitioning_errors as check

    return check(settings, {
        "sessions agent": sessions.SESSION_SOURCES, "orders agent": (*orders.ORDER_SOURCES, catalogue.ORDER_TICKS),
        "customers agent": customers.CUSTOMER_SOURCES, "return-rate alerts": (catalogue.PRODUCT_FACTS,),
        "late-delivery alerts": (catalogue.CARRIER_FACTS,)})


def main(extra_args: list[str] | None = None) -> None:
    refusal = open_http_refusal(settings.web_host, settings.api_token, settings.allow_open_http)
    if refusal:
        raise SystemExit(f"posvenda worker: {refusal}")
    errors = copartitioning_errors()
    if errors:  # one partition of a group would not see the whole history of its key
        print("posvenda worker: refusing to start, topics break co-partitioning:\n  " + "\n  ".join(errors)
              + "\n  (run `posvenda topics create` to see every drift from the catalogue)", file=sys.stderr)
        raise SystemExit(2)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("aiokafka", "aiokafka.producer.sender", "aiokafka.consumer.fetcher", "aiokafka.cluster", "aiokafka.conn"):
        logging.getLogger(name).addFilter(RepeatFilter())
    extra_args = list(extra_args or [])
    if "--loglevel" not in extra_args:
        extra_args = ["--loglevel", "info", *extra_args]
    sys.argv = ["posvenda", "worker", "--web-port", str(settings.web_port),
                "--web-host", settings.web_host, *(extra_args or [])]
    app.main()  # the Faust CLI reads sys.argv
