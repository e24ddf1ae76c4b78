"""Imports every agent and view, then runs the Faust worker (`posvenda worker`)."""
from __future__ import annotations

from projections import funnel, http  # noqa: F401  (registers tables and views)
from streams import orders, sessions  # noqa: F401  (registers agents)
from streams.app import app, settings


def main(extra_args: list[str] | None = None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.main_argv = None
    app.main(["worker", "--loglevel", "info", "--web-port", str(settings.web_port),
              "--web-host", settings.web_host, *(extra_args or [])])
