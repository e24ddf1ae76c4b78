"""Prometheus' config passes promtool, the runtime config infra/prometheus.sh writes points at real
paths, the targets file it writes is valid file_sd JSON, the installer is idempotent and fails in one
line, and the Docker Compose file parses and mounts files that exist."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "infra" / "prometheus" / "prometheus.yml"
SCRIPT = REPO / "infra" / "prometheus.sh"
INSTALL = REPO / "infra" / "install-prometheus.sh"
RULES = REPO / "alerts" / "prometheus" / "rules.yml"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (infra/install-prometheus.sh)")


def promtool_check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, cwd=REPO,
                          check=False)


def script_env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSVENDA_PROMETHEUS")}
    env.update(POSVENDA_PROMETHEUS_DIR=str(tmp_path / "prom"), **extra)
    return env


def test_config_scrapes_the_workers_every_5s_from_the_targets_file_and_loads_the_rules():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["global"]["scrape_interval"] == "5s"
    assert (CONFIG.parent / config["rule_files"][0]).resolve() == RULES
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "posvenda")
    assert job["metrics_path"] == "/metrics"
    files = job["file_sd_configs"][0]["files"]
    assert [(CONFIG.parent / f).resolve() for f in files] == [REPO / ".state" / "prometheus" / "targets.json"]


@needs_promtool
@pytest.mark.skipif(not RULES.exists(), reason="alerts/prometheus/rules.yml not written yet")
def test_committed_config_passes_promtool_check_config():
    result = promtool_check_config(CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


@needs_promtool
def test_runtime_config_resolves_paths_and_passes_promtool(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n  - name: empty\n    rules: []\n")
    targets = tmp_path / "somewhere" / "targets.json"
    result = subprocess.run([str(SCRIPT), "config"], capture_output=True, text=True, check=True, cwd=tmp_path,
                            env=script_env(tmp_path, POSVENDA_PROMETHEUS_RULES=str(rules),
                                           POSVENDA_PROMETHEUS_TARGETS=str(targets)))
    runtime = Path(result.stdout.strip())
    assert runtime == tmp_path / "prom" / "prometheus.yml"
    config = yaml.safe_load(runtime.read_text())
    assert config["rule_files"] == [str(rules)]
    assert config["scrape_configs"][0]["file_sd_configs"][0]["files"] == [str(targets)]
    assert json.loads(targets.read_text()) == [{"targets": [], "labels": {"service": "posvenda-worker"}}]
    checked = promtool_check_config(runtime)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_targets_command_writes_file_sd_json(tmp_path):
    targets = tmp_path / "t.json"
    subprocess.run([str(SCRIPT), "targets", "127.0.0.1:6066", "127.0.0.1:6067"], check=True, capture_output=True,
                   env=script_env(tmp_path, POSVENDA_PROMETHEUS_TARGETS=str(targets)))
    assert json.loads(targets.read_text()) == [
        {"targets": ["127.0.0.1:6066", "127.0.0.1:6067"], "labels": {"service": "posvenda-worker"}}]


def test_script_refuses_unknown_commands():
    result = subprocess.run([str(SCRIPT), "restart-everything"], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "usage:" in result.stderr


@pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                    reason="prometheus not installed")
def test_installer_is_a_quiet_no_op_when_prometheus_is_there():
    result = subprocess.run([str(INSTALL)], capture_output=True, text=True, timeout=30, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_installer_fails_in_one_line_without_apt(tmp_path):
    # A PATH with the shell tools the script uses, but no prometheus and no apt-get.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "id", "mktemp", "rm", "grep", "head", "awk"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = subprocess.run([str(bin_dir / "bash"), str(INSTALL)], capture_output=True, text=True,
                            env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot install prometheus" in lines[0] and "apt-get not found" in lines[0]


def test_docker_compose_parses_and_mounts_what_exists():
    compose = yaml.safe_load((REPO / "infra" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "worker", "prometheus", "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["worker"]["build"]["dockerfile"] == "infra/Dockerfile"
    dockerfile = (REPO / "infra" / "Dockerfile").read_text().splitlines()
    assert any(line.startswith("CMD") and "posvenda worker" in line for line in dockerfile)
    copied = [line.split()[1:-1] for line in dockerfile if line.startswith("COPY")]
    missing = [src for sources in copied for src in sources if not (REPO / src).exists()]
    assert not missing, f"infra/Dockerfile copies what the build context lacks: {missing}"
    assert services["grafana"]["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / "infra" / source).resolve().exists(), f"{name} mounts missing {source}"
    for port in (p for s in services.values() for p in s.get("ports", ())):
        assert port.startswith("127.0.0.1:"), f"{port} is published beyond loopback"
