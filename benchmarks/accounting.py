"""The arithmetic of a benchmark run, kept free of Kafka and clocks so a unit test can check it.

Messages written are counted from end offsets: every topic a runner created carries its run token
in the name (posvenda and Faust put it in front, Quix inside its `changelog__<group>--...` and
`repartition__<group>--...` names), so after a run the sum of their end offsets is everything the
runner wrote, split here into state changelogs, re-key hops and outputs.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CATEGORIES = ("changelog", "rekey", "output")

# Logical names of the topics that only move a record to another key for the same app to read back.
REKEY_TOPICS = frozenset({"sessions.order-steps", "customers.facts", "products.facts", "carriers.facts",
                          "orders.ticks", "faust.customer-facts"})


def category(topic: str, sources: Iterable[str]) -> str:
    """What a topic of the run holds: "source", "changelog", "rekey", "output" or "bookkeeping"."""
    if topic in set(sources):
        return "source"
    if "changelog" in topic:
        return "changelog"
    if "repartition" in topic or any(topic.endswith(name) for name in REKEY_TOPICS):
        return "rekey"
    if "__assignor" in topic or topic.startswith("__"):
        return "bookkeeping"
    return "output"


def written(end_offsets: Mapping[str, int], sources: Iterable[str]) -> dict[str, int]:
    """Messages written per category (sources excluded; "total" also counts bookkeeping topics)."""
    sources = set(sources)
    split = dict.fromkeys((*CATEGORIES, "total"), 0)
    for topic, end in end_offsets.items():
        kind = category(topic, sources)
        if kind == "source":
            continue
        if kind in CATEGORIES:
            split[kind] += end
        split["total"] += end
    return split


def per_event(split: Mapping[str, int], events: int) -> dict[str, float]:
    """Each count divided by the source events the runner consumed."""
    if events <= 0:
        raise ValueError(f"events={events}: a run needs at least one source event")
    return {name: count / events for name, count in split.items()}


def rate(events: int, seconds: float) -> float | None:
    """Events per second, None when nothing was timed."""
    return events / seconds if seconds > 0 and events > 0 else None


def median(values: Iterable[float | None]) -> float | None:
    """Median of the measured values (runs that produced no number are left out)."""
    measured = [v for v in values if v is not None]
    return statistics.median(measured) if measured else None


def ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value is not None and reference else None


@dataclass
class Run:
    """One timed run of one runner."""

    runner: str
    events: int  # source events the runner consumed
    timed_events: int  # those inside the timed window
    seconds: float
    cpu_seconds: float  # CPU of the runner process inside the timed window
    peak_rss_kb: int | None
    written: dict  # per category, see written()
    note: str = ""

    @property
    def events_per_s(self) -> float | None:
        return rate(self.timed_events, self.seconds)

    @property
    def cpu_us_per_event(self) -> float | None:
        return self.cpu_seconds / self.timed_events * 1e6 if self.timed_events else None


@dataclass
class Row:
    """A runner's line of the table: medians over its runs and ratios to the references."""

    runner: str
    runs: int
    events: int
    events_per_s: float | None
    vs_ceiling: float | None
    vs_faust_batched: float | None
    written_per_event: dict
    cpu_us_per_event: float | None
    peak_rss_mb: float | None
    notes: str


CEILING = "ceiling: aiokafka + fastavro decode"
FAUST_BATCHED = "Faust order path, batched"


def summarise(runs: list[Run]) -> list[Row]:
    """One row per runner (in first-seen order), ratios against the ceiling and the batched Faust app."""
    by_runner: dict[str, list[Run]] = {}
    for run in runs:
        by_runner.setdefault(run.runner, []).append(run)
    rates = {name: median(r.events_per_s for r in group) for name, group in by_runner.items()}
    rows = []
    for name, group in by_runner.items():
        events = max(r.events for r in group)
        split = {k: median(per_event(r.written, r.events)[k] for r in group) for k in (*CATEGORIES, "total")}
        rss = [r.peak_rss_kb for r in group if r.peak_rss_kb]
        notes = "; ".join(dict.fromkeys(r.note for r in group if r.note))
        rows.append(Row(name, len(group), events, rates[name], ratio(rates[name], rates.get(CEILING)),
                        ratio(rates[name], rates.get(FAUST_BATCHED)), split,
                        median(r.cpu_us_per_event for r in group), max(rss) / 1024 if rss else None, notes))
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(rows: list[Row]) -> str:
    """The results table (GitHub markdown)."""
    head = ("| runner | runs | events | events/s (median) | × ceiling | × batched Faust | messages written per event: "
            "total (changelog / re-key / output) | CPU µs per event | peak RSS MB |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        w = r.written_per_event
        writes = "–" if not w["total"] else (f"{w['total']:.2f} ({w['changelog']:.2f} / {w['rekey']:.2f} / "
                                             f"{w['output']:.2f})")
        lines.append(f"| {r.runner} | {r.runs} | {r.events:,} | {_fmt(r.events_per_s, ',.0f')} | "
                     f"{_fmt(r.vs_ceiling, '.3f')} | {_fmt(r.vs_faust_batched, '.2f')} | {writes} | "
                     f"{_fmt(r.cpu_us_per_event, ',.0f')} | {_fmt(r.peak_rss_mb, '.0f')} |")
    notes = [f"- {r.runner}: {r.notes}" for r in rows if r.notes]
    return head + "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"
