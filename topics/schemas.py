"""Loads the Avro schemas in topics/schemas and indexes every released writer schema by fingerprint.

`schemas/<domain>/<entity>.avsc` is the current (writer and reader) schema of a record.
`schemas/releases/<full.Name>/v<N>.avsc` are frozen copies of every version ever released, so a
message written by any past writer can still be resolved by its fingerprint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).parent / "schemas"
RELEASES_DIR = SCHEMA_DIR / "releases"


@dataclass(frozen=True)
class Schema:
    name: str  # full name, e.g. posvenda.orders.OrderEvent
    raw: dict
    parsed: dict
    fingerprint: bytes  # CRC-64-AVRO of the Parsing Canonical Form, 8 bytes little-endian
    path: Path


def _load(path: Path) -> Schema:
    raw = json.loads(path.read_text())
    parsed = fastavro.parse_schema(raw, _write_hint=False)
    canonical = to_parsing_canonical_form(raw)
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    name = f"{raw['namespace']}.{raw['name']}" if "." not in raw["name"] else raw["name"]
    return Schema(name=name, raw=raw, parsed=parsed, fingerprint=fp, path=path)


@cache
def current() -> dict[str, Schema]:
    """Current schema of every record, by full name."""
    found = {}
    for path in sorted(SCHEMA_DIR.glob("*/*.avsc")):
        if path.parent.name == "releases":
            continue
        schema = _load(path)
        found[schema.name] = schema
    return found


@cache
def releases() -> dict[str, list[Schema]]:
    """Released versions of every record, oldest first."""
    found: dict[str, list[Schema]] = {}
    for folder in sorted(RELEASES_DIR.glob("*")):
        versions = sorted(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
        found[folder.name] = [_load(p) for p in versions]
    return found


@cache
def by_fingerprint() -> dict[bytes, Schema]:
    """Every schema a message may have been written with: current ones and all releases."""
    index = {s.fingerprint: s for versions in releases().values() for s in versions}
    index.update({s.fingerprint: s for s in current().values()})
    return index


def get(name: str) -> Schema:
    try:
        return current()[name]
    except KeyError:
        raise KeyError(f"no schema named {name!r}; known: {sorted(current())}") from None
