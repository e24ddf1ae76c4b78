"""Fault-suite fixtures: post-sale traffic as a file, its ground truth, and the comparison of every
projection and trigger of the workers with it."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import pytest

from tests import groundtruth
from tests.conftest import REPO, settings_env, wait_until
from tests.groundtruth import funnel, funnel_from_view

START_MS = 1_741_611_600_000  # 2025-03-10T13:00Z: in the past, so nothing is "in the future"
DIMENSIONS = ("all", "device", "channel", "product")
CARRIERS = ("correios_sedex", "correios_pac", "jadlog", "loggi")
# post-sale traffic: 520 sessions over 40 days, ~250 orders, ~215 deliveries, ~35 returns (~10k events):
# the problem product's return-rate alert raises and clears, boleto and Pix charges get recovery
# actions and some are recovered
SESSIONS, SESSIONS_PER_DAY = 520, 13


@dataclass
class Traffic:
    """The fault tests' events: the JSONL file to ingest, its parsed lines, and its ground truth."""

    path: object
    lines: list[dict]
    truth: dict = field(default_factory=dict)


def closing_orders(lines: list[dict], partitions_covered: int = 4) -> list[dict]:
    """Orders delivered two days after everything else, one per carrier at least and on every orders
    partition (for up to `partitions_covered` partitions), holding every product ever delivered: the
    log ends with every partition's event-time clock at the same instant, so every window of the
    alerts and every recovery clock closes the same last day, whatever the partitioning."""
    end = max(groundtruth.ms(e["occurred_at"]) for e in lines) + 2 * groundtruth.DAY
    products = sorted({i["product_id"] for e in lines if e["type"] == "order_placed" for i in e["payload"]["items"]})
    ids, n = [], 0
    while len(ids) < len(CARRIERS) or {groundtruth.partition_of(i, partitions_covered) for i in ids} != set(
            range(partitions_covered)):
        candidate = f"o-closing-{n:02d}"
        n += 1
        if len(ids) < len(CARRIERS) or groundtruth.partition_of(candidate, partitions_covered) not in {
                groundtruth.partition_of(i, partitions_covered) for i in ids}:
            ids.append(candidate)
    out = []
    for k, oid in enumerate(ids):
        carrier, total = CARRIERS[k % len(CARRIERS)], 10.0 * len(products)
        out += [closing_event(oid, "order_placed", end - 3 * groundtruth.H, "web", {
                    "items": [{"product_id": p, "quantity": 1, "unit_price": 10.0} for p in products], "total": total,
                    "freight": 0.0, "payment_method": "credit_card", "installments": 1, "uf": "SP", "city": "Santos",
                    "carrier": carrier, "promised_delivery_at": end + groundtruth.DAY}),
                closing_event(oid, "order_paid", end - 3 * groundtruth.H + groundtruth.MIN, "psp",
                              {"charge_id": None, "method": "credit_card", "amount": total}),
                closing_event(oid, "order_shipped", end - 2 * groundtruth.H, "erp",
                              {"carrier": carrier, "tracking_code": f"T{oid}"}),
                closing_event(oid, "order_delivered", end + k, "carrier", {"receiver": None})]
    return out


def closing_event(order_id: str, type_: str, at: int, source: str, payload: dict) -> dict:
    return {"event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"posvenda-tests:{order_id}:{type_}")), "type": type_,
            "occurred_at": at, "source": source, "customer_id": "c-closing", "order_id": order_id, "payload": payload}


