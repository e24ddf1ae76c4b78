"""Replay equals live for the return-rate alerts, on the real broker.

Given 70 days of orders of five product pages with known deliveries and returns (one page turns bad
and recovers, one is bad from the start, one turns bad late, two stay normal), the same events are
(1) published all at once and then folded by a worker that reads the orders partitions as unevenly
as it likes, and (2) fed to another worker one day at a time, each day published only once the
worker has applied the previous day's facts. Both must emit exactly the alert events computed here
from the raw events (tests/groundtruth_alerts.py: own windows, own Wilson bound, own day closing),
the same ids, days and values.

Half the Olist sample (the first 400 of its 800 real orders by id, 2016-2018; half, to keep the
test short) is the second case: replayed at full speed by `posvenda olist replay --orders 400`, and
fed quarter by quarter to another worker, it must give the same alerts and figures, and every
delivery of the log must be counted in posvenda_deliveries_total. Its one carrier never reaches the
minimum of deliveries a week, so no alert fires there: what that case checks is the figures and
the counts.
"""
from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid

from kafka import KafkaConsumer

from alerts.alert_rules import config
from posvenda.publish import Publisher
from tests import groundtruth_alerts as truth
from tests.conftest import REPO, settings_env, wait_until
from tests.e2e.test_olist_replay_e2e import SAMPLE
from tests.e2e.test_olist_replay_e2e import oracle as olist_oracle
from topics import catalogue, codec
from topics.events import Event

DAY, HOUR = truth.DAY, 3600 * 1000
T0 = 20_300 * DAY  # 2025-07-31T00:00Z: old enough that no wall-clock tick takes part
DAYS = 70
# page -> (units delivered a day, [(first day, last day, return share, reason)]) for orders placed that day
PAGES = {
    "page-turns-bad": (3, [(0, 19, 0.02, "regret"), (20, 34, 0.40, "not_as_described"), (35, DAYS, 0.0, None)]),
    "page-always-bad": (2, [(0, DAYS, 0.30, "wrong_size")]),
    "page-late-surge": (1, [(0, DAYS, 0.0, None)]),
    "page-normal-a": (3, [(0, DAYS, 0.03, "defect")]),
    "page-normal-b": (2, [(0, DAYS, 0.05, "regret")]),
}
SURGE_FROM = 40  # page-late-surge sells 4 a day from here, a third of them returned as damaged


def event(type_, at, order_id, source="erp", **payload) -> Event:
    return Event(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{order_id}:{type_}:{at}")), type_, at, source,
                 customer_id=f"c-{order_id}", order_id=order_id, payload=payload)


def return_share(page: str, day: int) -> tuple[float, str | None]:
    if page == "page-late-surge" and day >= SURGE_FROM:
        return 1 / 3, "damaged_in_transport"
    for first, last, share, reason in PAGES[page][1]:
        if first <= day <= last:
            return share, reason
    return 0.0, None


def scenario() -> list[Event]:
    """Orders placed on day d at hour h, delivered on d + 2, returned (when they are) on d + 5."""
    rng = random.Random(12)
    out, returned_so_far = [], {page: 0.0 for page in PAGES}
    for day in range(DAYS - 5):
        for page, (per_day, _) in PAGES.items():
            units = 4 if page == "page-late-surge" and day >= SURGE_FROM else per_day
            share, reason = return_share(page, day)
            for i in range(units):
                order_id = f"o-{page}-{day:02d}-{i}"
                placed_at = T0 + day * DAY + rng.randint(8, 20) * HOUR + i * 60_000
                delivered_at = placed_at + 2 * DAY + rng.randint(-3, 3) * HOUR
                out += [
                    event("order_placed", placed_at, order_id, "web",
                          items=[{"product_id": page, "quantity": 1, "unit_price": 80.0}], total=80.0, freight=0.0,
                          payment_method="credit_card", installments=1, uf="SP", city="Campinas", carrier="jadlog",
                          promised_delivery_at=placed_at + 10 * DAY),
                    event("order_shipped", placed_at + HOUR, order_id, carrier="jadlog", tracking_code=order_id),
                    event("order_delivered", delivered_at, order_id, "carrier", receiver=None),
                ]
                returned_so_far[page] += share  # returns spread evenly: every 1/share-th unit comes back
                if returned_so_far[page] >= 1:
                    returned_so_far[page] -= 1
                    out.append(event("order_returned", delivered_at + 3 * DAY, order_id, "crm",
                                     items=[{"product_id": page, "quantity": 1}], reason=reason))
    return sorted(out, key=lambda e: (e.occurred_at, e.event_id))


