"""Renders the live funnel from a worker's /funnel view as a terminal table."""
from __future__ import annotations

import json
import time
import urllib.request


def fetch(url: str, token: str | None = None) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def render(body: dict) -> str:
    steps = body["steps"]
    lines = [f"{'day':10} {'value':14} " + " ".join(f"{s[:12]:>12}" for s in steps)]
    for day, values in body["days"].items():
        for value, row in sorted(values.items()):
            counts = " ".join(f"{row['steps'][s]:>12}" for s in steps)
            lines.append(f"{day:10} {value[:14]:14} {counts}")
            rates = " ".join(f"{'' if r is None else f'{r:.0%}':>12}" for r in [None, *row["conversion"].values()])
            lines.append(f"{'':10} {'  conversion':14} {rates}")
    return "\n".join(lines)


def show_funnel(url: str | None, dimension: str, watch: float) -> int:
    from streams.settings import Settings

    settings = Settings.from_env()
    base = url or f"http://{settings.web_host}:{settings.web_port}"
    while True:
        body = fetch(f"{base}/funnel?dimension={dimension}", settings.api_token)
        if watch:
            print("\x1b[2J\x1b[H", end="")
        print(f"purchase funnel by {dimension} ({base})\n{render(body)}")
        if not watch:
            return 0
        time.sleep(watch)
