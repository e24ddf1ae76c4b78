"""A private single-node broker per test (infra/kafka.sh with its own state dir and ports).

Broker faults (stop/start) and security settings (SCRAM) must never touch the shared broker on
127.0.0.1:9092 that other tests use at the same time. A fresh state directory also means a freshly
formatted KRaft storage, which is where `--add-scram` bootstraps a SCRAM credential.

Use: `from tests.faults.conftest_broker import private_broker  # noqa: F401` registers the fixture.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

KAFKA_SH = REPO / "infra" / "kafka.sh"
OURS = ("KAFKA_BOOTSTRAP_SERVERS", "POSVENDA_STATE_DIR", "POSVENDA_KAFKA_PORT", "POSVENDA_KAFKA_CONTROLLER_PORT",
        "POSVENDA_KAFKA_SASL_PORT", "POSVENDA_KAFKA_SCRAM", "POSVENDA_KAFKA_TLS", "POSVENDA_KAFKA_SSL_PORT",
        "POSVENDA_KAFKA_SASL_SSL_PORT")


@dataclass
class PrivateBroker:
    state_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    sasl_port: int = field(default_factory=free_port)
    ssl_port: int = field(default_factory=free_port)
    sasl_ssl_port: int = field(default_factory=free_port)
    scram: str | None = None  # "user:password" adds the SASL_PLAINTEXT/SCRAM-SHA-512 listener
    tls: bool = False  # adds an SSL listener (and SASL_SSL with scram), certificates from a local CA
    start_seconds: list[float] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        assert self.scram, "this broker has no SASL listener"
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        assert self.tls, "this broker has no SSL listener"
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        assert self.tls and self.scram, "this broker has no SASL_SSL listener"
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ca_file(self) -> str:
        """The local CA that signed the broker's certificate (KAFKA_SSL_CAFILE for clients)."""
        return str(self.state_dir / "kafka" / "tls" / "ca.pem")

    def env(self) -> dict[str, str]:
        # KAFKA_BOOTSTRAP_SERVERS would make kafka.sh use that cluster and start nothing
        env = {k: v for k, v in os.environ.items() if k not in OURS}
        env.update(POSVENDA_STATE_DIR=str(self.state_dir), POSVENDA_KAFKA_PORT=str(self.port),
                   POSVENDA_KAFKA_CONTROLLER_PORT=str(self.controller_port),
                   POSVENDA_KAFKA_SASL_PORT=str(self.sasl_port), POSVENDA_KAFKA_SSL_PORT=str(self.ssl_port),
                   POSVENDA_KAFKA_SASL_SSL_PORT=str(self.sasl_ssl_port))
        env.setdefault("KAFKA_HEAP", "384m")  # three JVMs on two cores during the suite
        if self.scram:
            env["POSVENDA_KAFKA_SCRAM"] = self.scram
        if self.tls:
            env["POSVENDA_KAFKA_TLS"] = "1"
        return env

    def _run(self, action: str, timeout: float) -> str:
        done = subprocess.run([str(KAFKA_SH), action], env=self.env(), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"infra/kafka.sh {action} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                                 f"\n{self.log_tail()}")
        return done.stdout

    def start(self) -> None:
        started = time.monotonic()
        self._run("start", timeout=150)
        self.start_seconds.append(round(time.monotonic() - started, 1))

    def stop(self) -> None:
        self._run("stop", timeout=90)

    def running(self) -> bool:
        return subprocess.run([str(KAFKA_SH), "status"], env=self.env(), capture_output=True).returncode == 0

    def kill(self) -> None:
        """Last resort of the teardown: SIGKILL by the pid file (only this broker's pid)."""
        pidfile = self.state_dir / "kafka" / "broker.pid"
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def log_tail(self, chars: int = 3000) -> str:
        log = self.state_dir / "kafka" / "broker.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else "(no broker log)"


@pytest.fixture
def private_broker(tmp_path_factory):
    """Starts private brokers: `private_broker(scram="user:password", tls=True)`; always stopped afterwards."""
    if shutil.which("java") is None:
        pytest.skip("a private broker needs a JDK (java) for infra/kafka.sh")
    started: list[PrivateBroker] = []

    def start(scram: str | None = None, tls: bool = False) -> PrivateBroker:
        broker = PrivateBroker(tmp_path_factory.mktemp("broker"), scram=scram, tls=tls)
        started.append(broker)
        broker.start()
        return broker

    yield start
    for broker in started:
        try:
            broker.stop()
        except Exception:
            broker.kill()
