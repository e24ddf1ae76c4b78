"""`posvenda rebuild <projection>`: replays the projection's source topics from the start and prints
(or writes) the projection, record for record what the live HTTP list view returns.

Keyed projections come out as JSON lines sorted by key ({"key": ..., "record": ...}); visitors-buyers
as one JSON object {"days": ...}. With --publish the records are also written to the projection's
compacted topic. Nothing of the live worker (consumer group, tables) is touched.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from projections.rebuild import SOURCES

    p = sub.add_parser("rebuild", help="rebuild a projection by replaying its source topics from the start")
    p.add_argument("projection", choices=sorted(SOURCES), help="which projection")
    p.add_argument("--out", default=None, help="write here instead of stdout")
    p.add_argument("--publish", action="store_true",
                   help="also write the records to the projection's compacted topic (keyed projections)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_rebuild)


def cmd_rebuild(args) -> int:
    from tqdm import tqdm

    from projections import rebuild
    from streams.settings import Settings

    settings = Settings.from_env()
    try:
        with tqdm(unit="msg", desc=f"rebuild {args.projection}", disable=args.quiet, file=sys.stderr) as bar:
            log = rebuild.read_log(settings, rebuild.SOURCES[args.projection], bar)
    except rebuild.MissingTopics as exc:
        print(f"posvenda rebuild: {exc}", file=sys.stderr)
        return 2
    result = rebuild.rebuild(args.projection, log, settings.business_timezone)
    if args.projection == "visitors-buyers":
        text = json.dumps({"days": result}, sort_keys=True) + "\n"
    else:
        text = "".join(json.dumps({"key": key, "record": record}, sort_keys=True) + "\n"
                       for key, record in result.items())
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    published = 0
    if args.publish and args.projection == "visitors-buyers":
        print("rebuild: projections.visitors-buyers holds per-partition partials; not republished", file=sys.stderr)
    elif args.publish:
        published = rebuild.republish(settings, args.projection, result)
    print(f"rebuild {args.projection}: {len(log)} events replayed, {len(result)} "
          f"{'days' if args.projection == 'visitors-buyers' else 'records'}"
          + (f", {published} published" if args.publish else ""), file=sys.stderr)
    return 0
