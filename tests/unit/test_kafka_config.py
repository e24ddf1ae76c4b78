"""The local broker's configuration as infra/kafka.sh writes it."""
from __future__ import annotations

import os
import subprocess

from tests.conftest import REPO


def test_the_local_broker_never_creates_topics_on_first_use(tmp_path):
    # Given the broker configuration infra/kafka.sh writes for a fresh state directory
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSVENDA_KAFKA_", "KAFKA_BOOTSTRAP"))}
    done = subprocess.run([str(REPO / "infra" / "kafka.sh"), "config"], env={**env, "POSVENDA_STATE_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "kafka" / "server.properties").read_text()
    # Then a producer writing to a topic that does not exist gets an error instead of a topic with the
    # broker's default partitions and no cleanup policy
    settings = dict(line.split("=", 1) for line in written.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["auto.create.topics.enable"] == "false"
    assert done.stdout == written
