"""Fault-suite fixtures: a simulated event file, its ground truth, and projection comparison."""
from __future__ import annotations

import json

import pytest

from tests.conftest import wait_until
from tests.groundtruth import funnel, funnel_from_view

START_MS = 1_741_611_600_000  # 2025-03-10T13:00Z: in the past, so nothing is "in the future"
DIMENSIONS = ("all", "device", "channel", "product")


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """A few thousand sessions of simulated traffic (~20k events), as a file and as parsed lines."""
    from posvenda.simulate import generate, write_jsonl

    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    write_jsonl(generate(11, 2500, START_MS), path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return path, lines


def funnel_view(worker) -> dict:
    out = {}
    for dimension in DIMENSIONS:
        out.update(funnel_from_view(dimension, worker.get(f"/funnel?dimension={dimension}")))
    return out


def assert_converges(worker, lines, timeout=240):
    """Every projection of `worker` reaches the ground truth computed from `lines`."""
    expected = funnel(lines)
    last = {}

    def matches():
        last["view"] = funnel_view(worker)
        return last["view"] == expected

    try:
        wait_until(matches, timeout, interval=1, what="the funnel to equal the ground truth")
    except AssertionError:
        view = last.get("view", {})
        wrong = {k: (view.get(k), expected.get(k)) for k in set(view) | set(expected) if view.get(k) != expected.get(k)}
        raise AssertionError(f"{len(wrong)} funnel cells differ (view, expected), e.g. {list(wrong.items())[:5]}") from None