def truth_of(lines: list[dict]) -> dict:
    """Every projection and trigger the workers must reach, computed independently (tests/groundtruth.py)."""
    sessions, orders = groundtruth.sessions(lines), groundtruth.orders(lines)
    alerts = groundtruth.alerts(lines)
    return {
        "funnel": funnel(lines),
        "visits": groundtruth.public(sessions),
        "orders": {oid: {k: v for k, v in o.items() if k != "last_at"} for oid, o in groundtruth.public(orders).items()},
        "customers": groundtruth.customers(lines, sessions, orders),
        "visitors-buyers": groundtruth.visitors_buyers(sessions, orders),
        "return-rates": {p: {"as_of": (alerts["return_rate"]["last_day"] + 1) * groundtruth.DAY, **row}
                         for p, row in alerts["return_rate"]["rows"].items()},
        "late-deliveries": {c: {k: v for k, v in row.items() if k != "reasons"}
                            for c, row in alerts["late_deliveries"]["rows"].items()},
        "alerts": {**alerts["return_rate"]["active"], **alerts["late_deliveries"]["active"]},
        "alerts.events": sorted(alerts["return_rate"]["events"] + alerts["late_deliveries"]["events"]),
        "handling-time": groundtruth.handling_time(orders),
        "_alert_days": {rule: a["last_day"] for rule, a in alerts.items()},
    }


@pytest.fixture(scope="session")
def simulated(tmp_path_factory) -> Traffic:
    """Post-sale traffic (~10k events) ending with closing orders, as a JSONL file, with its ground truth."""
    from posvenda.simulate import generate
    from topics.events import to_json

    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    lines = [to_json(e) for e in generate(11, SESSIONS, START_MS, scenario="post-sale",
                                          sessions_per_day=SESSIONS_PER_DAY)]
    lines += closing_orders(lines)
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    traffic = Traffic(path, [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])
    traffic.truth = truth_of(traffic.lines)
    assert_rich_enough(traffic.truth)
    return traffic


def assert_rich_enough(truth: dict) -> None:
    """The traffic exercises what the fault tests claim to compare."""
    states = [state for _, state, _ in truth["alerts.events"]]
    assert "raised" in states and "cleared" in states, f"a return-rate alert should raise and clear: {states}"
    assert sum(o["status"] == "delivered" for o in truth["orders"].values()) >= 150
    assert sum("returned" in o["reached"] for o in truth["orders"].values()) >= 25
    assert len(truth["handling-time"]) >= 3


def expected(traffic: Traffic, settings) -> dict:
    """The ground truth for a namespace: recovery depends on how orders are partitioned."""
    actions, figures = groundtruth.recovery(traffic.lines, settings.partitions)
    assert actions and figures["total"]["recovered"], "the traffic should recover some charges"
    return {**{k: v for k, v in traffic.truth.items() if not k.startswith("_")},
            "recovery": figures, "recovery.actions": sorted(actions)}


# --- what the workers show ---------------------------------------------------------------------

def funnel_view(worker) -> dict:
    out = {}
    for dimension in DIMENSIONS:
        out.update(funnel_from_view(dimension, worker.get(f"/funnel?dimension={dimension}")))
    return out


def all_items(worker, path: str) -> list[dict]:
    items, offset = [], 0
    sep = "&" if "?" in path else "?"
    while True:
        page = worker.get(f"{path}{sep}offset={offset}&limit=1000")
        items += page["items"]
        offset += len(page["items"])
        if offset >= page["total"] or not page["items"]:
            return items


def keyed(workers, path: str, key: str) -> dict:
    """A keyed view over every worker (each answers for the partitions it holds)."""
    out = {}
    for worker in workers:
        for record in all_items(worker, path):
            assert record[key] not in out, f"{path}: {record[key]} answered by two workers"
            out[record[key]] = record
    return out


def visitors_buyers_view(workers) -> dict:
    """Each worker counts the partitions it holds: the sums over workers."""
    out: dict[str, dict] = {}
    for worker in workers:
        for day, row in worker.get("/visitors-buyers")["days"].items():
            cell = out.setdefault(day, {"visitors": 0, "carted": 0, "ordered": 0, "shipped": 0})
            for stage in cell:
                cell[stage] += row[stage]
    return {day: row for day, row in out.items() if any(row.values())}


def return_rate_row(r: dict) -> dict:
    return {"as_of": r["as_of"], "units": r["delivered_units"], "hits": r["returned_units"], "reasons": r["reasons"],
            "alert": r["alert"], "facts": r["facts_applied"]}


