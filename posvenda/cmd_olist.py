"""`posvenda olist replay|subset`: real Olist order history as posvenda events (see posvenda/olist.py).

`replay` publishes (or writes as ingest JSONL) the dataset's orders in event time; a second replay
of the same files changes no projection (deterministic event ids). `subset` copies a consistent
sample of the dataset, as the one bundled in examples/olist/ was made.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "examples" / "olist"


def default_dir() -> Path:
    """POSVENDA_OLIST_DIR (e.g. the full dataset, downloaded from Kaggle), else the bundled sample."""
    if os.environ.get("POSVENDA_OLIST_DIR"):
        return Path(os.environ["POSVENDA_OLIST_DIR"])
    return BUNDLED


def add_parser(sub) -> None:
    p = sub.add_parser("olist", help="replay the Olist public dataset (real orders, 2016-2018) as events")
    olist_sub = p.add_subparsers(dest="olist_action", required=True)
    r = olist_sub.add_parser("replay", help="publish the dataset's orders as events, in event time")
    r.add_argument("--dir", type=Path, default=None,
                   help=f"the dataset's folder (default: $POSVENDA_OLIST_DIR, "
                        f"else the bundled sample {BUNDLED.relative_to(REPO)})")
    r.add_argument("--orders", type=int, default=None, help="only the first N orders by order id (a uniform sample)")
    r.add_argument("--out", type=Path, default=None, help="also write the events to this JSONL file (ingest format)")
    r.add_argument("--no-produce", action="store_true", help="with --out: write the file only, publish nothing")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_replay)
    s = olist_sub.add_parser("subset", help="copy a consistent sample of the dataset (every file, by order id)")
    s.add_argument("--dir", type=Path, default=None, help="the full dataset's folder (default as for replay)")
    s.add_argument("--orders", type=int, required=True, help="how many orders")
    s.add_argument("--out", type=Path, required=True, help="folder to write the gzip CSV files into")
    s.set_defaults(func=cmd_subset)


def cmd_replay(args) -> int:
    from tqdm import tqdm

    from posvenda import olist
    from posvenda.simulate import write_jsonl

    directory = args.dir or default_dir()
    if args.no_produce and not args.out:
        print("posvenda olist replay: --no-produce needs --out", file=sys.stderr)
        return 2
    try:
        orders = olist.load(directory, args.orders)
    except olist.DatasetError as exc:
        print(f"posvenda olist replay: {exc}", file=sys.stderr)
        return 2
    events, rejected = olist.replay(orders)
    for line in rejected:
        print(f"posvenda olist replay: {directory}: {line}", file=sys.stderr)
    if args.out:
        write_jsonl(events, args.out)
    if args.no_produce:
        print(f"olist: {len(orders)} orders, {len(events)} events written to {args.out}, {len(rejected)} rejected")
        return 1 if rejected else 0
    from posvenda.cli import _settings, topics_ready
    from posvenda.publish import Publisher

    if not topics_ready("olist replay", _settings()):
        return 2
    with Publisher(_settings()) as publisher:
        for event in tqdm(events, unit="ev", desc=f"olist {directory.name}", disable=args.quiet, file=sys.stderr):
            publisher.publish(event)
    print(f"olist: {len(orders)} orders from {directory}, {publisher.sent} events published, {len(rejected)} rejected")
    return 1 if rejected else 0


def cmd_subset(args) -> int:
    from posvenda import olist

    try:
        n = olist.write_subset(args.dir or default_dir(), args.out, args.orders)
    except olist.DatasetError as exc:
        print(f"posvenda olist subset: {exc}", file=sys.stderr)
        return 2
    print(f"olist: {n} orders written to {args.out}")
    return 0
