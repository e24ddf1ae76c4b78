"""The worker's local table state survives only a clean stop.

A batch flush writes RocksDB when its changelog records are handed to the producer; a kill -9 (or a
crash) can come before the broker has them, and Faust would then restart from a local store that is
ahead of its changelog: a redelivered event would find its state already moved and send nothing, and
another worker taking the partition later would restore a state without it. So the worker writes a
marker when it stops cleanly and removes it when it starts; a start without the marker removes the
local tables, and Faust restores them from the changelogs (what the broker acknowledged) before any
event is folded. Kafka Streams does the same with its task state after an unclean shutdown under
exactly-once.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "stopped-cleanly"


def prepare(data_dir: Path, table_dir: Path) -> bool:
    """Called before the worker starts: removes `table_dir` unless the last run stopped cleanly, and
    removes the marker (a kill from now on leaves none). Returns True when the tables were removed."""
    marker = data_dir / MARKER
    clean = marker.exists()
    marker.unlink(missing_ok=True)
    if clean or not table_dir.exists():
        return False
    log.warning("the last run of this worker did not stop cleanly (killed or crashed): its local tables may "
                "hold writes the broker never acknowledged, so %s is removed and every table is restored "
                "from its changelog", table_dir)
    shutil.rmtree(table_dir)
    return True


def mark_clean(data_dir: Path) -> None:
    """Called after the worker stopped without error (its producer flushed)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("the last run stopped cleanly; its local tables match the changelogs\n")
