"""Imports every agent and view, then runs the Faust worker (`posvenda worker`)."""
from __future__ import annotations

import sys

# Importing a module registers its agents, tables, handlers and views with the app.
from projections import customer360, funnel, handling_time, http, order_history, recovery, returns, visits  # noqa: F401
from streams import customers, lag, orders, product_alerts, sessions  # noqa: F401
from streams import recovery as recovery_agents  # noqa: F401
from streams.app import app, settings


def main(extra_args: list[str] | None = None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sys.argv = ["posvenda", "worker", "--loglevel", "info", "--web-port", str(settings.web_port),
                "--web-host", settings.web_host, *(extra_args or [])]
    app.main()  # the Faust CLI reads sys.argv