def rules() -> list[tuple[truth.Rule, int]]:
    rr, late = config().return_rate, config().late_deliveries
    return [(truth.Rule("return_rate", rr.window_days, rr.min_sample, rr.baseline_rate + rr.margin, rr.clear_factor,
                        rr.confidence_z), rr.allowed_lateness_ms),
            (truth.Rule("late_deliveries", late.window_days, late.min_sample, late.baseline_rate, late.clear_factor,
                        late.confidence_z), late.allowed_lateness_ms)]


def expected(events, partitions: int) -> dict[tuple[str, str], dict]:
    products, carriers = truth.facts(events)
    want = {}
    for (rule, lateness), subjects in zip(rules(), (products, carriers), strict=True):
        last = truth.last_closed_day(events, partitions, lateness)
        for subject, rows in subjects.items():
            for alert in truth.expected_alerts(subject, rows, rule, last):
                want[(alert["alert_id"], alert["state"])] = alert
    return want


def applied(worker) -> tuple[int, int]:
    rates = worker.get("/return-rates?limit=1000")["items"]
    late = worker.get("/late-deliveries")["items"]
    return sum(r["facts_applied"] for r in rates), sum(c["facts_applied"] for c in late)


def wait_applied(worker, events, what: str, interval: float = 0.1) -> None:
    """Until the worker has applied every fact of `events` (none is late at its source here). Each
    poll reads the whole /return-rates table: a catalogue of hundreds of pages polls less often."""
    products, carriers = truth.facts(events)
    want = (sum(map(len, products.values())), sum(map(len, carriers.values())))
    seen = []
    try:
        wait_until(lambda: seen.append(applied(worker)) or seen[-1] == want, 120, interval, what=f"{what}: {want} facts")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; applied: {seen[-1:]}") from None


def alert_events(s, count: int) -> list[dict]:
    """The alert events on alerts.events once `count` arrived and a second passed without more."""
    consumer = KafkaConsumer(s.topic_name(catalogue.ALERTS), group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1000, **s.kafka_python_config())
    seen = []
    try:
        try:
            wait_until(lambda: seen.extend(consumer) or len(seen) >= count, 60, what=f"{count} alert events")
        finally:
            seen.extend(consumer)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; got {sorted(alert_key(codec.decode(m.value)[1]) for m in seen)}") from None
    finally:
        consumer.close()
    return sorted((codec.decode(m.value)[1] for m in seen), key=alert_key)


def alert_key(alert: dict) -> tuple[str, str]:
    return alert["alert_id"], alert["state"]


def publish(s, events) -> None:
    with Publisher(s) as publisher:
        for e in events:
            publisher.publish(e)


def assert_expected(got: list[dict], want: dict, how: str) -> None:
    assert [alert_key(a) for a in got] == sorted(want), how
    for alert in got:
        w = want[alert_key(alert)]
        d = alert["details"]
        units, hits = (("delivered_units", "returned_units") if alert["rule"] == "return_rate"
                       else ("deliveries", "late_deliveries"))
        assert int(alert["occurred_at"].timestamp() * 1000) == w["occurred_at"], (how, alert)
        assert (int(d[units]), int(d[hits])) == (w["units"], w["hits"]), (how, alert)
        assert float(d["wilson_lower"]) == round(w["wilson_lower"], 4), (how, alert)
        assert float(d["wilson_upper"]) == round(w["wilson_upper"], 4), (how, alert)


def second_namespace(settings_factory, tmp_path, name: str):
    """Another topic prefix, consumer group and state directory, with its topics created."""
    from topics.admin import create_topics

    s = settings_factory(data_dir=tmp_path / name)
    create_topics(s)
    return s


def feed(s, worker, chunks, what: str, interval: float = 0.1) -> None:
    """Publishes chunk after chunk, each once the worker has applied every fact of those before."""
    published = []
    with Publisher(s) as publisher:
        for label, chunk in chunks:
            for e in chunk:
                publisher.publish(e)
            publisher.flush()
            published += chunk
            wait_applied(worker, published, f"{what} {label}", interval)


def too_late_counts(worker) -> list[float]:
    lines = [line for line in worker.get_text("/metrics").splitlines() if 'outcome="too_late"' in line]
    return [float(line.rsplit(" ", 1)[1]) for line in lines]


