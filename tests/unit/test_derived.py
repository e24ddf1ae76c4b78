"""Counts derived from an entity table: incremental moves agree with a rebuild from the table."""
import pytest

from projections.derived import DerivedCounts, NotReady, merge_partials


def cells(state):
    return {("day", state["day"], step) for step in state["steps"]}


def make(table, assigned=frozenset({0, 1}), settled=True):
    box = {"assigned": assigned, "settled": settled}
    return DerivedCounts(table, cells, lambda: box["assigned"], lambda: box["settled"]), box


def test_moves_then_rebuild_give_the_same_counts():
    table = {}
    counts, box = make(table)
    history = [("a", 0, {"day": "d1", "steps": ["x"]}), ("b", 1, {"day": "d1", "steps": ["x", "y"]}),
               ("a", 0, {"day": "d2", "steps": ["x", "y"]})]  # a late event moves "a" to another day
    for key, partition, state in history:
        state = {**state, "p": partition}
        counts.move(partition, table.get(key), state)
        table[key] = state
    incremental = counts.merged()
    box["assigned"] = frozenset({0, 1, 2})  # a rebalance: rebuild from the table
    assert counts.merged() == incremental == {("day", "d1", "x"): 1, ("day", "d1", "y"): 1,
                                              ("day", "d2", "x"): 1, ("day", "d2", "y"): 1}


def test_readers_get_not_ready_while_the_table_is_restored():
    counts, box = make({}, settled=False)
    with pytest.raises(NotReady):
        counts.partials()


def test_partials_of_several_workers_merge_over_partitions():
    assert merge_partials([["day|d1|x|0", 2], ["day|d1|x|1", 3], ["day|d2|x|1", 0]]) == {("day", "d1", "x"): 5}
