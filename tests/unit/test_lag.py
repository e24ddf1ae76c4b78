"""Consumer lag per partition from the consumer's own view: log end minus committed offset."""
from collections import namedtuple

from streams.lag import lag_by_partition

TP = namedtuple("TP", "topic partition")
NAMES = {"t1.orders.events": "orders.events", "t1.visits.events": "visits.events"}


def test_lag_is_log_end_minus_committed_for_catalogue_topics_only():
    assignment = {TP("t1.orders.events", 0), TP("t1.orders.events", 1), TP("t1.visits.events", 0),
                  TP("t1.posvenda-funnel-counts-changelog", 0)}
    ends = {TP("t1.orders.events", 0): 120, TP("t1.orders.events", 1): 7, TP("t1.visits.events", 0): 50,
            TP("t1.posvenda-funnel-counts-changelog", 0): 999}
    committed = {TP("t1.orders.events", 0): 100, TP("t1.orders.events", 1): 7}
    assert lag_by_partition(assignment, ends.get, committed, NAMES) == {
        ("orders.events", 0): 20, ("orders.events", 1): 0, ("visits.events", 0): 50}


def test_partitions_whose_log_end_is_unknown_yet_are_skipped_and_lag_is_never_negative():
    assignment = {TP("t1.orders.events", 0), TP("t1.orders.events", 1)}
    ends = {TP("t1.orders.events", 0): None, TP("t1.orders.events", 1): 5}
    committed = {TP("t1.orders.events", 1): 6}  # committed past a transaction marker's stale log end
    assert lag_by_partition(assignment, ends.get, committed, NAMES) == {("orders.events", 1): 0}


def test_tick_heartbeats_are_not_counted_as_work_waiting():
    from streams.lag import lag_topics
    from topics import catalogue

    names = {t.name for t in lag_topics(catalogue.all_topics())}
    assert catalogue.ORDER_TICKS.name not in names
    assert {t.name for t in catalogue.SOURCE_TOPICS} <= names and catalogue.SESSION_ORDER_STEPS.name in names
