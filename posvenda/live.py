"""Renders a worker's live views for the terminal: the funnel table, recovery figures, backlog."""
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


def brl(amount: float) -> str:
    """R$ 1.234,56: the Brazilian way of writing money."""
    return "R$ " + f"{amount:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


def render_recovery(body: dict) -> str:
    """One line per payment method of GET /recovery."""
    lines = []
    for method, m in body["methods"].items():
        steps = ", ".join(f"{step} {n}" for step, n in sorted(body["actions"].get(method, {}).items())) or "none"
        rate = "-" if m["recovery_rate"] is None else f"{m['recovery_rate']:.0%}"
        lines.append(f"  {method:7} {m['charges']:>5} charges, {m['pending']:>4} pending, {m['targeted']:>4} targeted "
                     f"(actions: {steps}); {m['recovered']} recovered = {brl(m['recovered_revenue_brl'])}, "
                     f"rate {rate}")
    return "\n".join(lines)


def backlog(metrics_text: str) -> int:
    """Messages the worker still has to read on the source topics (sum of posvenda_consumer_lag_messages)."""
    from prometheus_client.parser import text_string_to_metric_families

    return int(sum(sample.value for family in text_string_to_metric_families(metrics_text)
                   if family.name == "posvenda_consumer_lag_messages" for sample in family.samples))


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
