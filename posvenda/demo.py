"""`posvenda demo`: the whole platform on this machine, watched live.

Starts the local broker and Prometheus, creates the topics, starts a worker, publishes three days of
simulated history as fast as it can, then keeps simulated live traffic flowing (event time follows
the wall clock, sped up by --speed) while the terminal shows the funnel, recovery and alerts.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace

from streams.settings import REPO, Settings

log = logging.getLogger("posvenda.demo")
HOUR_MS = 3600 * 1000
STATE = REPO / ".state" / "demo"


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, cwd=REPO)


def _get(url: str, token: str | None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def start_worker(settings: Settings) -> subprocess.Popen:
    STATE.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, POSVENDA_WEB_PORT=str(settings.web_port), KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers)
    out = (STATE / "worker.log").open("a")
    process = subprocess.Popen([sys.executable, "-m", "posvenda.cli", "worker"], env=env, cwd=REPO,
                               stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"worker exited with {process.returncode}; see {STATE / 'worker.log'}")
        try:
            _get(f"http://{settings.web_host}:{settings.web_port}/health", settings.api_token)
            return process
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"worker not ready after 120 s; see {STATE / 'worker.log'}")


def start_prometheus(settings: Settings) -> bool:
    script = REPO / "infra" / "prometheus.sh"
    if not script.exists():
        return False
    subprocess.run([str(script), "targets", f"127.0.0.1:{settings.web_port}"], cwd=REPO, check=True)
    result = subprocess.run([str(script), "start"], cwd=REPO)
    return result.returncode == 0


def publish_history(settings: Settings, sessions: int, seed: int, now_ms: int) -> int:
    from tqdm import tqdm

    from posvenda.publish import Publisher
    from posvenda.simulate import generate

    start = now_ms - 72 * HOUR_MS
    stream = generate(seed, sessions, start, sessions_per_day=sessions / 3, until_ms=now_ms)
    with Publisher(settings) as publisher:
        for event in tqdm(stream, unit="ev", desc="history (3 days)"):
            publisher.publish(event)
    return publisher.sent


def publish_live(settings: Settings, seed: int, speed: float, stop: threading.Event) -> None:
    """Events whose (sped-up) event time has come, published as the clock reaches them."""
    from posvenda.publish import Publisher
    from posvenda.simulate import generate

    origin_ms = int(time.time() * 1000)
    stream = generate(seed + 1, 10**7, origin_ms, sessions_per_day=20_000)
    with Publisher(settings) as publisher:
        for event in stream:
            while not stop.is_set():
                due = origin_ms + (event.occurred_at - origin_ms) / speed
                wait = due / 1000 - time.time()
                if wait <= 0:
                    break
                stop.wait(min(wait, 0.5))
            if stop.is_set():
                return
            publisher.publish(replace(event, occurred_at=int(time.time() * 1000)))


def dashboard(settings: Settings) -> str:
    from posvenda.live import backlog, render, render_recovery

    base = f"http://{settings.web_host}:{settings.web_port}"
    parts = [(f"posvenda demo: worker {base} (funnel {base}/funnel, metrics {base}/metrics), "
              "Prometheus http://127.0.0.1:9090, Ctrl-C to stop")]
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        behind = backlog(response.read().decode())
    parts.append(f"worker catching up: {behind:,} messages still to read (counts are still moving)\n" if behind > 100
                 else "worker caught up with the log\n")
    body = _get(f"{base}/funnel", settings.api_token)
    parts.append("purchase funnel (sessions per step, conversion from the previous step)\n" + render(body))
    try:
        parts.append("\nboleto/Pix recovery\n" + render_recovery(_get(base + "/recovery", settings.api_token)))
        active = _get(base + "/alerts", settings.api_token)
        parts.append(f"\nactive alerts: {active['count']}")
        parts += [f"  {a['rule']} {a['subject']}: {a['summary']}" for a in active["alerts"][:10]]
    except OSError:
        pass
    return "\n".join(parts)


def run(sessions: int, seed: int, speed: float, duration: float, refresh: float) -> int:
    settings = Settings.from_env()
    external = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    print("1/5 broker" + (f": using {settings.bootstrap_servers}" if external else ": starting local Kafka"))
    _run(str(REPO / "infra" / "kafka.sh"), "start")
    print("2/5 topics")
    from topics.admin import create_topics

    created, existing = create_topics(settings)
    print(f"    {len(created)} created, {len(existing)} already there")
    from posvenda.cli import topics_ready

    if not topics_ready("demo", settings):
        return 2
    print("3/5 worker")
    worker = start_worker(settings)
    prometheus = start_prometheus(settings)
    print(f"4/5 Prometheus {'scraping the worker' if prometheus else 'not started (infra/prometheus.sh missing or failed)'}")
    stop = threading.Event()
    try:
        now_ms = int(time.time() * 1000)
        print("5/5 traffic: three days of history, then live")
        sent = publish_history(settings, sessions, seed, now_ms)
        print(f"    {sent} history events published")
        live = threading.Thread(target=publish_live, args=(settings, seed, speed, stop), daemon=True)
        live.start()
        started = time.monotonic()
        while not duration or time.monotonic() - started < duration:
            try:
                screen = dashboard(settings)
            except OSError as exc:
                screen = f"worker not answering yet: {exc}"
            print("\x1b[2J\x1b[H" + screen if sys.stdout.isatty() else screen, flush=True)
            time.sleep(refresh)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        worker.terminate()
        worker.wait(30)
        print("demo stopped: worker ended; broker and Prometheus keep running (make stop ends them)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the whole platform locally with simulated traffic and live views")
    p.add_argument("--sessions", type=int, default=6000, help="sessions of simulated history (default 6000)")
    p.add_argument("--seed", type=int, default=42, help="simulation seed (default 42)")
    p.add_argument("--speed", type=float, default=60.0, help="live traffic: event-time seconds per real second")
    p.add_argument("--duration", type=float, default=0, help="stop after N seconds (default: until Ctrl-C)")
    p.add_argument("--refresh", type=float, default=3.0, help="seconds between screen refreshes")
    p.set_defaults(func=lambda a: run(a.sessions, a.seed, a.speed, a.duration, a.refresh))
