"""`make bench`: every runner on the same source events, one table of ratios measured in one run.

Runners (each in its own process, topic prefix and consumer group; topics deleted afterwards):
  ceiling                aiokafka consume + fastavro decode of every source event
  quix                   Quix Streams peer doing the order path (bench extra)
  faust                  minimal Faust app doing the order path, one event at a time
  faust-batched          the same app batched (take_events), the engine's floor
  posvenda               the posvenda worker with every read model, on the Olist history
  posvenda-simulated     the same worker on simulated traffic of every family
Runs are interleaved (run 1 of every runner, then run 2, ...) and each figure is the median.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import sys
from dataclasses import asdict
from pathlib import Path

from benchmarks import accounting, dataset, runners
from benchmarks.drain import RunnerFailed
from streams.settings import REPO, Settings

RESULTS = REPO / "benchmarks" / "results"
ROW_NAMES = {
    "ceiling": accounting.CEILING,
    "quix": "Quix Streams order path",
    "faust": "Faust order path, per event",
    "faust-batched": accounting.FAUST_BATCHED,
    "posvenda": "posvenda worker, every read model (Olist)",
    "posvenda-simulated": "posvenda worker, every read model (simulated)",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_one(name: str, base: Settings, olist: dataset.Dataset, simulated: dataset.Dataset,
            profile_to: Path | None) -> accounting.Run:
    data = simulated if name == "posvenda-simulated" else olist
    st = runners.stage(name, base, data)
    if name == "ceiling":
        run = runners.ceiling(st)
    elif name == "quix":
        run = runners.quix(st)
    elif name in ("faust", "faust-batched"):
        run = runners.faust_peer(st, "batched" if name == "faust-batched" else "per-event", free_port())
    else:
        run = runners.posvenda(st, free_port(), profile_to)
    run.runner = ROW_NAMES[name]
    return run


def parse_args(argv=None) -> argparse.Namespace:
    from posvenda.cmd_olist import default_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--olist", type=Path, default=None,
                        help="Olist dataset folder (default: $POSVENDA_OLIST_DIR, else examples/olist)")
    parser.add_argument("--orders", type=int, default=None, help="only the first N Olist orders")
    parser.add_argument("--sessions", type=int, default=2000, help="simulated sessions (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per runner, interleaved; the median is kept")
    parser.add_argument("--only", default=",".join(ROW_NAMES), help="comma-separated runners (default: all)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of the posvenda worker")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where latest.md/.json go")
    parser.add_argument("--soak", type=float, metavar="MINUTES", default=None,
                        help="instead: a soak of the worker on simulated traffic (see benchmarks/soak.py)")
    parser.add_argument("--soak-rate", type=float, default=500.0, help="events/s offered during the soak")
    parser.add_argument("--latency", type=float, metavar="RATE", nargs="?", const=1000.0, default=None,
                        help="instead: p50/p99 event-to-projection latency at RATE events/s (default 1000) for "
                             "--latency-seconds (see benchmarks/latency.py)")
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--restore", type=int, metavar="KEYS", nargs="?", const=1_000_000, default=None,
                        help="instead: restore time of KEYS keys (default 1,000,000) from a changelog, local state "
                             "deleted (see benchmarks/restore.py)")
    args = parser.parse_args(argv)
    args.olist = args.olist or default_dir()
    unknown = set(args.only.split(",")) - set(ROW_NAMES)
    if unknown:
        parser.error(f"--only: unknown runner(s) {', '.join(sorted(unknown))} (known: {', '.join(ROW_NAMES)})")
    return args


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a `timeout`, a CI cancel) unwinds like Ctrl-C, so every runner deletes its topics."""
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def main(argv=None) -> int:
    args = parse_args(argv)
    _interrupt_on_sigterm()
    base = Settings.from_env()
    if args.soak is not None:
        from benchmarks import soak

        return soak.main(base, args.soak, args.soak_rate, args.results)
    if args.restore is not None or args.latency is not None:
        return side_measurement(args, base)
    names = [n for n in ROW_NAMES if n in args.only.split(",")]
    olist = dataset.olist(args.olist, args.orders)
    simulated = dataset.simulated(args.sessions) if "posvenda-simulated" in names else dataset.Dataset("simulated", ())
    args.results.mkdir(parents=True, exist_ok=True)
    runs, problems = [], []
    for i in range(args.runs):
        for name in names:
            profile_to = args.results / "profile-posvenda-olist.md" if (
                name == "posvenda" and i == 0 and not args.no_profile) else None
            print(f"run {i + 1}/{args.runs}: {name} ...", file=sys.stderr, flush=True)
            try:
                runs.append(run_one(name, base, olist, simulated, profile_to))
            except (RunnerFailed, OSError, ValueError) as exc:
                problems.append(f"{name} run {i + 1}: {type(exc).__name__}: {exc}")
                print(f"  failed: {exc}", file=sys.stderr, flush=True)
    rows = accounting.summarise(runs)
    report = header(args, olist, simulated, names) + accounting.markdown(rows)
    if problems:
        report += "\nProblems:\n" + "\n".join(f"- {p}" for p in problems) + "\n"
    print(report)
    (args.results / "latest.md").write_text(report)
    (args.results / "latest.json").write_text(json.dumps({
        "taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "olist": {"dir": str(args.olist), "events": olist.count(), "per_topic": olist.per_topic()},
        "simulated": {"sessions": args.sessions, "events": simulated.count(), "per_topic": simulated.per_topic()},
        "runs": [asdict(r) for r in runs], "rows": [asdict(r) for r in rows], "problems": problems,
    }, indent=2) + "\n")
    return 1 if problems else 0


def side_measurement(args, base: Settings) -> int:
    """--restore or --latency: one measurement of its own, printed and kept as results/<name>.json."""
    if args.restore is not None:
        from benchmarks import restore

        name, result = "restore", restore.main(base, args.restore)
    else:
        from benchmarks import latency

        name, result = "latency", latency.main(base, args.latency, args.latency_seconds)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


def header(args, olist: dataset.Dataset, simulated: dataset.Dataset, names: list[str]) -> str:
    per_topic = ", ".join(f"{n:,} {t}" for t, n in sorted(olist.per_topic().items()))
    lines = [f"# make bench ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs)", "",
             f"Olist: {args.olist} ({olist.count():,} events: {per_topic}). The ceiling and the posvenda worker "
             "read every source event; the Quix and Faust peers read the order events only (the order path)."]
    if "posvenda-simulated" in names:
        lines.append(f"Simulated: {args.sessions:,} sessions, {simulated.count():,} events of every family.")
    lines += ["Events/s: median of the runs, timed from the moment the runner's consumer group is Stable "
              "(partitions assigned) until every topic it consumes (sources and its own re-key topics) is "
              "committed to its end, so the last commit interval (Faust 2.8 s, Quix 5 s) is inside the time and "
              "small inputs understate the fast runners; the ceiling times itself from its first fetched message. "
              "CPU: the runner process over the same window. Messages written: end offsets of the run's own "
              "topics after the run, divided by the source events the runner read.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
