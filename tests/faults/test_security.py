"""Security of the broker connection, end to end on a private broker (infra/kafka.sh with
POSVENDA_KAFKA_SCRAM and POSVENDA_KAFKA_TLS): SASL/SCRAM-SHA-512 (its only credential bootstrapped
when the storage is formatted), TLS with a local CA, and SCRAM over TLS.

Each test talks to one secured listener only; the configuration travels the way it does in
production, through the KAFKA_* environment variables (Settings.from_env) of the CLI and the worker.
"""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest

from tests.conftest import REPO, free_port, settings_env, wait_until
from tests.faults.conftest import START_MS, assert_converges
from tests.faults.conftest_broker import PrivateBroker

USER = "posvenda-svc"


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory):
    if shutil.which("java") is None or shutil.which("keytool") is None:
        pytest.skip("a private broker needs a JDK (java, keytool) for infra/kafka.sh")
    broker = PrivateBroker(tmp_path_factory.mktemp("secured-broker"), scram=f"{USER}:{secrets.token_urlsafe(16)}",
                           tls=True)
    try:
        broker.start()
        yield broker
    finally:
        try:
            broker.stop()
        except Exception:
            broker.kill()


def connection(broker, protocol: str) -> dict:
    """Settings fields for one listener of `broker`."""
    password = broker.scram.split(":", 1)[1]
    scram = dict(sasl_mechanism="SCRAM-SHA-512", sasl_username=USER, sasl_password=password)
    none = dict(sasl_mechanism=None, sasl_username=None, sasl_password=None, ssl_cafile=None)
    return {
        "SASL_PLAINTEXT": {**none, **scram, "bootstrap_servers": broker.sasl_bootstrap},
        "SSL": {**none, "bootstrap_servers": broker.ssl_bootstrap, "ssl_cafile": broker.ca_file},
        "SASL_SSL": {**none, **scram, "bootstrap_servers": broker.sasl_ssl_bootstrap, "ssl_cafile": broker.ca_file},
    }[protocol] | {"security_protocol": protocol}


@pytest.fixture
def scram_settings(secured_broker, settings_factory):
    return settings_factory(**connection(secured_broker, "SASL_PLAINTEXT"))


