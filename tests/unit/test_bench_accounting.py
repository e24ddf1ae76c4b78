"""The benchmark's arithmetic: message accounting per category, medians and ratios (no broker, no clock)."""
from __future__ import annotations

import pytest

from benchmarks import accounting
from benchmarks.accounting import CEILING, FAUST_BATCHED, Run
from benchmarks.profile import summarise as profile_summary

SOURCES = ["b1-posvenda.orders.events", "b1-posvenda.feedback.events"]


def test_topics_of_a_run_are_split_into_changelog_rekey_and_output():
    # Given the end offsets of every topic a posvenda run and a Quix run created
    ends = {
        "b1-posvenda.orders.events": 1000, "b1-posvenda.feedback.events": 200,  # sources: not written by the runner
        "b1-posvenda.posvenda-order-history-changelog": 900,
        "b1-posvenda.posvenda-customer-360-changelog": 300,
        "b1-posvenda.customers.facts": 150, "b1-posvenda.products.facts": 50,
        "b1-posvenda.projections.orders": 400, "b1-posvenda.recovery.actions": 20,
        "b1-posvenda.posvenda-__assignor-__leader": 3,
        "changelog__b1-quix--b1.orders.events--default": 70,
        "repartition__b1-quix--b1.orders.events--customer": 60,
    }
    # When they are accounted
    split = accounting.written(ends, SOURCES)
    # Then each lands in its category, and the total also counts the bookkeeping topic
    assert split == {"changelog": 900 + 300 + 70, "rekey": 150 + 50 + 60, "output": 400 + 20,
                     "total": 900 + 300 + 70 + 150 + 50 + 60 + 400 + 20 + 3}


def test_changelog_of_a_repartition_step_counts_as_changelog():
    assert accounting.category("changelog__g--repartition.b1.orders.events.customer--default", SOURCES) == "changelog"
    assert accounting.category("b1-posvenda.orders.events.dlq", SOURCES) == "output"


def test_messages_per_event_divide_by_the_source_events_read():
    assert accounting.per_event({"changelog": 3, "rekey": 1, "output": 2, "total": 6}, 4) == {
        "changelog": 0.75, "rekey": 0.25, "output": 0.5, "total": 1.5}
    with pytest.raises(ValueError, match="events=0"):
        accounting.per_event({"total": 1}, 0)


def test_median_leaves_out_runs_without_a_number_and_ratio_needs_a_reference():
    assert accounting.median([300.0, None, 100.0, 200.0]) == 200.0
    assert accounting.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert accounting.median([None]) is None
    assert accounting.ratio(50.0, 200.0) == 0.25
    assert accounting.ratio(50.0, None) is None
    assert accounting.ratio(None, 200.0) is None


def _run(name, events, seconds, cpu=1.0, written=None, rss=1024):
    return Run(name, events, events, seconds, cpu, rss, written or dict.fromkeys(("changelog", "rekey", "output", "total"), 0))


def test_rows_take_the_median_of_runs_and_ratios_against_ceiling_and_batched_faust():
    # Given three interleaved runs of three runners
    w = {"changelog": 2000, "rekey": 1000, "output": 1000, "total": 4000}
    runs = [
        _run(CEILING, 10_000, 1.0), _run(FAUST_BATCHED, 1000, 1.0), _run("worker", 1000, 10.0, cpu=5.0, written=w),
        _run(CEILING, 10_000, 2.0), _run(FAUST_BATCHED, 1000, 0.5), _run("worker", 1000, 5.0, cpu=5.0, written=w),
        _run(CEILING, 10_000, 0.5), _run(FAUST_BATCHED, 1000, 2.0), _run("worker", 1000, 4.0, cpu=2.0, written=w, rss=4096),
    ]
    # When summarised
    rows = {row.runner: row for row in accounting.summarise(runs)}
    # Then rates are medians (ceiling 10,000/s; Faust 1,000/s; worker median of 100, 200, 250 = 200/s)
    assert rows[CEILING].events_per_s == 10_000
    assert rows[FAUST_BATCHED].events_per_s == 1000
    worker = rows["worker"]
    assert worker.events_per_s == 200
    assert worker.vs_ceiling == pytest.approx(0.02)
    assert worker.vs_faust_batched == pytest.approx(0.2)
    # and the worker's writes per event are 4 (2 changelog, 1 re-key, 1 output), CPU the median 5 ms/event
    assert worker.written_per_event == {"changelog": 2.0, "rekey": 1.0, "output": 1.0, "total": 4.0}
    assert worker.cpu_us_per_event == 5000
    assert worker.peak_rss_mb == 4.0
    assert worker.runs == 3


