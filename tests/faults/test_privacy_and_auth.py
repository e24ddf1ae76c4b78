"""HTTP projections behind a bearer token; no personal data in logs or metric labels."""
from __future__ import annotations

import urllib.error

import pytest

from posvenda.publish import Publisher
from posvenda.simulate import generate
from tests.conftest import wait_until
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