def late_delivery_row(r: dict) -> dict:
    return {"units": r["deliveries"], "hits": r["late_deliveries"], "alert": r["alert"], "facts": r["facts_applied"]}


def recovery_view(worker) -> dict:
    body = worker.get("/recovery")
    return {k: body[k] for k in ("methods", "actions", "total")}


def views(workers) -> dict:
    """Every HTTP projection, as the ground truth shapes it; merged views asked of each worker."""
    recoveries = [recovery_view(w) for w in workers]
    funnels = [funnel_view(w) for w in workers]
    return {
        "funnel": funnels[0] if all(f == funnels[0] for f in funnels) else {"workers disagree": funnels},
        "visits": keyed(workers, "/visits", "session_id"),
        "orders": {oid: groundtruth.project_order(r) for oid, r in keyed(workers, "/orders", "order_id").items()},
        "customers": keyed(workers, "/customers", "customer_id"),
        "visitors-buyers": visitors_buyers_view(workers),
        "return-rates": {p: return_rate_row(r) for p, r in keyed(workers, "/return-rates", "product_id").items()},
        "late-deliveries": {c: late_delivery_row(r) for c, r in keyed(workers, "/late-deliveries", "carrier").items()},
        "alerts": {a["subject"]: a["alert_id"] for w in workers for a in w.get("/alerts")["alerts"]},
        "recovery": recoveries[0] if all(r == recoveries[0] for r in recoveries) else {"workers disagree": recoveries},
    }


def read_topic(settings, topic, *fields) -> list:
    """Every message's fields on an Avro trigger topic, read committed from the beginning."""
    from kafka import KafkaConsumer

    from topics import codec

    consumer = KafkaConsumer(settings.topic_name(topic), group_id=None, auto_offset_reset="earliest",
                             isolation_level="read_committed", consumer_timeout_ms=1500, **settings.kafka_python_config())
    try:
        return [tuple(codec.decode(m.value)[1][f] for f in fields) for m in consumer]
    finally:
        consumer.close()


def handling_time_report(settings) -> dict:
    """`posvenda report handling-time --live`: from the compacted projections.orders the workers keep."""
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "report", "handling-time", "--live", "--format",
                           "json", "-q"], env=settings_env(settings), cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {r["method"]: {k: r[k] for k in ("orders_shipped", "average_hours", "median_hours")}
            for r in json.loads(done.stdout)["rows"]}


def logs(settings) -> dict:
    """What the workers wrote to the log: triggers (sorted lists, so a duplicate shows) and the report."""
    from topics import catalogue

    alerts = read_topic(settings, catalogue.ALERTS, "alert_id", "state", "occurred_at")
    return {
        "recovery.actions": sorted(a for (a,) in read_topic(settings, catalogue.RECOVERY_ACTIONS, "action_id")),
        "alerts.events": sorted((a, s, round(at.timestamp() * 1000)) for a, s, at in alerts),
        "handling-time": handling_time_report(settings),
    }


# --- the comparison ----------------------------------------------------------------------------

def differences(got: dict, want: dict, limit: int = 4) -> list[str]:
    """One line per projection that differs, with a few differing keys (got vs expected)."""
    out = []
    for name in want:
        g, w = got.get(name), want[name]
        if g == w:
            continue
        if isinstance(g, dict) and isinstance(w, dict):
            keys = differing_keys(g, w)
            sample = "; ".join(f"{k!r}: {field_differences(g.get(k, '(missing)'), w.get(k, '(missing)'))}"
                               for k in keys[:limit])
            out.append(f"{name}: {len(keys)} keys differ, e.g. {sample}"[:1500])
        elif isinstance(g, list) and isinstance(w, list):
            extra, missing = sorted(set(g) - set(w), key=str), sorted(set(w) - set(g), key=str)
            dupes = len(g) - len(set(g))
            out.append(f"{name}: {len(g)} got, {len(w)} expected; unexpected {extra[:limit]}, missing {missing[:limit]}"
                       f"{f', {dupes} duplicates' if dupes else ''}")
        else:
            out.append(f"{name}: got {g!r} expected {w!r}"[:800])
    return out


