"""The recovery fold: which actions fall due for unpaid charges, in event time, whatever the arrival
order within the allowed lateness; payments cancel; recovery is counted once."""
import datetime as dt
import itertools
import uuid

from alerts import recovery_fold as fold
from alerts import recovery_rules
from topics.events import Event

RULES = recovery_rules.load()
BRT = dt.timezone(dt.timedelta(hours=-3))
MIN, H = 60_000, 3_600_000
LATENESS = RULES.allowed_lateness_ms


def ms(*args) -> int:
    return int(dt.datetime(*args, tzinfo=BRT).timestamp() * 1000)


ISSUED = ms(2025, 3, 10, 14)  # Monday
DUE = ms(2025, 3, 12, 23, 59, 59)  # Wednesday, end of the day
T_REMINDER = ISSUED + 24 * H
T_LAST_CALL = DUE - 14 * H
T_NEW_BOLETO = ms(2025, 3, 17, 23, 59, 59) + 2 * H  # 3 business days after Wednesday, + 2 h
FAR = ms(2025, 6, 1)


def ev(type_, at, payload, order="o-1", event_id=None):
    return Event(event_id or str(uuid.uuid4()), type_, at, "psp", None, "c-1", order, payload)


def pending(at=ISSUED, due=DUE, charge="ch-1", order="o-1", method="boleto", amount=1234.56):
    return ev("payment_pending", at, {"charge_id": charge, "method": method, "amount": amount, "due_at": due}, order)


def paid(at, charge="ch-1", order="o-1", method="boleto", amount=1234.56):
    return ev("order_paid", at, {"charge_id": charge, "method": method, "amount": amount}, order)


def fold_all(events, state=None):
    for e in events:
        state = fold.evolve(state, e, RULES)
    return state


def sent_at(events, watermark):
    """Folds everything, then decides once at the watermark (the outcome with no lateness issues)."""
    state = fold_all(events)
    actions = fold.decide(state, watermark, RULES)
    return fold.mark_sent(state, actions), [a.action_id for a in actions]


def stream(events):
    """Processes events in arrival order on one partition: observe, evolve, decide at every step."""
    clock, states, sent = None, {}, []
    for e in events:
        clock = fold.observe(clock, e.occurred_at, RULES)
        if e.type in fold.TRACKED_TYPES:
            states[e.order_id] = fold.evolve(states.get(e.order_id), e, RULES)
        for order_id, state in states.items():
            actions = fold.decide(state, clock["watermark"], RULES)
            sent += [a.action_id for a in actions]
            states[order_id] = fold.mark_sent(state, actions) if state else state
    return states, sent


def test_never_paid_gets_every_step_once_with_deterministic_ids():
    state, ids = sent_at([pending()], FAR)
    assert ids == ["ch-1:reminder", "ch-1:last_call", "ch-1:new_boleto"]
    assert fold.decide(state, FAR, RULES) == []  # sent once
    action = fold.decide(fold_all([pending()]), T_REMINDER + 1, RULES)[0]
    assert (action.type, action.scheduled_at, action.due_at, action.channels) == (
        "send_payment_reminder", T_REMINDER, DUE, ("email", "whatsapp"))
    assert (action.order_id, action.customer_id, action.method, action.amount) == ("o-1", "c-1", "boleto", 1234.56)


def test_a_step_is_due_only_once_the_watermark_is_past_it():
    state = fold_all([pending()])
    assert fold.decide(state, T_REMINDER, RULES) == []
    assert [a.step for a in fold.decide(state, T_REMINDER + 1, RULES)] == ["reminder"]


def test_payments_before_between_and_after_the_steps():
    _, before = sent_at([pending(), paid(T_REMINDER - H)], FAR)
    _, at_the_step = sent_at([pending(), paid(T_REMINDER)], FAR)
    _, between = sent_at([pending(), paid(T_REMINDER + H)], FAR)
    _, after_all = sent_at([pending(), paid(FAR - H)], FAR)
    assert before == [] and at_the_step == []
    assert between == ["ch-1:reminder"]
    assert after_all == ["ch-1:reminder", "ch-1:last_call", "ch-1:new_boleto"]


def test_recovered_once_even_when_paid_twice():
    state, _ = sent_at([pending(), paid(T_REMINDER + H), paid(T_REMINDER + 2 * H)], FAR)
    cells = fold.contribution(state, RULES)
    assert cells["recovered|boleto"] == 1 and cells["paid|boleto"] == 1
    assert cells["revenue_cents|boleto"] == 123456
    assert cells["actions|boleto|reminder"] == 1 and "actions|boleto|last_call" not in cells
    assert cells["targeted|boleto"] == 1 and "open|boleto" not in cells


def test_paid_before_any_action_is_paid_but_not_recovered():
    state, _ = sent_at([pending(), paid(T_REMINDER - H)], FAR)
    cells = fold.contribution(state, RULES)
    assert cells == {"charges|boleto": 1, "paid|boleto": 1}


