"""Boleto/Pix recovery cadences as data: alerts/recovery.toml loaded into frozen dataclasses.

Why data: marketing changes a cadence (a reminder 12 h instead of 24 h after issue, a WhatsApp last
call) far more often than the code changes; the file is validated when loaded, so a typo fails the
worker's start with the file, method, step and key at fault instead of silently skipping a step.

The fold receives a `RecoveryRules` object and never reads the file, so a unit test builds its own
rules (`parse(dict)`) and a replay uses exactly the rules it was given. `schedule` is the one place
where a step's time is computed (anchor, business days, offset, and the conditions that drop it).
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HERE = Path(__file__).resolve().parent
CONFIG_PATH = HERE / "recovery.toml"
TEMPLATES_DIR = HERE / "templates"

ANCHORS = ("issued", "due")
CHANNELS = ("email", "whatsapp", "sms")
DUE = "due"  # the name `must_precede` uses for the charge's due time
_DURATION = re.compile(r"^(-?)(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_STEP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # no ':' : action ids are charge_id:step
_ACTION = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")  # imperative snake_case: send_payment_reminder
_STEP_KEYS = {"name", "action", "anchor", "offset", "business_days", "must_precede", "channels"}


class RulesError(ValueError):
    """recovery.toml cannot be used; the message names where (method, step, key) and why."""


@dataclass(frozen=True)
class Step:
    name: str
    action: str  # imperative, e.g. send_payment_reminder
    anchor: str  # "issued" or "due"
    offset_ms: int
    business_days: int
    must_precede: tuple[str, ...]  # "due" and/or names of other steps of the same method
    channels: tuple[str, ...]


@dataclass(frozen=True)
class RecoveryRules:
    methods: dict[str, tuple[Step, ...]]  # payment method -> its cadence, in file order
    allowed_lateness_ms: int
    idle_lateness_ms: int
    live_horizon_ms: int
    retention_ms: int
    timezone: str
    holidays: frozenset[str]  # "MM-DD" (every year) or "YYYY-MM-DD"
    keep_on_cancel_reasons: frozenset[str]

    def steps(self, method: str) -> tuple[Step, ...]:
        return self.methods.get(method, ())

    def step(self, method: str, name: str) -> Step | None:
        return next((s for s in self.steps(method) if s.name == name), None)


# --- loading -----------------------------------------------------------------------------------

def parse_duration(value, where: str) -> int:
    """Milliseconds of "90s", "15m", "-6h", "3d" (an int is taken as milliseconds)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            sign, number, unit = match.groups()
            return (-1 if sign else 1) * int(number) * _UNIT_MS[unit]
    raise RulesError(f"{where}: {value!r} is not a duration (e.g. \"90s\", \"15m\", \"-6h\", \"3d\")")


def _table(doc: dict, name: str, where: str) -> dict:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise RulesError(f"{where}: [{name}] must be a table")
    return value