def differing_keys(got: dict, want: dict) -> list:
    return [k for k in sorted(set(got) | set(want), key=str) if got.get(k) != want.get(k)]


def field_differences(got, want) -> str:
    """got vs expected for one record; for two dicts only the fields that differ."""
    if isinstance(got, dict) and isinstance(want, dict):
        return "{" + ", ".join(f"{f!r}: got {got.get(f, '(missing)')!r} expected {want.get(f, '(missing)')!r}"
                               for f in differing_keys(got, want)) + "}"
    return f"got {got!r} expected {want!r}"


def poll_until_equal(read, want: dict, timeout: float, settle: float, what: str) -> None:
    """Polls `read()` until it equals `want`. Fails with the differences after `timeout`, or as soon
    as the observed values have not moved for `settle` seconds (the workers are done: waiting more
    cannot help). Says when each part first matched, which tells a slow part from a wrong one."""
    started = deadline = time.monotonic()
    deadline += timeout
    last, last_change, error, matched = None, time.monotonic(), None, {}
    while True:
        try:
            got = read()
            error = None
            for name in want:
                if got.get(name) == want[name]:
                    matched.setdefault(name, round(time.monotonic() - started))
            if got == want:
                print(f"\n{what}: all equal after {time.monotonic() - started:.0f} s (first matched at s: {matched})")
                return
            if got != last:
                last, last_change = got, time.monotonic()
        except Exception as exc:  # a view not up yet, a rebalance (503)
            error = exc
        now = time.monotonic()
        if now > deadline or (last is not None and now - last_change > settle):
            lines = differences(last or {}, want) if last is not None else ["nothing read"]
            why = "timed out" if now > deadline else f"unchanged for {settle:.0f} s"
            raise AssertionError(f"{what} differ from the ground truth ({why}; equal at some point, at s: {matched}"
                                 f"{f'; last error: {error!r}' if error else ''}):\n  " + "\n  ".join(lines))
        time.sleep(1)


def assert_every_projection_converges(workers, settings, traffic: Traffic, timeout: float = 300,
                                      settle: float = 60) -> None:
    """Every projection of `workers` (one namespace) and every trigger on its topics reaches the ground
    truth of `traffic`: funnel, visits, orders, customers, visitors vs buyers, return rates, late
    deliveries, active alerts and recovery figures over HTTP; then the recovery action ids and the
    alert transitions on their topics (no id twice) and the handling-time report from the compacted
    order records."""
    workers = list(workers) if isinstance(workers, (list, tuple)) else [workers]
    want = expected(traffic, settings)
    http = {k: v for k, v in want.items() if k not in ("recovery.actions", "alerts.events", "handling-time")}
    started, failures = time.monotonic(), []
    try:
        poll_until_equal(lambda: views(workers), http, timeout, settle, "projections over HTTP")
    except AssertionError as exc:  # still compare the rest: one report names everything that differs
        failures.append(str(exc))
    rest = {k: want[k] for k in ("recovery.actions", "alerts.events", "handling-time")}
    try:
        poll_until_equal(lambda: logs(settings), rest, max(30.0, timeout - (time.monotonic() - started)), 20,
                         "triggers on the topics and the handling-time report")
    except AssertionError as exc:
        failures.append(str(exc))
    assert not failures, "\n".join(failures)


def assert_converges(worker, lines, timeout=240):
    """The worker's funnel (all four dimensions) reaches the ground truth computed from `lines`."""
    expected_funnel = funnel(lines)
    last = {}

    def matches():
        last["view"] = funnel_view(worker)
        return last["view"] == expected_funnel

    try:
        wait_until(matches, timeout, interval=1, what="the funnel to equal the ground truth")
    except AssertionError:
        raise AssertionError("\n".join(differences({"funnel": last.get("view", {})}, {"funnel": expected_funnel}))) \
            from None
