"""Imports every agent and view, then runs the Faust worker (`posvenda worker`)."""
from __future__ import annotations

import sys

from projections import funnel, http  # noqa: F401  (registers tables and views)
from streams import orders, sessions  # noqa: F401  (registers agents and their handlers)
from projections import handling_time  # noqa: F401  (order handling time histogram)
from streams import lag  # noqa: F401  (consumer lag timer and pipeline sensor)
from streams.app import app, settings


def main(extra_args: list[str] | None = None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sys.argv = ["posvenda", "worker", "--loglevel", "info", "--web-port", str(settings.web_port),
                "--web-host", settings.web_host, *(extra_args or [])]
    app.main()  # the Faust CLI reads sys.argv
