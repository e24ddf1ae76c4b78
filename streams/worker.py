"""Imports every agent and view, then runs the Faust worker (`posvenda worker`).

Exactly-once and local state: under `exactly_once` a crash aborts the open Kafka transaction, but
the local RocksDB files may already hold that transaction's table writes, and Faust would resume from
them and count those events again (seen in the kill -9 fault test). So, as Kafka Streams does under
EOS, a worker that did not stop cleanly discards its local state and restores it from the
read-committed changelogs, which hold exactly the committed writes.
"""
from __future__ import annotations

import logging
import shutil
import sys

# Importing a module registers its agents, tables, handlers and views with the app.
from projections import customer360, funnel, handling_time, http, order_history, recovery, returns, visits  # noqa: F401
from streams import customers, lag, orders, product_alerts, sessions  # noqa: F401
from streams import recovery as recovery_agents  # noqa: F401
from streams.app import app, settings

log = logging.getLogger(__name__)
CLEAN_STOP_MARKER = ".clean-stop"


def discard_state_after_unclean_stop(data_dir) -> bool:
    """Deletes the local table state unless the last run left the clean-stop marker; True if deleted."""
    marker = data_dir / CLEAN_STOP_MARKER
    if marker.exists():
        marker.unlink()
        return False
    stale = [p for p in data_dir.iterdir() if p.name != CLEAN_STOP_MARKER] if data_dir.exists() else []
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return bool(stale)


def main(extra_args: list[str] | None = None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.processing_guarantee == "exactly_once" and discard_state_after_unclean_stop(settings.data_dir):
        print(f"posvenda worker: the last run did not stop cleanly; local state in {settings.data_dir} discarded, "
              "restoring it from the changelogs", file=sys.stderr)
    sys.argv = ["posvenda", "worker", "--loglevel", "info", "--web-port", str(settings.web_port),
                "--web-host", settings.web_host, *(extra_args or [])]
    try:
        app.main()  # the Faust CLI reads sys.argv
    except SystemExit as exit_:
        if exit_.code in (0, None):
            (settings.data_dir / CLEAN_STOP_MARKER).touch()
        raise
