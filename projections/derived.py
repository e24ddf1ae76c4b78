"""Counts derived from an entity table, kept in memory and rebuilt from the table when the worker's
partition assignment changes.

Why not a second Faust table of counts: an event would then write two tables (the entity and the
counts), and no Kafka guarantee makes those two changelog writes atomic under every fault. A crash,
or faust's exactly-once transactions failing during a rebalance (seen in the fault suite: "No
transaction producer found", "ProducerFenced"), could keep one write and lose the other, and the
counts would drift for good. Deriving the counts from the entity table, whose per-key writes are
idempotent folds, leaves one source of truth: whatever the table holds after recovery, the counts
follow. The in-memory index is a cache of the table, never a second store: it is rebuilt from the
table whenever the set of assigned partitions changes.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable


class NotReady(RuntimeError):
    """The table is being recovered or rebalanced: counts cannot be rebuilt from it yet."""


class DerivedCounts:
    """Per-partition counts of cells contributed by the states of an entity table.

    `contribution(state)` returns the cells a state counts once in; every state records the source
    partition it was written from under `partition_field`.
    """

    def __init__(self, table, contribution: Callable[[dict], Iterable[tuple]], assigned: Callable[[], frozenset],
                 settled: Callable[[], bool] = lambda: True, partition_field: str = "p"):
        self.table = table
        self.settled = settled
        self.contribution = contribution
        self.assigned = assigned
        self.partition_field = partition_field
        self._counts: dict[int, Counter] = {}
        self._built_for: frozenset | None = None

    def _current(self, from_agent: bool = False) -> dict[int, Counter]:
        partitions = self.assigned()
        if partitions != self._built_for:
            settled = self.settled()
            if not from_agent and not settled:  # a rebuild now would read a half-restored table
                raise NotReady("partitions are being assigned or restored")
            counts: dict[int, Counter] = {p: Counter() for p in partitions}
            for _, state in self.table.items():
                if state and state.get(self.partition_field) in counts:
                    counts[state[self.partition_field]].update(self.contribution(state))
            # Built while a restore may still be running (an agent draining buffered events during a
            # rebalance): use it for this event, but rebuild again next time instead of keeping it.
            self._counts, self._built_for = counts, (partitions if settled else None)
        return self._counts

    def move(self, partition: int, old: dict | None, new: dict) -> dict[tuple, int]:
        """Applies the change of one state; returns {cell: new count in this partition} for moved cells.

        Call it from the agent (which Faust runs only on a restored table) before writing `new` to the
        table, so that a rebuild it triggers sees `old`.
        """
        counts = self._current(from_agent=True).setdefault(partition, Counter())
        before, after = set(self.contribution(old)) if old else set(), set(self.contribution(new))
        moved = {}
        for cell in after - before:
            counts[cell] += 1
            moved[cell] = counts[cell]
        for cell in before - after:
            counts[cell] -= 1
            moved[cell] = counts[cell]
        undo_on_discard = getattr(self.table, "undo_on_discard", None)  # the event's unit of work, if any
        if undo_on_discard is not None:
            undo_on_discard(lambda: (counts.subtract(after - before), counts.update(before - after)))
        return moved

    def partials(self) -> list[list]:
        """[["cell|partition", n], ...] for every non-zero count this worker holds."""
        return [["|".join((*cell, str(p))), n] for p, counts in self._current().items() for cell, n in counts.items() if n]

    def merged(self) -> dict[tuple, int]:
        total: Counter = Counter()
        for counts in self._current().values():
            total.update(counts)
        return {cell: n for cell, n in total.items() if n}


def merge_partials(partials: list) -> dict[tuple, int]:
    """Partials of several workers summed over partitions: {cell: n}."""
    merged: Counter = Counter()
    for key, n in partials:
        merged[tuple(key.split("|")[:-1])] += n
    return {cell: n for cell, n in merged.items() if n}