def test_alerts_are_the_same_whether_the_log_is_ingested_at_once_or_fed_day_by_day(settings, settings_factory,
                                                                                  worker_factory, tmp_path):
    events = scenario()
    want = expected(events, settings.partitions)
    raised = sorted(k[0].split(":")[1] for k in want if k[1] == "raised")
    cleared = sorted(k[0].split(":")[1] for k in want if k[1] == "cleared")
    # the scenario is what it claims: three pages go bad, one recovers, the normal ones stay quiet
    assert raised == ["page-always-bad", "page-late-surge", "page-turns-bad"], raised
    assert cleared == ["page-turns-bad"], cleared

    # Given the whole log published at once, then folded by a worker reading it as fast as it can
    publish(settings, events)
    at_once_worker = worker_factory(settings, "at-once")
    # And the same log fed to another worker one day at a time (meanwhile the first one folds)
    daily = second_namespace(settings_factory, tmp_path, "daily")
    daily_worker = worker_factory(daily, "daily")
    days = sorted({e.occurred_at // DAY for e in events})
    feed(daily, daily_worker, [(f"day {d}", [e for e in events if e.occurred_at // DAY == d]) for d in days], "fed")
    wait_applied(at_once_worker, events, "ingested at once")
    at_once, day_by_day = alert_events(settings, len(want)), alert_events(daily, len(want))

    # Then both gave exactly the expected alert events: ids, days, samples and Wilson bounds
    assert_expected(day_by_day, want, "fed day by day")
    assert_expected(at_once, want, "ingested at once")
    # And the very same records, wording included
    assert at_once == day_by_day
    # And no fact was dropped as too late: none was late at its source
    assert not any(too_late_counts(at_once_worker) + too_late_counts(daily_worker))


OLIST_ORDERS = 400  # half the sample (the first order ids: a uniform sample), to keep the test short


def olist_events():
    from posvenda import olist

    events, rejected = olist.replay(olist.load(SAMPLE, OLIST_ORDERS))
    assert not rejected
    return events


def olist_replay(s) -> None:
    """`posvenda olist replay` of the first OLIST_ORDERS orders into the broker, as fast as it goes."""
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "olist", "replay", "--dir", str(SAMPLE), "--orders",
                           str(OLIST_ORDERS), "-q"], env=settings_env(s), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def quarter_of(ms: int) -> str:
    year, month = time.gmtime(ms / 1000)[:2]
    return f"{year}-Q{(month - 1) // 3 + 1}"


def test_olist_sample_replayed_at_full_speed_or_quarter_by_quarter_gives_the_same_alerts_and_deliveries(
        settings, settings_factory, worker_factory, tmp_path):
    # Given the Olist sample's deliveries as the CSV files state them (late = after the estimated day)
    dataset = olist_oracle()
    deliveries = [dataset[o]["late"] for o in sorted(dataset)[:OLIST_ORDERS] if dataset[o]["late"] is not None]
    assert len(deliveries) > 350 and sum(deliveries) > 10
    events = olist_events()
    want = expected(events, settings.partitions)

    # When the sample is replayed as fast as possible (`posvenda olist replay`), then folded
    olist_replay(settings)
    fast = worker_factory(settings, "fast")
    # And fed to another worker quarter by quarter, in event time, each once the last is applied
    paced = second_namespace(settings_factory, tmp_path, "paced")
    by_quarter = worker_factory(paced, "paced")
    quarters = sorted({quarter_of(e.occurred_at) for e in events})
    feed(paced, by_quarter, [(q, [e for e in events if quarter_of(e.occurred_at) == q]) for q in quarters], "quarter",
         0.5)
    wait_applied(fast, events, "replayed at full speed", 0.5)

    # Then both emitted the alerts computed from the events, the same records
    fast_alerts, paced_alerts = alert_events(settings, len(want)), alert_events(paced, len(want))
    assert_expected(fast_alerts, want, "replayed at full speed")
    assert fast_alerts == paced_alerts
    # And the same late-delivery and return-rate figures
    assert fast.get("/late-deliveries") == by_quarter.get("/late-deliveries")
    assert fast.get("/return-rates?limit=100000") == by_quarter.get("/return-rates?limit=100000")
    # And every delivery of the log was judged for lateness, late exactly where the dataset says
    for worker in (fast, by_quarter):
        text = worker.get_text("/metrics")
        assert f'posvenda_deliveries_total{{carrier="olist"}} {float(len(deliveries))}' in text
        assert f'posvenda_late_deliveries_total{{carrier="olist"}} {float(sum(deliveries))}' in text
        assert not any(too_late_counts(worker))