def test_open_while_a_step_is_scheduled():
    state = fold_all([pending()])
    assert fold.contribution(state, RULES) == {"charges|boleto": 1, "open|boleto": 1}


def test_an_order_payment_without_charge_id_cancels_too():
    no_charge = ev("order_paid", T_REMINDER - H, {"charge_id": None, "method": "credit_card", "amount": 1234.56})
    _, ids = sent_at([pending(), no_charge], FAR)
    assert ids == []


def test_card_payment_of_an_order_without_charge_is_not_kept():
    card = ev("order_paid", ISSUED, {"charge_id": None, "method": "credit_card", "amount": 10.0}, order="o-9")
    assert fold.evolve(None, card, RULES) is None
    assert fold.evolve(None, pending(method="credit_card"), RULES) is None


def test_fold_is_order_independent_and_idempotent():
    events = [pending(), paid(T_LAST_CALL + H), paid(T_LAST_CALL + 2 * H),
              ev("order_shipped", FAR - 2 * H, {"carrier": "jadlog", "tracking_code": "x"})]
    expected = fold_all(events)
    for perm in itertools.permutations(events):
        assert fold_all(list(perm)) == expected
    assert fold_all(events + events) == expected
    assert sent_at(events, FAR)[1] == ["ch-1:reminder", "ch-1:last_call"]


def test_a_payment_late_within_the_lateness_still_cancels():
    payment = paid(T_REMINDER - MIN)
    push = ev("order_invoiced", T_REMINDER + LATENESS - MIN, {"invoice_number": "1"}, order="o-2")
    push_on = ev("order_invoiced", FAR, {"invoice_number": "2"}, order="o-2")
    # the payment arrives after an event 4 min newer than itself: within the 5 min lateness
    _, sent = stream([pending(), push, payment, push_on])
    assert sent == []


def test_a_payment_later_than_the_lateness_cannot_cancel_and_is_counted():
    payment = paid(T_REMINDER - MIN)
    push = ev("order_invoiced", T_REMINDER + LATENESS + MIN, {"invoice_number": "1"}, order="o-2")
    push_on = ev("order_invoiced", FAR, {"invoice_number": "2"}, order="o-2")
    states, sent = stream([pending(), push, payment, push_on])
    assert sent == ["ch-1:reminder"]
    cells = fold.contribution(states["o-1"], RULES)
    assert cells["after_payment|boleto"] == 1 and "recovered|boleto" not in cells


def test_stream_equals_fold_then_decide_for_every_arrival_order_within_lateness():
    at = [ISSUED, T_REMINDER - 2 * MIN, T_REMINDER + MIN, T_LAST_CALL + 3 * MIN]
    events = [pending(at=at[0]), paid(at[2]),
              ev("order_invoiced", at[1], {"invoice_number": "1"}, order="o-2"),
              ev("order_invoiced", at[3], {"invoice_number": "2"}, order="o-2")]
    for perm in itertools.permutations(events):
        newest = -1
        within = True
        for e in perm:
            within &= e.occurred_at >= newest - LATENESS
            newest = max(newest, e.occurred_at)
        if not within:
            continue
        last_w = max(e.occurred_at for e in events) - LATENESS
        assert sorted(stream(list(perm))[1]) == sorted(sent_at(events, last_w)[1]), perm


def test_cancellation_stops_the_campaign_unless_for_non_payment():
    by_customer = ev("order_cancelled", T_REMINDER + H, {"reason": "customer_request"})
    by_erp = ev("order_cancelled", DUE + H, {"reason": "payment_not_made"})
    assert sent_at([pending(), by_customer], FAR)[1] == ["ch-1:reminder"]
    assert sent_at([pending(), by_erp], FAR)[1] == ["ch-1:reminder", "ch-1:last_call", "ch-1:new_boleto"]


def test_a_newer_charge_supersedes_and_its_payment_recovers_the_order():
    second = pending(at=T_NEW_BOLETO + H, due=T_NEW_BOLETO + 49 * H, charge="ch-2", amount=1300.0)
    state, ids = sent_at([pending(), second, paid(T_NEW_BOLETO + 2 * H, charge="ch-2", amount=1300.0)], FAR)
    assert ids == ["ch-1:reminder", "ch-1:last_call", "ch-1:new_boleto"]
    cells = fold.contribution(state, RULES)
    assert cells["recovered|boleto"] == 1 and cells["revenue_cents|boleto"] == 130000
    early_second = pending(at=T_REMINDER + H, due=T_REMINDER + 49 * H, charge="ch-2")
    _, ids = sent_at([pending(), early_second], T_REMINDER + 30 * H)
    assert ids == ["ch-1:reminder", "ch-2:reminder"]  # ch-1's last call (due by then) is superseded by ch-2


def test_pix_reminder_before_expiry():
    issued = ms(2025, 3, 10, 14)
    state, ids = sent_at([pending(at=issued, due=issued + 30 * MIN, charge="px-1", method="pix", amount=99.9)],
                         issued + 20 * MIN)
    assert ids == ["px-1:reminder"]
    assert fold.decide(state, FAR, RULES)[0].type == "offer_new_pix"


