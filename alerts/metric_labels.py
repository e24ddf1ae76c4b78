"""Bounded metric labels: event-supplied values mapped onto the allowlists in metric_labels.toml."""
from __future__ import annotations

import functools
import tomllib
from pathlib import Path

CONFIG_PATH = Path(__file__).resolve().parent / "metric_labels.toml"
OTHER = "other"
UNKNOWN = "unknown"


@functools.cache
def allowlists(path: Path = CONFIG_PATH) -> dict[str, frozenset[str]]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    for name, values in data.items():
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"{path.name}: {name} must be a list of non-empty strings")
    return {name: frozenset(values) for name, values in data.items()}


def bounded(dimension: str, value: str | None) -> str:
    """`value` when the allowlist of `dimension` has it, "unknown" when missing, else "other"."""
    if value is None or value == "":
        return UNKNOWN
    return value if value in allowlists()[dimension] else OTHER