def test_markdown_table_has_one_line_per_runner_and_a_dash_for_missing_ratios():
    rows = accounting.summarise([_run("worker only", 500, 2.0)])
    table = accounting.markdown(rows)
    line = next(x for x in table.splitlines() if x.startswith("| worker only"))
    assert line.split(" | ")[3:6] == ["250", "–", "–"]


def test_profile_summary_counts_self_and_inclusive_samples_per_function():
    # Given py-spy raw lines: "frame;frame;frame count", the same function at two lines
    lines = ["main (w.py:1);fold (f.py:10);dumps (json.py:5) 6",
             "main (w.py:1);fold (f.py:12) 3",
             "main (w.py:1);send (k.py:7) 1"]
    total, own, inclusive = profile_summary(lines)
    assert total == 10
    assert own == {"dumps (json.py)": 6, "fold (f.py)": 3, "send (k.py)": 1}
    assert inclusive["main (w.py)"] == 10 and inclusive["fold (f.py)"] == 9


def test_drained_needs_every_partition_with_messages_committed_to_its_end():
    from benchmarks.drain import drained

    ends = {("t", 0): 10, ("t", 1): 0, ("facts", 0): 5}
    assert drained({("t", 0): 10, ("facts", 0): 5}, ends)  # an empty partition needs no commit
    assert not drained({("t", 0): 10, ("facts", 0): 4}, ends)  # the re-key topic is one behind
    assert not drained({("t", 0): 10}, ends)


def test_a_crash_in_a_runner_log_fails_the_run(tmp_path):
    from benchmarks.drain import RunnerFailed, check_log

    log = tmp_path / "runner.log"
    log.write_text("[WARNING] Timer commit is overlapping\n")
    check_log(log)  # no crash: passes
    log.write_text("[ERROR] [^----Agent*: orders]: Crashed reason=KeyError('o-1')\n")
    with pytest.raises(RunnerFailed, match="KeyError"):
        check_log(log)


def test_peer_results_are_compared_with_counts_taken_from_the_events():
    from benchmarks.verify import difference, expected_customers
    from topics import catalogue, events

    def order_event(event_id, order_id, customer_id):
        event = events.Event(event_id, "order_delivered", 1_741_611_600_000, "carrier", None, customer_id, order_id,
                             {"receiver": None})
        return catalogue.ORDERS, order_id, events.encode(event)

    # Given three order events of one customer, one of them delivered twice (same event id)
    ids = ["00000000-0000-4000-8000-00000000000" + str(i) for i in range(3)]
    messages = [order_event(ids[0], "o-1", "c-1"), order_event(ids[1], "o-2", "c-1"), order_event(ids[1], "o-2", "c-1"),
                order_event(ids[2], "o-1", "c-1")]
    expected = expected_customers(messages)
    # Then the customer has 3 distinct events over orders o-1 and o-2
    assert expected == {"c-1": (3, ["o-1", "o-2"])}
    assert difference(expected, {"c-1": {"events": 3, "orders": ["o-1", "o-2"]}}) is None
    assert "4 events" in difference(expected, {"c-1": {"events": 4, "orders": ["o-1", "o-2"]}})
    assert "1 customers missing" in difference(expected, {})


def test_latency_matches_each_event_with_the_first_projection_of_its_key_at_or_after_it():
    from benchmarks.latency import match, percentile

    sources = [(b"o-1", 1000), (b"o-1", 1500), (b"o-2", 1200), (b"o-3", 1300)]
    outputs = [(b"o-1", 1040), (b"o-1", 1700), (b"o-2", 1190), (b"o-2", 1450)]  # o-2's first record predates it
    latencies, unmatched = match(sources, outputs)
    assert sorted(latencies) == [40, 200, 250]
    assert unmatched == 1  # o-3 never got a projection record
    assert percentile(list(range(1, 101)), 50) == 50
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None
