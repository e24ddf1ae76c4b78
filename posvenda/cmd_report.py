"""`posvenda report NAME`: an operations report (projections/reports.py) made from the log.

By default the report replays the source topics from the start (as `posvenda rebuild` does,
progress bar on stderr) and folds the order and session read models with the live code. With
--live it reads them from the compacted projection topics the workers keep current instead (one
record per order or session: much less to read on a long log, and as fresh as the workers are);
the customer, NPS and ticket events come from their own topics either way. The table goes to
--out or stdout as CSV, XLSX, XML or JSON.
"""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from projections.report_export import FORMATS
    from projections.reports import REPORTS

    p = sub.add_parser("report", help="an operations report from the log, as CSV, XLSX, XML or JSON")
    p.add_argument("name", choices=sorted(REPORTS), help="which report")
    p.add_argument("--out", type=Path, default=None, help="write here (format from the suffix) instead of stdout")
    p.add_argument("--format", choices=FORMATS, default=None, help="csv (default), xlsx, xml or json")
    p.add_argument("--days", type=int, default=14, help="last-days: how many days up to today (default 14)")
    p.add_argument("--from", dest="start", type=dt.date.fromisoformat, default=None,
                   help="birthdays, replenishment: first day, YYYY-MM-DD (default today)")
    p.add_argument("--to", dest="end", type=dt.date.fromisoformat, default=None,
                   help="birthdays, replenishment: last day, YYYY-MM-DD (default 30 days after --from)")
    p.add_argument("--today", type=dt.date.fromisoformat, default=None,
                   help="the local date the report is made on (default: today in POSVENDA_TIMEZONE)")
    p.add_argument("--live", action="store_true",
                   help="orders and sessions from the workers' compacted projection topics, not a replay")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_report)


def read_inputs(settings, today: dt.date | None, live: bool, progress=None):
    from zoneinfo import ZoneInfo

    from projections import order_history_fold, rebuild, reports, visits_fold
    from topics import catalogue

    tz = settings.business_timezone
    today = today or dt.datetime.now(ZoneInfo(tz)).date()
    if live:
        side = rebuild.read_log(settings, (catalogue.CUSTOMERS, catalogue.FEEDBACK, catalogue.MESSAGES), progress)
        orders = rebuild.read_latest(settings, catalogue.PROJECTION_ORDERS, progress)
        sessions = rebuild.read_latest(settings, catalogue.PROJECTION_VISITS, progress)
        return reports.Inputs([orders[k] for k in sorted(orders)], [sessions[k] for k in sorted(sessions)],
                              reports.side_events(r.event for r in side), tz, today)
    log = rebuild.read_log(settings, rebuild.SOURCES["customers"], progress)
    return reports.Inputs(
        orders=[order_history_fold.view(s) for _, s in sorted(rebuild.fold_orders(log).items())],
        sessions=[visits_fold.view(s) for _, s in sorted(rebuild.fold_sessions(log).items())],
        events=reports.side_events(r.event for r in log), timezone=tz, today=today)


def cmd_report(args) -> int:
    from tqdm import tqdm

    from projections import report_export, reports
    from streams.settings import Settings

    settings = Settings.from_env()
    from projections.rebuild import MissingTopics

    try:
        with tqdm(unit="msg", desc=f"report {args.name}", disable=args.quiet, file=sys.stderr) as bar:
            inputs = read_inputs(settings, args.today, args.live, bar)
    except MissingTopics as exc:
        print(f"posvenda report: {exc}", file=sys.stderr)
        return 2
    try:
        if args.name == "last-days":
            table = reports.REPORTS[args.name](inputs, args.days)
        elif args.name in ("birthdays", "replenishment"):
            start = args.start or inputs.today
            table = reports.REPORTS[args.name](inputs, start, args.end or start + dt.timedelta(days=30))
        else:
            table = reports.REPORTS[args.name](inputs)
    except ValueError as exc:
        print(f"posvenda report: {exc}", file=sys.stderr)
        return 2
    data = report_export.render(table, report_export.format_for(args.out, args.format))
    if args.out:
        args.out.write_bytes(data)
        print(f"report {args.name}: {len(table.rows)} rows written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0
