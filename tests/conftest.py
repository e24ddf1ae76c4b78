"""Fixtures shared by every test layer: the real broker, per-test namespaces, and worker processes."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Code imported into the test process (streams.app builds its Faust app from the environment at
# import) must never use the demo's namespace: its RocksDB directory (.state/worker), its app id
# (consumer group, changelogs) or its unprefixed topics. A streams test writing a 2025-03-10 session
# into .state/worker once showed up in the next `make demo`'s funnel. Forced, not defaulted: a
# developer's exported demo settings must not leak in either. Subprocesses get their own (settings_env).
IN_PROCESS_PREFIX = "inprocess-tests."
os.environ["POSVENDA_DATA_DIR"] = str(Path(tempfile.gettempdir()) / f"posvenda-inprocess-tests-{os.getuid()}")
os.environ["POSVENDA_APP_ID"] = f"{IN_PROCESS_PREFIX}posvenda"
os.environ["POSVENDA_TOPIC_PREFIX"] = IN_PROCESS_PREFIX

from streams.settings import Settings  # noqa: E402


def wait_until(check, timeout: float = 60, interval: float = 0.25, what: str = "condition"):
    """Polls `check()` until it returns a truthy value; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    """The real broker: KAFKA_BOOTSTRAP_SERVERS when set, else the local one from infra/kafka.sh."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        return external
    subprocess.run([str(REPO / "infra" / "kafka.sh"), "start"], check=True)
    return "127.0.0.1:9092"


@pytest.fixture
def settings_factory(bootstrap_servers, tmp_path):
    def make(**overrides) -> Settings:
        prefix = overrides.pop("topic_prefix", f"t{uuid.uuid4().hex[:10]}.")
        env = Settings.from_env()  # only for the connection's security (an external secured cluster)
        base = Settings(bootstrap_servers=bootstrap_servers, topic_prefix=prefix, app_id=f"{prefix}posvenda",
                        partitions=2, data_dir=tmp_path / "worker", security_protocol=env.security_protocol,
                        sasl_mechanism=env.sasl_mechanism, sasl_username=env.sasl_username,
                        sasl_password=env.sasl_password, ssl_cafile=env.ssl_cafile)
        return replace(base, **overrides)

    return make


@pytest.fixture
def settings(settings_factory) -> Settings:
    """Settings of a fresh namespace (topic prefix and consumer group) with its topics created."""
    from topics.admin import create_topics

    s = settings_factory()
    create_topics(s)
    return s


def settings_env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSVENDA_")}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers, "POSVENDA_TOPIC_PREFIX": s.topic_prefix,
        "POSVENDA_APP_ID": s.app_id, "POSVENDA_PARTITIONS": str(s.partitions),
        "POSVENDA_DATA_DIR": str(s.data_dir), "POSVENDA_WEB_PORT": str(s.web_port),
        "POSVENDA_PROCESSING_GUARANTEE": s.processing_guarantee, "PYTHONPATH": str(REPO),
    })
    if s.api_token:
        env["POSVENDA_API_TOKEN"] = s.api_token
    security = {"KAFKA_SECURITY_PROTOCOL": s.security_protocol, "KAFKA_SASL_MECHANISM": s.sasl_mechanism,
                "KAFKA_SASL_USERNAME": s.sasl_username, "KAFKA_SASL_PASSWORD": s.sasl_password,
                "KAFKA_SSL_CAFILE": s.ssl_cafile}
    for name, value in security.items():  # the Settings object wins over the outer environment
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    return env


@dataclass
class Worker:
    process: subprocess.Popen
    url: str
    log_path: Path

    def get(self, path: str, token: str | None = None):
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def worker_factory(tmp_path):
    started: list[Worker] = []

    def start(s: Settings, name: str = "worker", ready_timeout: float = 90) -> Worker:
        port = free_port()
        s = replace(s, web_port=port)
        log_path = tmp_path / f"{name}-{len(started)}.log"
        process = subprocess.Popen([sys.executable, "-m", "posvenda.cli", "worker"], env=settings_env(s),
                                   cwd=REPO, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
        worker = Worker(process, f"http://127.0.0.1:{port}", log_path)
        started.append(worker)

        def ready():
            if process.poll() is not None:
                raise AssertionError(f"worker exited with {process.returncode}:\n{worker.log()[-3000:]}")
            return "Worker ready" in worker.log() and worker.get("/health")

        wait_until(ready, ready_timeout, what=f"{name} to be ready")
        return worker

    yield start
    for worker in started:
        worker.stop()


def pytest_collection_modifyitems(items):
    for item in items:
        if any(part in ("e2e", "faults", "integration") for part in Path(str(item.fspath)).parts):
            item.add_marker(pytest.mark.broker)


# --- the demo's namespace stays untouched -------------------------------------------------------

DEMO_APP_ID = Settings.app_id  # the default app id: prefix of the demo worker's changelogs


def demo_namespace_offsets(s: Settings) -> dict[str, int]:
    """End offset (summed over partitions) of every topic of the demo's namespace on the broker: the
    catalogue's topics without a prefix and the default app id's internal topics."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    from topics.catalogue import all_topics

    catalogue_names = {t.name for t in all_topics()}
    consumer = KafkaConsumer(client_id="posvenda-tests-namespace-check", **s.kafka_python_config())
    try:
        names = sorted(n for n in consumer.topics() if n in catalogue_names or n.startswith(f"{DEMO_APP_ID}-"))
        out = {}
        for name in names:
            tps = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            out[name] = sum(consumer.end_offsets(tps).values()) if tps else 0
        return out
    finally:
        consumer.close()


def written_between(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Topics created after `before` was taken, or holding more messages than then."""
    return [f"{name} ({'created' if name not in before else f'{before[name]} -> {n} messages'})"
            for name, n in sorted(after.items()) if n > before.get(name, -1) or name not in before]


@pytest.fixture(scope="session", autouse=True)
def demo_namespace_untouched(request):
    """Fails the session when a broker test wrote to the demo's topics (every test has its own
    prefix and app id). A demo running on the same broker during the suite would trip it too."""
    if not any(item.get_closest_marker("broker") for item in request.session.items):
        yield
        return
    servers = request.getfixturevalue("bootstrap_servers")
    env = Settings.from_env()
    s = replace(Settings(), bootstrap_servers=servers, security_protocol=env.security_protocol,
                sasl_mechanism=env.sasl_mechanism, sasl_username=env.sasl_username, sasl_password=env.sasl_password,
                ssl_cafile=env.ssl_cafile)
    before = demo_namespace_offsets(s)
    yield
    written = written_between(before, demo_namespace_offsets(s))
    assert not written, ("the suite wrote to the demo's namespace (unprefixed catalogue topics or the default "
                         f"app id's topics): {', '.join(written)}")
