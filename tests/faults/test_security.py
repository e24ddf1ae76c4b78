"""Security of the broker connection: SASL/SCRAM-SHA-512 end to end, on a private broker whose only
credential is bootstrapped when its storage is formatted (infra/kafka.sh, POSVENDA_KAFKA_SCRAM).

Every client here talks to the SASL_PLAINTEXT listener only; the configuration travels the way it does
in production, through the KAFKA_* environment variables (Settings.from_env) of the CLI and the worker.
"""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest

from tests.conftest import REPO, settings_env
from tests.faults.conftest import START_MS, assert_converges
from tests.faults.conftest_broker import PrivateBroker

USER = "posvenda-svc"


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory):
    if shutil.which("java") is None:
        pytest.skip("a private broker needs a JDK (java) for infra/kafka.sh")
    broker = PrivateBroker(tmp_path_factory.mktemp("scram-broker"), scram=f"{USER}:{secrets.token_urlsafe(16)}")
    try:
        broker.start()
        yield broker
    finally:
        try:
            broker.stop()
        except Exception:
            broker.kill()


@pytest.fixture
def scram_settings(scram_broker, settings_factory):
    password = scram_broker.scram.split(":", 1)[1]
    return settings_factory(bootstrap_servers=scram_broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                            sasl_mechanism="SCRAM-SHA-512", sasl_username=USER, sasl_password=password,
                            ssl_cafile=None)


def cli(settings, *args, timeout=120) -> subprocess.CompletedProcess:
    """`posvenda ARGS` with the settings passed as environment variables, as an operator would."""
    return subprocess.run([sys.executable, "-m", "posvenda.cli", *args], env=settings_env(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_scram(scram_settings, worker_factory, tmp_path):
    from posvenda.simulate import generate, write_jsonl

    path = tmp_path / "events.jsonl"
    write_jsonl(generate(7, 120, START_MS), path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) > 300

    created = cli(scram_settings, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert f"created, 0 already there ({scram_settings.bootstrap_servers})" in created.stdout
    ingested = cli(scram_settings, "ingest", "-q", str(path))
    assert ingested.returncode == 0, ingested.stderr
    assert f"ingest: {len(lines)} published, 0 rejected" in ingested.stdout

    worker = worker_factory(scram_settings)
    assert_converges(worker, lines, timeout=120)
    log = worker.log()
    assert f"Authenticated as {USER} via SCRAM-SHA-512" in log  # aiokafka, on the SASL listener
    assert scram_settings.sasl_password not in log, "the worker logged the password"


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
    assert "SaslAuthenticationFailedError" in topics.stderr and reason in topics.stderr
    assert "not-the-password" not in worker_log.read_text(errors="replace") + topics.stderr