def test_facts_are_bounded_per_order():
    payments = [paid(T_REMINDER + i * MIN) for i in range(20)]
    state = fold_all([pending(), *reversed(payments)])
    assert len(state["payments"]) == fold.MAX_FACTS
    assert min(p["at"] for p in state["payments"].values()) == T_REMINDER


def test_state_can_be_dropped_after_the_retention_only():
    state, _ = sent_at([pending()], FAR)
    last = fold.purge_at(state, RULES)
    assert last == T_NEW_BOLETO + RULES.retention_ms
    assert not fold.can_drop(state, last, RULES) and fold.can_drop(state, last + 1, RULES)
    assert not fold.can_drop(fold_all([pending()]), FAR * 2, RULES)  # steps still scheduled
    assert fold.next_wake(fold_all([pending()]), RULES) == T_REMINDER


def test_clock_watermark_and_ticks():
    clock = fold.observe(None, ISSUED, RULES)
    assert clock["watermark"] == ISSUED - LATENESS
    assert fold.observe(clock, ISSUED - H, RULES)["watermark"] == ISSUED - LATENESS  # never backwards
    wall = ISSUED + H
    assert fold.tick(clock, wall, True, RULES)["watermark"] == wall - RULES.idle_lateness_ms
    assert fold.tick(clock, wall, False, RULES) is clock  # a backlog: do not run ahead of it
    assert fold.tick(clock, ISSUED + RULES.live_horizon_ms + 1, True, RULES) is clock  # old history
    assert fold.tick(None, wall, True, RULES) is None
    assert fold.tick(clock, ISSUED - H, True, RULES)["watermark"] == ISSUED - LATENESS


def test_due_index_files_takes_and_bounds_its_chunks():
    store: dict = {}
    base = fold.bucket_of(ISSUED) * fold.BUCKET_MS
    slots = {f"o-{i}": fold.index_add(store, 0, f"o-{i}", base + 1000) for i in range(fold.CHUNK_SIZE + 5)}
    far_slot = fold.index_add(store, 0, "o-late", base + 3 * fold.BUCKET_MS)
    assert store[f"due|0|{fold.bucket_of(base)}"] == 2  # two chunks, none over CHUNK_SIZE
    assert all(len(v) <= fold.CHUNK_SIZE for k, v in store.items() if k.count("|") == 3)
    fold.index_remove(store, 0, "o-3", slots["o-3"])
    scanned = fold.bucket_of(base) - 1
    taken, scanned2 = fold.index_take(store, 0, scanned, base + 1000)  # W == wake: not yet
    assert taken == [] and scanned2 == scanned
    taken, scanned3 = fold.index_take(store, 0, scanned, base + 1001)
    assert len(taken) == fold.CHUNK_SIZE + 4 and "o-3" not in taken
    taken, scanned4 = fold.index_take(store, 0, scanned3, base + 10 * fold.BUCKET_MS)
    assert taken == ["o-late"] and far_slot[0] == fold.bucket_of(base) + 3
    assert store == {}  # passed buckets are deleted
    assert scanned4 == fold.bucket_of(base + 10 * fold.BUCKET_MS - 1) - 1


def test_a_charge_known_only_after_its_steps_fell_due_misses_them():
    # Given a watermark already past the reminder when the boleto's charge is first seen (a PSP backlog)
    known_at = T_REMINDER + H
    charge = pending()
    state = fold.evolve(None, charge, RULES, watermark_ms=known_at)
    # Then the reminder is missed, never sent, and the later steps run as usual
    statuses = {p.step: p.status for p in fold.plan(state, RULES)}
    assert statuses == {"reminder": fold.MISSED, "last_call": fold.SCHEDULED, "new_boleto": fold.SCHEDULED}
    assert [a.step for a in fold.decide(state, FAR, RULES)] == ["last_call", "new_boleto"]
    # and the charge redelivered, or sent again under another event id, does not move when it was known
    assert fold.evolve(state, charge, RULES, watermark_ms=FAR) == state
    for _ in range(20):  # another id sorts before or after the first one: both ways
        again = fold.evolve(state, pending(), RULES, watermark_ms=FAR)
        assert {p.step: p.status for p in fold.plan(again, RULES)} == statuses
    # while a charge arriving within the lateness misses nothing
    on_time = fold.evolve(None, pending(), RULES, watermark_ms=ISSUED - LATENESS)
    assert [a.step for a in fold.decide(on_time, FAR, RULES)] == ["reminder", "last_call", "new_boleto"]


def test_an_order_older_than_the_retention_is_stale():
    state = fold.evolve(None, pending(), RULES)
    after_everything = fold.purge_at(state, RULES)
    assert not fold.is_stale(state, after_everything, RULES)
    assert fold.is_stale(state, after_everything + 1, RULES)
    assert not fold.is_stale(None, FAR, RULES) and not fold.is_stale(state, None, RULES)
