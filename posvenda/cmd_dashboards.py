"""`posvenda dashboards build|push`: generate the Grafana dashboards, or publish them to a Grafana.

build writes infra/grafana/dashboards/*.json from alerts/dashboards.py (the JSON is committed and
never edited by hand). push sends the same models to a Grafana's HTTP API through grafana-client
(the maintained fork; grafana-api is unmaintained since 2021): the folder is created when missing,
then each dashboard is saved by its fixed uid with overwrite, so pushing twice updates in place.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

FOLDER_UID = "posvenda"


def add_parser(sub) -> None:
    p = sub.add_parser("dashboards", help="build the Grafana dashboards (JSON) or push them to a Grafana")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    b = actions.add_parser("build", help="write infra/grafana/dashboards/*.json from alerts/dashboards.py")
    b.add_argument("--out", default=None, help="output directory (default infra/grafana/dashboards)")
    b.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the files differ from what the builder generates")
    b.set_defaults(func=cmd_build)

    s = actions.add_parser("push", help="publish the dashboards to Grafana through its HTTP API")
    s.add_argument("--url", default=os.environ.get("GRAFANA_URL"), help="Grafana base URL (env GRAFANA_URL)")
    s.add_argument("--token", default=os.environ.get("GRAFANA_TOKEN"),
                   help="service account token (env GRAFANA_TOKEN)")
    s.add_argument("--folder", default="posvenda", help="folder title (uid 'posvenda'; created when missing)")
    s.add_argument("--datasource-uid", default=None,
                   help="uid of the Prometheus datasource in that Grafana (default: the provisioned one)")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    s.set_defaults(func=cmd_push)


def cmd_build(args) -> int:
    from alerts import dashboards

    out = Path(args.out) if args.out else dashboards.OUTPUT_DIR
    if args.check:
        expected = dashboards.build_all()
        present = {p.name: p.read_text(encoding="utf-8") for p in out.glob("posvenda-*.json")}
        stale = sorted(name for name in set(expected) | set(present) if expected.get(name) != present.get(name))
        for name in stale:
            print(f"{out / name}: differs from alerts/dashboards.py (run: posvenda dashboards build)",
                  file=sys.stderr)
        return 1 if stale else 0
    for path in dashboards.write(out):
        print(path)
    return 0


def _with_datasource(node, old_uid: str, new_uid: str):
    if isinstance(node, dict):
        if node.get("type") == "prometheus" and node.get("uid") == old_uid and set(node) == {"type", "uid"}:
            return {"type": "prometheus", "uid": new_uid}
        return {k: _with_datasource(v, old_uid, new_uid) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_datasource(v, old_uid, new_uid) for v in node]
    return node


def push(api, folder_title: str, datasource_uid: str | None = None) -> list[dict]:
    """Ensures the folder, saves every dashboard with overwrite; returns Grafana's answers."""
    from grafana_client.client import GrafanaClientError

    from alerts import dashboards

    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.folder.create_folder(folder_title, uid=FOLDER_UID)
    answers = []
    for dashboard in dashboards.dashboards():
        model = dashboards.render(dashboard)
        if datasource_uid:
            model = _with_datasource(model, dashboards.DATASOURCE_UID, datasource_uid)
        model["id"] = None  # Grafana matches on uid; an id from another instance would be wrong
        answers.append(api.dashboard.update_dashboard({
            "dashboard": model, "folderUid": FOLDER_UID, "overwrite": True,
            "message": "posvenda dashboards push",
        }))
    return answers


def cmd_push(args) -> int:
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException

    if not args.url or not args.token:
        print("posvenda dashboards push: give --url and --token (or GRAFANA_URL and GRAFANA_TOKEN)", file=sys.stderr)
        return 2
    api = GrafanaApi.from_url(args.url, credential=args.token, timeout=args.timeout)
    try:
        answers = push(api, args.folder, args.datasource_uid)
    except GrafanaException as exc:
        print(f"posvenda dashboards push: {args.url}: HTTP {exc.status_code}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # connection refused, DNS, TLS
        print(f"posvenda dashboards push: {args.url}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # niquests' connection errors are not all OSErrors
        if type(exc).__module__.startswith(("niquests", "urllib3")):
            print(f"posvenda dashboards push: {args.url}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        raise
    for answer in answers:
        print(f"pushed {answer.get('uid')} version {answer.get('version')} -> {answer.get('url')}")
    return 0
