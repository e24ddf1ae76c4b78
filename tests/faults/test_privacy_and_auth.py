"""One auth surface over every HTTP route; no personal data in logs or metric labels."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from posvenda.publish import Publisher
from posvenda.simulate import generate
from tests.conftest import REPO, settings_env, wait_until
from tests.faults.conftest import START_MS

TOKEN = "s3cret-token-for-tests"


def test_views_require_the_bearer_token_and_no_personal_data_leaks(settings_factory, worker_factory):
    from topics.admin import create_topics

    settings = settings_factory(api_token=TOKEN)
    create_topics(settings)
    sample = list(generate(9, 400, START_MS))
    registered = [e for e in sample if e.type == "customer_registered"]
    assert registered, "the sample must hold personal data to look for"
    with Publisher(settings) as publisher:
        for event in sample:
            publisher.publish(event)
    worker = worker_factory(settings)

    for path in ("/funnel", "/orders", "/customers", "/recovery", "/alerts"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            worker.get(path)
        assert refused.value.code == 401, path
        with pytest.raises(urllib.error.HTTPError) as wrong:
            worker.get(path, token="wrong")
        assert wrong.value.code == 401, path
    wait_until(lambda: worker.get("/customers?limit=1", token=TOKEN)["total"] >= len({e.customer_id for e in registered}),
               120, what="the customers to be folded")
    assert worker.get("/funnel", token=TOKEN)["days"]

    personal = set()
    for event in registered:
        p = event.payload
        personal.update(v for v in (p["name"], p["email"], p.get("cpf"), p.get("phone")) if v)
    logs = worker.log()
    metrics = worker.get_text("/metrics")
    leaked_logs = sorted(v for v in personal if v in logs)
    leaked_metrics = sorted(v for v in personal if v in metrics)
    assert leaked_logs == [] and leaked_metrics == []
    assert TOKEN not in logs


def registered_routes(worker) -> list[dict]:
    """The routes the running worker's web app registered, from its start-up log line."""
    found = re.search(r"HTTP routes: (\[.*\])", worker.log())
    assert found, "the worker did not log its routes"
    return json.loads(found.group(1))


def status(worker, method: str, path: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(worker.url + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_every_registered_route_needs_the_token_and_faust_table_routes_are_off(settings_factory, worker_factory):
    """Given a worker with a token, when each route its web app registered is asked without the token,
    then only /metrics and /health answer; Faust's /table/ and /router/ serve nothing even with it."""
    from topics.admin import create_topics

    settings = settings_factory(api_token=TOKEN)
    create_topics(settings)
    worker = worker_factory(settings)
    routes = registered_routes(worker)
    paths = {r["path"] for r in routes}
    assert {"/funnel", "/customers/{customer_id}", "/orders/{order_id}", "/metrics", "/health"} <= paths, paths

    answered = {}
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "c-00001", route["path"])
        answered[(route["method"], route["path"])] = status(worker, route["method"], path)
    open_routes = {key: code for key, code in answered.items() if code != 401}
    assert open_routes == {(method, path): 200 for method in ("GET", "HEAD") for path in ("/health", "/metrics")
                           if (method, path) in answered}, open_routes
    assert len(answered) > 20, answered  # the project's views, Faust's own routes and HEAD variants

    for path in ("/table/", "/table/customer-360/", "/table/customer-360/c-00001/", "/router/", "/", "/graph/"):
        assert status(worker, "GET", path) == 401, path
        assert status(worker, "GET", path, token=TOKEN) == 404, f"{path} is served"
    assert not any(p.startswith(("/table", "/router")) for p in paths), paths


def test_the_worker_refuses_an_open_non_loopback_address(settings_factory, tmp_path):
    """Without a token, binding beyond loopback needs POSVENDA_ALLOW_OPEN_HTTP=1."""
    settings = settings_factory(data_dir=tmp_path / "open")
    env = settings_env(settings) | {"POSVENDA_WEB_HOST": "0.0.0.0"}
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "worker"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "refusing to serve the HTTP views on 0.0.0.0 without a token" in done.stderr, done.stderr[-2000:]


def series_labels(metrics_text: str, name: str, label: str) -> set[str]:
    """Distinct values of `label` over the samples of metric family `name` in a /metrics page."""
    pattern = re.compile(rf'^{name}(?:_total|_count)?\{{[^}}]*\b{label}="([^"]*)"', re.M)
    return set(pattern.findall(metrics_text))


def test_a_flood_of_free_text_label_values_stays_on_the_allowlist(settings, worker_factory):
    """Given sessions, orders and shipments whose channel, payment method and carrier are all distinct
    made-up values, when a worker folds them, then each metric label only takes allowlisted values,
    "other" or "unknown": the series count does not grow with the flood."""
    from dataclasses import replace

    from alerts.metric_labels import allowlists

    sample = list(generate(9, 300, START_MS))
    flooded = []
    for i, event in enumerate(sample):
        p = dict(event.payload)
        if event.type == "session_started":
            p["channel"] = f"canal-{i}"
        elif event.type == "order_placed":
            p["payment_method"], p["carrier"] = f"metodo-{i}", f"transp-{i}"
        elif event.type == "order_shipped":
            p["carrier"] = f"transp-{i}"
        flooded.append(replace(event, payload=p))
    sessions = sum(e.type == "session_started" for e in flooded)
    shipped = sum(e.type == "order_shipped" for e in flooded)
    assert sessions > 200 and shipped > 3, "the flood must be large enough to matter"
    with Publisher(settings) as publisher:
        for event in flooded:
            publisher.publish(event)
    worker = worker_factory(settings)

    def flood_folded():
        text = worker.get_text("/metrics")
        delivered = re.findall(r'^posvenda_deliveries_total\{[^}]*\} ([0-9.e+]+)', text, re.M)
        handled = "other" in series_labels(text, "posvenda_order_handling_seconds", "payment_method")
        return text if handled and sum(float(v) for v in delivered) > 0 else None

    text = wait_until(flood_folded, 120, what="the shipped and delivered orders to be folded")
    allowed = allowlists()
    checks = {("posvenda_funnel_sessions", "channel"): allowed["channel"],
              ("posvenda_funnel_sessions", "device"): allowed["device"],
              ("posvenda_order_handling_seconds", "payment_method"): allowed["payment_method"],
              ("posvenda_placed_orders", "payment_method"): allowed["payment_method"],
              ("posvenda_deliveries", "carrier"): allowed["carrier"]}
    unbounded = {metric: sorted(series_labels(text, *metric) - allowlist - {"other", "unknown"})[:5]
                 for metric, allowlist in checks.items()}
    assert unbounded == {metric: [] for metric in checks}
    assert "other" in series_labels(text, "posvenda_funnel_sessions", "channel")