def _strings(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RulesError(f"{where}: unknown key {unknown[0]!r} (known: {sorted(allowed)})")


def _step(raw, method: str, index: int, source: str) -> Step:
    where = f"{source}: methods.{method}.steps[{index}]"
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: must be a table")
    _check_keys(raw, _STEP_KEYS, where)
    for key in ("name", "action", "anchor", "offset", "channels"):
        if key not in raw:
            raise RulesError(f"{where}: missing required key {key!r}")
    name = raw["name"]
    if not isinstance(name, str) or not _STEP_NAME.match(name) or name == DUE:
        raise RulesError(f"{where}.name: {name!r} must be lower_snake_case without ':' and not {DUE!r}")
    where = f"{source}: methods.{method}.steps[{name}]"
    action = raw["action"]
    if not isinstance(action, str) or not _ACTION.match(action):
        raise RulesError(f"{where}.action: {action!r} must be an imperative in snake_case, e.g. send_payment_reminder")
    if raw["anchor"] not in ANCHORS:
        raise RulesError(f"{where}.anchor: {raw['anchor']!r} is not one of {list(ANCHORS)}")
    business_days = raw.get("business_days", 0)
    if not isinstance(business_days, int) or isinstance(business_days, bool) or not 0 <= business_days <= 30:
        raise RulesError(f"{where}.business_days: {business_days!r} must be an integer from 0 to 30")
    channels = _strings(raw["channels"], f"{where}.channels")
    if not channels:
        raise RulesError(f"{where}.channels: at least one channel is needed")
    for channel in channels:
        if channel not in CHANNELS:
            raise RulesError(f"{where}.channels: {channel!r} is not one of {list(CHANNELS)}")
    if len(set(channels)) != len(channels):
        raise RulesError(f"{where}.channels: a channel is listed twice")
    return Step(name=name, action=action, anchor=raw["anchor"], offset_ms=parse_duration(raw["offset"], f"{where}.offset"),
                business_days=business_days, must_precede=_strings(raw.get("must_precede", []), f"{where}.must_precede"),
                channels=channels)


def parse(doc: dict, source: str = "recovery rules") -> RecoveryRules:
    """Validated rules from the TOML document (a dict); raises RulesError naming the bad key."""
    _check_keys(doc, {"watermark", "calendar", "campaign", "methods"}, source)
    watermark = _table(doc, "watermark", source)
    _check_keys(watermark, {"allowed_lateness", "idle_lateness", "live_horizon", "retention"}, f"{source}: [watermark]")
    durations = {}
    for key, default in (("allowed_lateness", "5m"), ("idle_lateness", "5m"), ("live_horizon", "7d"), ("retention", "30d")):
        durations[key] = parse_duration(watermark.get(key, default), f"{source}: watermark.{key}")
        if durations[key] < 0:
            raise RulesError(f"{source}: watermark.{key}: must not be negative")
    calendar = _table(doc, "calendar", source)
    _check_keys(calendar, {"timezone", "holidays"}, f"{source}: [calendar]")
    timezone = calendar.get("timezone", "America/Sao_Paulo")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise RulesError(f"{source}: calendar.timezone: {timezone!r} is not an IANA time zone") from None
    holidays = _strings(calendar.get("holidays", []), f"{source}: calendar.holidays")
    for day in holidays:
        try:
            dt.date.fromisoformat(day if len(day) == 10 else f"2000-{day}")
        except ValueError:
            raise RulesError(f"{source}: calendar.holidays: {day!r} is neither MM-DD nor YYYY-MM-DD") from None
    campaign = _table(doc, "campaign", source)
    _check_keys(campaign, {"keep_on_cancel_reasons"}, f"{source}: [campaign]")
    keep = _strings(campaign.get("keep_on_cancel_reasons", []), f"{source}: campaign.keep_on_cancel_reasons")

    methods_raw = _table(doc, "methods", source)
    if not methods_raw:
        raise RulesError(f"{source}: no [[methods.<method>.steps]]: nothing to recover")
    methods: dict[str, tuple[Step, ...]] = {}
    for method, body in methods_raw.items():
        if not isinstance(body, dict):
            raise RulesError(f"{source}: methods.{method} must be a table")
        _check_keys(body, {"steps"}, f"{source}: methods.{method}")
        raw_steps = body.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise RulesError(f"{source}: methods.{method}: needs at least one [[methods.{method}.steps]]")
        steps = tuple(_step(raw, method, i, source) for i, raw in enumerate(raw_steps))
        names = [s.name for s in steps]
        for step in steps:
            if names.count(step.name) > 1:
                raise RulesError(f"{source}: methods.{method}: step name {step.name!r} is used twice")
            for other in step.must_precede:
                if other != DUE and other not in names:
                    raise RulesError(f"{source}: methods.{method}.steps[{step.name}].must_precede: "
                                     f"{other!r} is neither 'due' nor a step of {method}")
                if other == step.name:
                    raise RulesError(f"{source}: methods.{method}.steps[{step.name}].must_precede: names itself")
        methods[method] = steps
    return RecoveryRules(methods=methods, allowed_lateness_ms=durations["allowed_lateness"],
                         idle_lateness_ms=durations["idle_lateness"], live_horizon_ms=durations["live_horizon"],
                         retention_ms=durations["retention"], timezone=timezone, holidays=frozenset(holidays),
                         keep_on_cancel_reasons=frozenset(keep))


def load(path: Path | str = CONFIG_PATH) -> RecoveryRules:
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise RulesError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML: {exc}") from None
    return parse(doc, str(path))


@cache
def default_rules() -> RecoveryRules:
    """The rules of alerts/recovery.toml, loaded once per process."""
    return load(CONFIG_PATH)


def missing_templates(rules: RecoveryRules, templates_dir: Path = TEMPLATES_DIR) -> list[str]:
    """Template files the cadence needs (<action>.<channel>.txt) that do not exist."""
    needed = {f"{s.action}.{c}.txt" for steps in rules.methods.values() for s in steps for c in s.channels}
    return sorted(name for name in needed if not (templates_dir / name).is_file())


# --- schedule ----------------------------------------------------------------------------------

def is_business_day(day: dt.date, rules: RecoveryRules) -> bool:
    return day.weekday() < 5 and day.isoformat() not in rules.holidays and day.strftime("%m-%d") not in rules.holidays


def add_business_days(ms: int, days: int, rules: RecoveryRules) -> int:
    """`ms` moved forward `days` business days in the calendar's time zone, same local time of day."""
    if days == 0:
        return ms
    zone = ZoneInfo(rules.timezone)
    local = dt.datetime.fromtimestamp(ms / 1000, zone)
    day, left = local.date(), days
    while left:
        day += dt.timedelta(days=1)
        if is_business_day(day, rules):
            left -= 1
    moved = dt.datetime.combine(day, local.time(), tzinfo=zone)
    return round(moved.timestamp() * 1000)


def step_time(step: Step, issued_at: int, due_at: int, rules: RecoveryRules) -> int:
    anchor = issued_at if step.anchor == "issued" else due_at
    return add_business_days(anchor, step.business_days, rules) + step.offset_ms


def schedule(rules: RecoveryRules, method: str, issued_at: int, due_at: int) -> list[tuple[Step, int]]:
    """The steps of a charge that apply, with their event times, in file order.

    A step is dropped when it would fall before the charge was issued, or at/after a time it must
    precede ("due" or another step's raw time, whether or not that step applies)."""
    raw = {s.name: step_time(s, issued_at, due_at, rules) for s in rules.steps(method)}
    out = []
    for step in rules.steps(method):
        at = raw[step.name]
        if at < issued_at:
            continue
        if any(at >= (due_at if name == DUE else raw[name]) for name in step.must_precede):
            continue
        out.append((step, at))
    return out
