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
