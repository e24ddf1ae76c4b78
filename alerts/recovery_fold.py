"""Boleto/Pix recovery as a pure fold: which actions fall due for an order's unpaid charges, in event time.

State is per order (the orders topic is keyed by order id, so one partition sees all of an order's
charges and payments): its charges, the payments and cancellations seen, and the actions already
sent. `evolve(state, event, rules)` is idempotent and order-independent (facts keyed by event id or
charge id, the earliest copy wins, bounded per order), `decide(state, watermark, rules)` lists the
actions due, `mark_sent` records them, and `contribution` gives the order's share of the recovery
figures (the partition partials move by the difference of old and new contributions).

Time is the partition's event-time watermark W = newest event time seen - allowed lateness (or, on
an idle live partition, wall clock - idle lateness; see `tick`). The rules, with T a step's time:

  - a step is due when W > T, and is sent at most once (its id, `charge_id:step`, is recorded);
  - it is cancelled by any payment of the order with occurred_at <= T (a payment names a charge or
    none; either way the customer paid), and by a stopping cancellation at or before T;
  - it is superseded when a newer charge of the same order was issued at or before T.

Why "W > T" and "payment <= T": a payment that arrives within the allowed lateness (its time is at
least the newest time seen minus the lateness when it arrives) is always folded in before W passes
any T it precedes, whatever the arrival order. So, for events within the lateness, the actions sent
are a function of the event times alone: replaying the log gives the same actions as living it.
The price: a payment in (T, T + lateness] does not cancel step T (the customer paid after the step
fell due, and is counted as recovered). A payment later than the lateness that precedes T arrives
after the action went out; it is counted in `after_payment` (tune the lateness if it grows).

Events later than the lateness are history catching up, not news, and never make the store contact
a customer about the past:
  - a charge first seen when W had already passed some of its steps has those steps `missed`: they
    are not sent (a stale reminder, and the payment that would cancel it may be right behind it in
    the log); its later steps run as usual;
  - an order first seen when W is already past its purge time (`is_stale`) is ignored altogether:
    its state would have been dropped by now anyway. So re-ingesting an old log (a backfill, a
    second replay of the Olist history) emits nothing and moves no figure.

Recovery is credited once per order, to the charge its first payment (in event time) settles: the
charge the payment names, else the newest charge issued at or before it. The order is recovered
when any of its actions was scheduled before that payment; the recovered revenue is that charge's
amount (paid twice: counted once).

Also here: the per-partition clock (`observe`, `tick`) and a bounded time index over a key-value
store (`index_add`, `index_remove`, `index_take`) so that a watermark move visits only the orders
with something due, never the whole table.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from alerts.recovery_rules import RecoveryRules, schedule

ORDER_FAMILY = "posvenda.orders.OrderEvent"
TRACKED_TYPES = frozenset({"payment_pending", "order_paid", "order_cancelled"})
MAX_CHARGES = 8  # per order; a ninth charge of one order keeps the 8 earliest
MAX_FACTS = 8  # payments and cancellations kept per order: the 8 earliest (only the earliest matters)
SLOT = "slot"  # where the storage layer keeps an order's index slot inside its state; ignored here

SCHEDULED, SENT, CANCELLED, SUPERSEDED, MISSED = "scheduled", "sent", "cancelled", "superseded", "missed"


@cache
def _order_types() -> frozenset[str]:
    from topics.events import event_types

    return frozenset(name for name, t in event_types().items() if t.family == ORDER_FAMILY)


def is_order_event(event) -> bool:
    """Events of the orders family: they drive the watermark (messages do not: their times are the
    campaign's own wall clock)."""
    return event.type in _order_types()


# --- the order's state --------------------------------------------------------------------------

def empty(order_id: str) -> dict:
    return {"order_id": order_id, "customer_id": None, "charges": {}, "payments": {}, "stops": {}, "sent": {}}


def _earliest(facts: dict, limit: int) -> dict:
    """The `limit` facts with the smallest (time, id): a deterministic bound whatever the arrival order."""
    if len(facts) <= limit:
        return facts
    keep = sorted(facts, key=lambda k: (facts[k]["at"], k))[:limit]
    return {k: facts[k] for k in keep}


def evolve(state: dict | None, event, rules: RecoveryRules, watermark_ms: int | None = None) -> dict | None:
    """The order's recovery state after `event`; None while the order has nothing to recover.

    payment_pending of a method with a cadence adds a charge; order_paid adds a payment (kept without
    a charge only for methods with a cadence: their charge may arrive later); order_cancelled with a
    reason not in keep_on_cancel_reasons adds a stop. Anything else leaves the state as it is.
    `watermark_ms`, the partition's watermark when the event is folded, marks a charge that arrives
    after W passed its issue time: its steps before that W are missed (see the module doc)."""
    p = event.payload
    if event.type == "payment_pending":
        if p["method"] not in rules.methods:
            return state
        s = _copy(state, event)
        charge = {"method": p["method"], "amount": p["amount"], "at": event.occurred_at, "due_at": p["due_at"],
                  "event_id": event.event_id}
        current = s["charges"].get(p["charge_id"])
        if current is not None and "known_at" in current:
            charge["known_at"] = current["known_at"]  # a copy of the charge does not move when it was known
        elif current is None and watermark_ms is not None and watermark_ms > event.occurred_at:
            charge["known_at"] = watermark_ms
        if current is None or (charge["at"], charge["event_id"]) < (current["at"], current["event_id"]):
            s["charges"] = _earliest({**s["charges"], p["charge_id"]: charge}, MAX_CHARGES)
        return s
    if event.type == "order_paid":
        if state is None and p["method"] not in rules.methods:
            return None
        s = _copy(state, event)
        if event.event_id not in s["payments"]:
            payment = {"at": event.occurred_at, "charge_id": p.get("charge_id"), "amount": p["amount"]}
            s["payments"] = _earliest({**s["payments"], event.event_id: payment}, MAX_FACTS)
        return s
    if event.type == "order_cancelled" and p["reason"] not in rules.keep_on_cancel_reasons:
        s = _copy(state, event)
        if event.event_id not in s["stops"]:
            s["stops"] = _earliest({**s["stops"], event.event_id: {"at": event.occurred_at}}, MAX_FACTS)
        return s
    return state


def _copy(state: dict | None, event) -> dict:
    s = dict(state) if state is not None else empty(event.order_id)
    if s["customer_id"] is None and event.customer_id:
        s["customer_id"] = event.customer_id
    return s


# --- what is due --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Planned:
    charge_id: str
    step: str
    action: str
    at: int  # event time the step falls due
    status: str  # scheduled, sent, cancelled or superseded
    channels: tuple[str, ...]

    @property
    def action_id(self) -> str:
        return action_id(self.charge_id, self.step)


@dataclass(frozen=True)
class Action:
    """A recovery action to send (posvenda.recovery.RecoveryAction)."""

    action_id: str
    type: str
    step: str
    charge_id: str
    order_id: str
    customer_id: str | None
    method: str
    amount: float
    due_at: int
    scheduled_at: int
    channels: tuple[str, ...]


def action_id(charge_id: str, step: str) -> str:
    return f"{charge_id}:{step}"


def _charges_in_order(state: dict) -> list[tuple[str, dict]]:
    return sorted(state["charges"].items(), key=lambda kv: (kv[1]["at"], kv[0]))


def first_stop_at(state: dict) -> int | None:
    """Earliest payment or stopping cancellation: every step at or after it is cancelled."""
    times = [f["at"] for f in state["payments"].values()] + [f["at"] for f in state["stops"].values()]
    return min(times) if times else None


def plan(state: dict | None, rules: RecoveryRules) -> list[Planned]:
    """Every step of every charge of the order that applies, with its status, by time."""
    if not state:
        return []
    stop = first_stop_at(state)
    charges = _charges_in_order(state)
    out = []
    for i, (charge_id, c) in enumerate(charges):
        next_issued = charges[i + 1][1]["at"] if i + 1 < len(charges) else None
        for step, at in schedule(rules, c["method"], c["at"], c["due_at"]):
            if action_id(charge_id, step.name) in state["sent"]:
                status = SENT
            elif stop is not None and stop <= at:
                status = CANCELLED
            elif next_issued is not None and at >= next_issued:
                status = SUPERSEDED
            elif at < c.get("known_at", at):
                status = MISSED
            else:
                status = SCHEDULED
            out.append(Planned(charge_id, step.name, step.action, at, status, step.channels))
    return sorted(out, key=lambda p: (p.at, p.action_id))


def decide(state: dict | None, watermark_ms: int | None, rules: RecoveryRules) -> list[Action]:
    """The actions due at the watermark: scheduled (not sent, cancelled or superseded) and T < W."""
    if not state or watermark_ms is None:
        return []
    out = []
    for p in plan(state, rules):
        if p.status == SCHEDULED and p.at < watermark_ms:
            c = state["charges"][p.charge_id]
            out.append(Action(p.action_id, p.action, p.step, p.charge_id, state["order_id"], state["customer_id"],
                              c["method"], c["amount"], c["due_at"], p.at, p.channels))
    return out


def mark_sent(state: dict, actions: list[Action]) -> dict:
    if not actions:
        return state
    return {**state, "sent": {**state["sent"], **{a.action_id: a.scheduled_at for a in actions}}}


def next_wake(state: dict | None, rules: RecoveryRules) -> int | None:
    """When the order next needs a look: its earliest scheduled step, else the time it can be dropped."""
    if not state:
        return None
    scheduled = [p.at for p in plan(state, rules) if p.status == SCHEDULED]
    return min(scheduled) if scheduled else purge_at(state, rules)


def purge_at(state: dict, rules: RecoveryRules) -> int:
    """After this event time (and with nothing scheduled) the state can go: a payment later than this
    is too late to count as recovered. Its figures stay counted in the partials."""
    times = [t for c in state["charges"].values() for t in (c["at"], c["due_at"])]
    times += [p.at for p in plan(state, rules)]
    times += [f["at"] for f in state["payments"].values()] + [f["at"] for f in state["stops"].values()]
    return max(times) + rules.retention_ms


def is_stale(state: dict | None, watermark_ms: int | None, rules: RecoveryRules) -> bool:
    """An order first seen now whose whole recovery lies further back than the retention: it is
    ignored (what a dropped state would have done), so an old log folded again changes nothing."""
    return bool(state) and watermark_ms is not None and watermark_ms > purge_at(state, rules)


def can_drop(state: dict | None, watermark_ms: int | None, rules: RecoveryRules) -> bool:
    if not state:
        return True
    if watermark_ms is None or any(p.status == SCHEDULED for p in plan(state, rules)):
        return False
    return watermark_ms > purge_at(state, rules)


# --- figures ------------------------------------------------------------------------------------

def first_payment(state: dict) -> tuple[str, dict] | None:
    if not state["payments"]:
        return None
    return min(state["payments"].items(), key=lambda kv: (kv[1]["at"], kv[0]))


def credited_charge(state: dict) -> str | None:
    """The charge the order's first payment settles: the one it names, else the newest issued at or
    before it, else the first charge."""
    first = first_payment(state)
    charges = _charges_in_order(state)
    if first is None or not charges:
        return None
    named = first[1]["charge_id"]
    if named in state["charges"]:
        return named
    before = [cid for cid, c in charges if c["at"] <= first[1]["at"]]
    return before[-1] if before else charges[0][0]


def contribution(state: dict | None, rules: RecoveryRules) -> dict[str, int]:
    """The order's share of its partition's figures, as integer cells (money in centavos):

    charges|m          charges issued             actions|m|step   actions sent
    targeted|m         charges with an action     open|m           charges with a step still scheduled
    paid|m             orders paid (credited m)   recovered|m      paid after one of its actions
    revenue_cents|m    recovered amount           after_payment|m  actions scheduled at/after the payment
    """
    if not state or not state["charges"]:
        return {}
    cells: dict[str, int] = {}

    def add(key: str, n: int = 1) -> None:
        cells[key] = cells.get(key, 0) + n

    planned = plan(state, rules)
    first = first_payment(state)
    for charge_id, c in state["charges"].items():
        add(f"charges|{c['method']}")
        mine = [p for p in planned if p.charge_id == charge_id]
        sent = [p for p in mine if p.status == SENT]
        for p in sent:
            add(f"actions|{c['method']}|{p.step}")
            if first is not None and p.at >= first[1]["at"]:
                add(f"after_payment|{c['method']}")
        if sent:
            add(f"targeted|{c['method']}")
        if any(p.status == SCHEDULED for p in mine):
            add(f"open|{c['method']}")
    credited = credited_charge(state)
    if credited is not None:
        charge = state["charges"][credited]
        add(f"paid|{charge['method']}")
        if any(p.status == SENT and p.at < first[1]["at"] for p in planned):
            add(f"recovered|{charge['method']}")
            add(f"revenue_cents|{charge['method']}", round(charge["amount"] * 100))
    return cells


def delta(old: dict[str, int], new: dict[str, int]) -> dict[str, int]:
    return {k: new.get(k, 0) - old.get(k, 0) for k in set(old) | set(new) if new.get(k, 0) != old.get(k, 0)}


# --- the partition's clock ----------------------------------------------------------------------

def new_clock() -> dict:
    return {"max_event_at": None, "watermark": None, "scanned_bucket": None, "next_offset": None}


def observe(clock: dict | None, occurred_at: int, rules: RecoveryRules) -> dict:
    """The clock after an order event: W = max(W, newest event time - allowed lateness)."""
    c = dict(clock or new_clock())
    c["max_event_at"] = occurred_at if c["max_event_at"] is None else max(c["max_event_at"], occurred_at)
    return _advance(c, c["max_event_at"] - rules.allowed_lateness_ms)


def tick(clock: dict | None, wall_ms: int, caught_up: bool, rules: RecoveryRules) -> dict | None:
    """The clock after a wall-clock tick: an idle live partition moves to wall - idle lateness.

    Only when the worker has consumed everything on the partition (a backlog may hold the payments
    that would cancel) and the partition's newest event is within the live horizon of the wall clock
    (a replay of older history is never driven by today's clock)."""
    if clock is None or clock["max_event_at"] is None or not caught_up:
        return clock
    if wall_ms - clock["max_event_at"] > rules.live_horizon_ms:
        return clock
    return _advance(dict(clock), wall_ms - rules.idle_lateness_ms)


def _advance(c: dict, candidate: int) -> dict:
    if c["watermark"] is None:
        c["watermark"] = candidate
        c["scanned_bucket"] = bucket_of(candidate - 1) - 1
    elif candidate > c["watermark"]:
        c["watermark"] = candidate
    return c


# --- a bounded time index in a key-value store ----------------------------------------------------
#
# Orders are filed by their next wake time in buckets of BUCKET_MS; a bucket is a header key
# "due|<partition>|<bucket>" holding its number of chunks, and chunks "due|<partition>|<bucket>|<k>"
# of at most CHUNK_SIZE {order_id: wake}. No value grows without bound (thousands of boletos share
# a due time), and a watermark move reads only the buckets it passes. The slot [bucket, chunk] of an
# order is kept in its state so that a new wake time removes the old entry.

BUCKET_MS = 5 * 60_000
CHUNK_SIZE = 200


def bucket_of(ms: int) -> int:
    return ms // BUCKET_MS


def _header(partition: int, bucket: int) -> str:
    return f"due|{partition}|{bucket}"


def _chunk(partition: int, bucket: int, k: int) -> str:
    return f"due|{partition}|{bucket}|{k}"


def index_add(store, partition: int, order_id: str, wake_ms: int) -> list[int]:
    b = bucket_of(wake_ms)
    n = store.get(_header(partition, b)) or 0
    if n:
        last = store.get(_chunk(partition, b, n - 1)) or {}
        if len(last) < CHUNK_SIZE:
            store[_chunk(partition, b, n - 1)] = {**last, order_id: wake_ms}
            return [b, n - 1]
    store[_chunk(partition, b, n)] = {order_id: wake_ms}
    store[_header(partition, b)] = n + 1
    return [b, n]


def index_remove(store, partition: int, order_id: str, slot) -> None:
    if not slot:
        return
    key = _chunk(partition, slot[0], slot[1])
    chunk = store.get(key)
    if chunk and order_id in chunk:
        store[key] = {k: v for k, v in chunk.items() if k != order_id}


def index_take(store, partition: int, scanned_bucket: int, watermark_ms: int) -> tuple[list[str], int]:
    """Removes and returns the orders whose wake time is < watermark, scanning the buckets after
    `scanned_bucket`; returns them with the new scanned bucket (the last one wholly behind W)."""
    current = bucket_of(watermark_ms - 1)
    found: list[str] = []
    for b in range(scanned_bucket + 1, current + 1):
        n = store.get(_header(partition, b)) or 0
        for k in range(n):
            key = _chunk(partition, b, k)
            chunk = store.get(key) or {}
            due = [o for o, wake in chunk.items() if wake < watermark_ms]
            found.extend(due)
            if b < current:
                if key in store:
                    del store[key]
            elif due:
                store[key] = {o: w for o, w in chunk.items() if w >= watermark_ms}
        if b < current and n:
            del store[_header(partition, b)]
    return list(dict.fromkeys(found)), max(scanned_bucket, current - 1)
