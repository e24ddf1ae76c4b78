"""`posvenda ingest FILE.jsonl`: validates every line, publishes the valid ones, reports the rest."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from topics import events


@dataclass(frozen=True)
class Rejection:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: field {self.field}: {self.reason}"


def parse_lines(lines: Iterable[str]) -> Iterator[events.Event | Rejection]:
    """Each non-blank line as an Event, or a Rejection naming its line number, field and reason."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Rejection(number, "(line)", f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        try:
            yield events.from_json(obj)
        except events.InvalidEvent as exc:
            yield Rejection(number, exc.field, exc.reason)


def ingest(path: Path, publisher, progress=None) -> list[Rejection]:
    """Publishes every valid line of `path`; returns the rejected lines (none of them is published)."""
    rejected = []
    with path.open(encoding="utf-8") as handle:
        for item in parse_lines(handle):
            if isinstance(item, Rejection):
                rejected.append(item)
            else:
                publisher.publish(item)
            if progress is not None:
                progress.update(1)
    return rejected
