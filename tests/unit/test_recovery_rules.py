"""The recovery cadence file: it loads, it is validated with errors that name the place, and the
schedule (anchor, business days, offset, conditions) is what the file says."""
import copy
import datetime as dt
import tomllib

import pytest

from alerts import recovery_rules
from alerts.recovery_rules import RulesError, parse, schedule

BRT = dt.timezone(dt.timedelta(hours=-3))
H = 3_600_000


def ms(*args) -> int:
    return int(dt.datetime(*args, tzinfo=BRT).timestamp() * 1000)


def doc() -> dict:
    with recovery_rules.CONFIG_PATH.open("rb") as f:
        return tomllib.load(f)


def test_the_shipped_file_loads_and_every_action_has_its_templates():
    rules = recovery_rules.load()
    assert set(rules.methods) == {"boleto", "pix"}
    assert [s.name for s in rules.steps("boleto")] == ["reminder", "last_call", "new_boleto"]
    assert rules.allowed_lateness_ms == 5 * 60_000
    assert recovery_rules.missing_templates(rules) == []


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["methods"]["boleto"]["steps"][0].update(anchor="paid"), "methods.boleto.steps[reminder].anchor"),
    (lambda d: d["methods"]["boleto"]["steps"][0].update(offset="24 hours"), "steps[reminder].offset"),
    (lambda d: d["methods"]["boleto"]["steps"][0].update(channels=["pigeon"]), "'pigeon' is not one of"),
    (lambda d: d["methods"]["boleto"]["steps"][0].update(must_precede=["lastcall"]), "'lastcall' is neither"),
    (lambda d: d["methods"]["boleto"]["steps"][1].update(name="reminder"), "'reminder' is used twice"),
    (lambda d: d["methods"]["boleto"]["steps"][0].update(action="PaymentReminder"), "imperative"),
    (lambda d: d["methods"]["boleto"]["steps"][0].update(name="re:minder"), "without ':'"),
    (lambda d: d["methods"]["pix"]["steps"][0].update(ofset="1h"), "unknown key 'ofset'"),
    (lambda d: d["methods"]["pix"]["steps"][0].pop("channels"), "missing required key 'channels'"),
    (lambda d: d["watermark"].update(allowed_lateness="-5m"), "watermark.allowed_lateness"),
    (lambda d: d["calendar"].update(timezone="Mars/Olympus"), "calendar.timezone"),
    (lambda d: d["calendar"].update(holidays=["31-12"]), "'31-12' is neither"),
    (lambda d: d.update(methods={}), "nothing to recover"),
])
def test_a_bad_file_fails_naming_the_place(mutate, message):
    d = copy.deepcopy(doc())
    mutate(d)
    with pytest.raises(RulesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(d, "recovery.toml")


def test_invalid_toml_and_missing_file_name_the_file(tmp_path):
    bad = tmp_path / "r.toml"
    bad.write_text("[watermark\n")
    with pytest.raises(RulesError, match="not valid TOML"):
        recovery_rules.load(bad)
    with pytest.raises(RulesError, match="no such file"):
        recovery_rules.load(tmp_path / "nope.toml")


def test_changing_the_cadence_is_a_data_change(tmp_path):
    text = recovery_rules.CONFIG_PATH.read_text().replace('offset = "24h"', 'offset = "12h"')
    path = tmp_path / "recovery.toml"
    path.write_text(text)
    rules = recovery_rules.load(path)
    issued, due = ms(2025, 3, 10, 12), ms(2025, 3, 12, 23, 59, 59)
    assert {s.name: t for s, t in schedule(rules, "boleto", issued, due)}["reminder"] == issued + 12 * H


def test_business_days_skip_weekends_and_holidays():
    rules = recovery_rules.load()
    friday = ms(2025, 3, 14, 23, 59, 59)
    assert recovery_rules.add_business_days(friday, 1, rules) == ms(2025, 3, 17, 23, 59, 59)  # Monday
    assert recovery_rules.add_business_days(friday, 3, rules) == ms(2025, 3, 19, 23, 59, 59)
    before_tiradentes = ms(2025, 4, 18, 10)  # Friday; Monday 21/04 is a national holiday
    assert recovery_rules.add_business_days(before_tiradentes, 1, rules) == ms(2025, 4, 22, 10)


def test_boleto_schedule_and_its_conditions():
    rules = recovery_rules.load()
    issued = ms(2025, 3, 10, 14)  # Monday
    due_in_two_days = ms(2025, 3, 12, 23, 59, 59)
    steps = {s.name: t for s, t in schedule(rules, "boleto", issued, due_in_two_days)}
    assert steps == {"reminder": issued + 24 * H, "last_call": due_in_two_days - 14 * H,
                     "new_boleto": ms(2025, 3, 17, 23, 59, 59) + 2 * H}
    # due tomorrow: the 24 h reminder would land after the last call, so only the last call is sent
    due_tomorrow = ms(2025, 3, 11, 23, 59, 59)
    assert [s.name for s, _ in schedule(rules, "boleto", issued, due_tomorrow)] == ["last_call", "new_boleto"]


def test_pix_reminder_is_dropped_when_it_would_precede_the_charge():
    rules = recovery_rules.load()
    issued = ms(2025, 3, 10, 14)
    assert [s.name for s, _ in schedule(rules, "pix", issued, issued + 30 * 60_000)] == ["reminder", "new_pix"]
    assert [s.name for s, _ in schedule(rules, "pix", issued, issued + 10 * 60_000)] == ["new_pix"]
    assert schedule(rules, "credit_card", issued, issued + H) == []
