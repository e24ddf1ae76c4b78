"""`posvenda campaigns`: sends the boleto/Pix recovery messages (alerts/campaigns.py does the work).

Consumes recovery.actions with its own consumer group, renders each action per channel, delivers it
through a backend (outbox file by default, or the log) and appends message_sent to messages.events.
"""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("campaigns", help="send boleto/Pix recovery messages from recovery.actions")
    p.add_argument("--backend", choices=["outbox", "log"], default="outbox",
                   help="outbox: append JSON lines to --outbox (default); log: log ids only")
    p.add_argument("--outbox", default=None, help="outbox file (default: <data dir>/../outbox.jsonl)")
    p.add_argument("--group-id", default=None, help="consumer group (default: <app id>-campaigns)")
    p.add_argument("--until-idle", type=float, default=None, metavar="SECONDS",
                   help="exit after this many seconds without a new action (default: run until stopped)")
    p.add_argument("--templates", default=None, help="templates directory (default: alerts/templates)")
    p.set_defaults(func=cmd_campaigns)


def cmd_campaigns(args) -> int:
    from alerts import campaigns, recovery_rules
    from streams.settings import Settings

    settings = Settings.from_env()
    templates_dir = Path(args.templates) if args.templates else recovery_rules.TEMPLATES_DIR
    try:
        missing = recovery_rules.missing_templates(recovery_rules.default_rules(), templates_dir)
    except recovery_rules.RulesError as exc:
        print(f"posvenda campaigns: {exc}", file=sys.stderr)
        return 2
    if missing:
        print(f"posvenda campaigns: templates missing in {templates_dir}: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.backend == "log":
        backend = campaigns.LogBackend()
    else:
        backend = campaigns.OutboxBackend(Path(args.outbox) if args.outbox else settings.data_dir.parent / "outbox.jsonl")
    try:
        templates = campaigns.Templates(templates_dir, settings.business_timezone)
    except campaigns.TemplateError as exc:
        print(f"posvenda campaigns: {exc}", file=sys.stderr)
        return 2
    from posvenda.cli import topics_ready
    from topics import catalogue

    if not topics_ready("campaigns", settings, (catalogue.RECOVERY_ACTIONS, catalogue.MESSAGES)):
        return 2
    try:
        stats = campaigns.run(settings, backend, args.group_id or f"{settings.app_id}-campaigns",
                              until_idle_s=args.until_idle, templates=templates)
    except KeyboardInterrupt:
        return 130
    print(f"campaigns: {stats['actions']} actions, {stats['delivered']} messages delivered, "
          f"{stats['skipped']} already delivered, {stats['invalid']} invalid (skipped, each named in the log)")
    return 0
