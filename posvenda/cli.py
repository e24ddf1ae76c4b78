"""The `posvenda` command line. Each subcommand is a thin edge over a module that does the work."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("posvenda")

# Further subcommands: each module has `add_parser(subparsers)` that adds its parser and sets `func`.
COMMAND_MODULES: list[str] = [
    "posvenda.demo",
    "posvenda.cmd_dashboards",
    "posvenda.cmd_rebuild",
    "alerts.alert_rules",
    "posvenda.cmd_campaigns",
    "posvenda.cmd_olist",
    "posvenda.cmd_report",
]


def _settings():
    from streams.settings import Settings

    return Settings.from_env()


def cmd_topics(args) -> int:
    from topics.admin import create_topics, drift
    from topics.catalogue import all_topics

    settings = _settings()
    if args.action == "list":
        for t in all_topics():
            print(f"{settings.topic_name(t):40} key={t.key:28} {t.cleanup_policy:8} "
                  f"partitions={t.partitions or settings.partitions} schemas={','.join(t.value_schemas)}")
        return 0
    created, existing = create_topics(settings)
    print(f"topics: {len(created)} created, {len(existing)} already there ({settings.bootstrap_servers})")
    for name in created:
        print(f"  + {name}")
    drifts = drift(settings)
    for line in drifts:
        print(f"  drift: {line}", file=sys.stderr)
    if drifts:
        print(f"topics: {len(drifts)} drift(s) from the catalogue (topics/catalogue.py): fix them as said above",
              file=sys.stderr)
    return 1 if drifts else 0


def topics_ready(command: str, settings, topics=None) -> bool:
    """False (and why, on stderr) when the topics a producing command writes to are missing."""
    from topics.admin import TopicsNotReady, require_topics
    from topics.catalogue import SOURCE_TOPICS

    try:
        require_topics(settings, topics or SOURCE_TOPICS)
    except TopicsNotReady as exc:
        print(f"posvenda {command}: {exc}", file=sys.stderr)
        return False
    return True


def cmd_ingest(args) -> int:
    from tqdm import tqdm

    from posvenda.ingest import count_lines, ingest
    from posvenda.publish import Publisher

    path = Path(args.file)
    if not path.is_file():
        print(f"posvenda ingest: {path}: no such file", file=sys.stderr)
        return 2
    if not topics_ready("ingest", _settings()):
        return 2
    with Publisher(_settings()) as publisher, tqdm(total=count_lines(path), unit="ev", desc="ingest",
                                                   disable=args.quiet) as bar:
        result = ingest(path, publisher, bar)
    for rejection in result.rejected:
        print(f"{path}: {rejection}", file=sys.stderr)
    print(f"ingest: {result.published} published, {len(result.rejected)} rejected")
    return 1 if result.rejected else 0


def cmd_simulate(args) -> int:
    from tqdm import tqdm

    from posvenda.simulate import generate, write_jsonl

    start_ms = int(args.start_ms if args.start_ms is not None else time.time() * 1000 - args.backdate_hours * 3600_000)
    # Order lifecycles run weeks past the last session: cut at now, since workers dead-letter events
    # dated more than a day ahead.
    stream = generate(args.seed, args.sessions, start_ms, until_ms=int(time.time() * 1000))
    if args.out and args.no_produce:
        events = list(tqdm(stream, unit="ev", desc="simulate", disable=args.quiet))
        write_jsonl(events, Path(args.out))
        print(f"simulate: {len(events)} events written to {args.out}")
        return 0
    from posvenda.publish import Publisher

    if not topics_ready("simulate", _settings()):
        return 2
    events = []
    interval = 1.0 / args.rate if args.rate else 0.0
    next_at = time.monotonic()
    with Publisher(_settings()) as publisher:
        for event in tqdm(stream, unit="ev", desc="simulate", disable=args.quiet):
            publisher.publish(event)
            if args.out:
                events.append(event)
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    if args.out:
        write_jsonl(events, Path(args.out))
    print(f"simulate: {publisher.sent} events published")
    return 0


def cmd_worker(args) -> int:
    from streams import worker

    worker.main(["--loglevel", args.loglevel, *args.faust_args])
    return 0


def cmd_funnel(args) -> int:
    from posvenda.live import show_funnel

    return show_funnel(args.url, args.dimension, args.watch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posvenda",
        description="Post-sale event platform: every customer touchpoint is a Kafka event, folded into "
                    "live projections. Configuration comes from the environment (see README).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("topics", help="create or list the catalogue's topics")
    p.add_argument("action", choices=["create", "list"], help="create missing topics (idempotent) or list them")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("ingest", help="validate and publish events from a JSON-lines file")
    p.add_argument("file", help="JSONL file, one event per line in the README's JSON form")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("simulate", help="generate realistic e-commerce traffic")
    p.add_argument("--seed", type=int, default=1, help="same seed, same events (default 1)")
    p.add_argument("--sessions", type=int, default=2000, help="number of site sessions (default 2000)")
    p.add_argument("--rate", type=float, default=0, help="events per second (default 0: as fast as possible)")
    p.add_argument("--start-ms", type=int, default=None, help="event time of the first session (UTC millis)")
    p.add_argument("--backdate-hours", type=float, default=72,
                   help="without --start-ms, start this many hours before now (default 72)")
    p.add_argument("--out", help="also write the events to this JSONL file (ingest format)")
    p.add_argument("--no-produce", action="store_true", help="with --out: write the file only, publish nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("worker", help="run a Faust worker (agents, tables, HTTP views, /metrics)")
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level of the worker (default info)")
    p.add_argument("faust_args", nargs=argparse.REMAINDER, help="extra arguments for the Faust worker")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("funnel", help="print the live purchase funnel from a worker's HTTP view")
    p.add_argument("--url", default=None, help="worker base URL (default http://POSVENDA_WEB_HOST:PORT)")
    p.add_argument("--dimension", default="all", choices=["all", "device", "channel", "product"])
    p.add_argument("--watch", type=float, default=0, help="refresh every N seconds (default: print once)")
    p.set_defaults(func=cmd_funnel)

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        return args.func(args) or 0
    except Exception as exc:  # a broker that cannot be reached or refuses us: one clear line, no traceback
        from kafka.errors import KafkaError

        if not isinstance(exc, KafkaError):
            raise
        from posvenda.diagnose import broker_refusal
        from streams.settings import Settings

        s = Settings.from_env()
        refusal = broker_refusal(s) if s.security_protocol.upper() != "PLAINTEXT" else None
        said = f" The broker said: {refusal}." if refusal else ""
        print(f"posvenda {args.command}: cannot use the Kafka cluster at {s.bootstrap_servers} "
              f"({s.security_protocol}): {type(exc).__name__}: {exc}.{said} Is the broker up (make broker)? "
              "Are the KAFKA_* security settings right (see the log lines above)?", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