def cli(settings, *args, timeout=120) -> subprocess.CompletedProcess:
    """`posvenda ARGS` with the settings passed as environment variables, as an operator would."""
    return subprocess.run([sys.executable, "-m", "posvenda.cli", *args], env=settings_env(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def ingest_and_converge(settings, worker_factory, tmp_path):
    """Topics, ingest (kafka-python) and a worker (aiokafka), all through `settings`' listener only."""
    from posvenda.simulate import generate, write_jsonl

    path = tmp_path / "events.jsonl"
    write_jsonl(generate(7, 120, START_MS), path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) > 300

    created = cli(settings, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert f"created, 0 already there ({settings.bootstrap_servers})" in created.stdout
    ingested = cli(settings, "ingest", "-q", str(path))
    assert ingested.returncode == 0, ingested.stderr
    assert f"ingest: {len(lines)} published, 0 rejected" in ingested.stdout

    worker = worker_factory(settings)
    assert_converges(worker, lines, timeout=120)
    return worker


def test_scram(scram_settings, worker_factory, tmp_path):
    worker = ingest_and_converge(scram_settings, worker_factory, tmp_path)
    log = worker.log()
    assert f"Authenticated as {USER} via SCRAM-SHA-512" in log  # aiokafka, on the SASL listener
    assert scram_settings.sasl_password not in log, "the worker logged the password"


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_tls(protocol, secured_broker, settings_factory, worker_factory, tmp_path):
    settings = settings_factory(**connection(secured_broker, protocol))
    worker = ingest_and_converge(settings, worker_factory, tmp_path)
    if protocol == "SASL_SSL":
        assert f"Authenticated as {USER} via SCRAM-SHA-512" in worker.log()


def test_tls_without_the_ca_is_refused(secured_broker, settings_factory, tmp_path):
    """Without KAFKA_SSL_CAFILE the system's CAs are used, and they do not know the local CA."""
    untrusting = settings_factory(**connection(secured_broker, "SSL") | {"ssl_cafile": None,
                                                                          "data_dir": tmp_path / "untrusting"})
    done = subprocess.run([sys.executable, "-m", "posvenda.cli", "worker"], env=settings_env(untrusting), cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, "the worker trusted an unknown certificate authority"
    assert "CERTIFICATE_VERIFY_FAILED" in done.stdout + done.stderr


def test_scram_wrong_password_is_refused(scram_settings, tmp_path):
    wrong = replace(scram_settings, sasl_password="not-the-password", data_dir=tmp_path / "refused")
    worker_log = tmp_path / "worker.log"
    with worker_log.open("w") as out:  # both at once: the CLI needs its 30 s bootstrap timeout to give up
        worker = subprocess.Popen([sys.executable, "-m", "posvenda.cli", "worker"], env=settings_env(wrong), cwd=REPO,
                                  stdout=out, stderr=subprocess.STDOUT)
        try:
            topics = cli(wrong, "topics", "create", timeout=90)
            worker.wait(60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    reason = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    assert worker.returncode != 0, "the worker ran with a wrong password"
    assert reason in worker_log.read_text(errors="replace")
    assert topics.returncode != 0, "kafka-python accepted a wrong password"
    # kafka-python may lose the broker's answer in a race (posvenda/diagnose.py); the CLI quotes it anyway
    assert f"The broker said: [Error 58] SaslAuthenticationFailed: {reason}" in topics.stderr, topics.stderr[-2000:]
    assert "not-the-password" not in worker_log.read_text(errors="replace") + topics.stderr


def test_no_secret_in_any_repr_or_log_of_a_secured_run_at_debug(scram_settings, tmp_path, caplog):
    """Given SCRAM and an API token, when the admin client runs as a library with DEBUG logging, the CLI
    runs with -v and a worker with --loglevel debug, then neither secret appears in any of their output."""
    import logging

    from topics.admin import create_topics

    token = secrets.token_urlsafe(16)
    settings = replace(scram_settings, api_token=token)
    password = settings.sasl_password
    assert password not in repr(settings) and token not in repr(settings)

    with caplog.at_level(logging.DEBUG):
        logging.getLogger("kafka").setLevel(logging.DEBUG)
        create_topics(settings)
    library_log = "\n".join(r.getMessage() for r in caplog.records)
    assert "Starting KafkaAdminClient with configuration" in library_log  # the line that used to carry it

    path = tmp_path / "events.jsonl"
    from posvenda.simulate import generate, write_jsonl

    write_jsonl(generate(3, 40, START_MS), path)
    runs = [cli(settings, "-v", "topics", "create"), cli(settings, "-v", "ingest", "-q", str(path))]
    assert all(run.returncode == 0 for run in runs), [run.stderr[-1000:] for run in runs]

    from topics import catalogue

    debug_log = tmp_path / "worker-debug.log"
    with debug_log.open("w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "posvenda.cli", "worker", "--loglevel", "debug"],
                                  env=settings_env(replace(settings, web_port=free_port())), cwd=REPO, stdout=out,
                                  stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "Worker ready" in debug_log.read_text(errors="replace"), 90, what="the worker")
        finally:
            worker.terminate()
            worker.wait(30)
    debug_out = debug_log.read_text(errors="replace")
    assert "DEBUG" in debug_out and catalogue.ORDERS.name in debug_out  # it really logged at debug
    outputs = {"library": library_log, "worker --loglevel debug": debug_out,
               **{f"cli {i}": run.stdout + run.stderr for i, run in enumerate(runs)}}
    leaked = {name: secret_name for name, text in outputs.items()
              for secret_name, secret in (("password", password), ("token", token)) if secret in text}
    assert leaked == {}
