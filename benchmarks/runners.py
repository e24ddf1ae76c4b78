"""One function per runner: fresh topics under its own prefix, publish, run, time, count, clean up."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks import accounting, drain, profile, verify
from benchmarks.dataset import Dataset
from benchmarks.kafka_io import Broker
from streams.settings import REPO, Settings
from topics import catalogue
from topics.admin import create_topics

BENCH_LIB = REPO / ".state" / "bench-lib"  # the `bench` extra, on the Quix peer's path only


@dataclass
class Stage:
    """Everything one run of one runner owns: names, a scratch directory, the broker handle."""

    name: str
    token: str
    settings: Settings
    workdir: Path
    broker: Broker
    dataset: Dataset

    @property
    def sources(self) -> list[str]:
        return [self.settings.topic_name(t) for t in catalogue.SOURCE_TOPICS]

    def reads(self, topics=catalogue.SOURCE_TOPICS) -> tuple[list[str], int]:
        """Physical names of the source topics a runner consumes, and how many events they hold."""
        return [self.settings.topic_name(t) for t in topics], sum(self.dataset.count(t) for t in topics)

    def log(self, what: str) -> Path:
        return self.workdir / f"{what}.log"


def stage(name: str, base: Settings, dataset: Dataset) -> Stage:
    token = f"bench{uuid.uuid4().hex[:6]}-{name}"
    workdir = Path(tempfile.mkdtemp(prefix=token + "-"))
    s = replace(base, topic_prefix=token + ".", app_id=token + ".posvenda", data_dir=workdir / "state")
    return Stage(name, token, s, workdir, Broker(s), dataset)


def spawn(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(argv, env={**base, **env}, cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def finish(st: Stage, groups: list[str], events: int, timing: drain.Timing, expect_output: bool = True,
           results_topic: str | None = None) -> accounting.Run:
    """Counts what the runner wrote (and checks a peer's results), then removes its topics, groups and
    scratch directory."""
    try:
        ends = st.broker.end_offsets_by_topic(st.broker.topics_of(st.token))
        written = accounting.written(ends, st.sources)
        if expect_output and not written["output"]:
            raise drain.RunnerFailed(f"{st.name} drained its input but wrote no output; see {st.workdir}")
        if results_topic:
            verify.check_customers(st.settings, results_topic, ends[results_topic], st.dataset)
    except BaseException:
        cleanup(st, groups, keep_logs=True)
        raise
    cleanup(st, groups)
    return accounting.Run(st.name, events, timing.timed_events, timing.seconds, timing.cpu_seconds,
                          timing.peak_rss_kb, written, timing.note)


def cleanup(st: Stage, groups: list[str], keep_logs: bool = False) -> None:
    """Deletes the run's topics and groups, and its scratch directory (logs kept when the run failed)."""
    try:
        st.broker.delete_run(st.token, groups)
    finally:
        st.broker.close()
        shutil.rmtree(st.workdir / "state" if keep_logs else st.workdir, ignore_errors=True)


def _prepare(st: Stage, topics) -> None:
    create_topics(st.settings, topics)
    st.dataset.publish(st.settings)


def _timeout(events: int) -> float:
    return 180 + events / 20  # generous: a slow runner is measured, never cut short


def ceiling(st: Stage) -> accounting.Run:
    """(a) aiokafka consume + fastavro decode of every source event."""
    events = st.dataset.count()
    try:
        _prepare(st, catalogue.SOURCE_TOPICS)
        out = subprocess.run([sys.executable, "-m", "benchmarks.ceiling", "--bootstrap", st.settings.bootstrap_servers,
                              "--topics", ",".join(st.sources), "--expected", str(events)],
                             cwd=REPO, env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
                             capture_output=True, text=True, timeout=_timeout(events), check=True)
    except BaseException:
        cleanup(st, [], keep_logs=True)
        raise
    result = json.loads(out.stdout.strip().splitlines()[-1])
    timing = drain.Timing(result["seconds"], result["events"], result["cpu_seconds"], result["peak_rss_kb"])
    return finish(st, [], events, timing, expect_output=False)


def _watched(st: Stage, argv: list[str], env: dict, group: str, reads: tuple[list[str], int],
             profile_to: Path | None = None, results_topic: str | None = None) -> accounting.Run:
    """Runs a consumer-group runner until its topics are drained (see drain.watch)."""
    consumes, events = reads
    try:
        process = spawn(argv, env, st.log(st.name))
        spy = profile.attach(process.pid, st.workdir / "profile.raw") if profile_to else None
        try:
            timing = drain.watch(process, st.broker, st.token, group, consumes, events, _timeout(events),
                                 st.log(st.name))
        finally:
            if spy:
                profile.detach(spy, st.workdir / "profile.raw", profile_to)
            stop(process)
        drain.check_log(st.log(st.name))
    except BaseException:
        cleanup(st, [group], keep_logs=True)
        raise
    return finish(st, [group], events, timing, results_topic=results_topic)


def quix(st: Stage) -> accounting.Run:
    """(b) the Quix Streams peer on the order events."""
    if not (BENCH_LIB / "quixstreams").is_dir():
        raise drain.RunnerFailed(f"quixstreams is not installed in {BENCH_LIB} (make bench installs it)")
    _prepare(st, catalogue.SOURCE_TOPICS)
    group = st.token + "-quix"
    argv = [sys.executable, "-m", "benchmarks.quix_peer", "--bootstrap", st.settings.bootstrap_servers,
            "--prefix", st.settings.topic_prefix, "--group", group, "--state-dir", str(st.workdir / "state")]
    env = {"PYTHONPATH": f"{REPO}:{BENCH_LIB}"}
    return _watched(st, argv, env, group, st.reads([catalogue.ORDERS]),
                    results_topic=st.settings.topic_prefix + "quix.customers")


def faust_peer(st: Stage, mode: str, port: int) -> accounting.Run:
    """(c) the minimal Faust app on the order events, per event or batched."""
    from benchmarks.faust_peer import run_env

    own = tuple(catalogue.Topic(name, "customer_id", ("json",)) for name in ("faust.customer-facts", "faust.customers"))
    _prepare(st, catalogue.SOURCE_TOPICS + own)  # else the broker may auto-create them with 1 partition
    env = run_env(st.settings.topic_prefix, mode, st.settings.partitions, str(st.workdir / "state"), port,
                  st.settings.bootstrap_servers)
    argv = [sys.executable, "-m", "benchmarks.faust_peer", "worker", "-l", "warn"]
    return _watched(st, argv, env, st.settings.topic_prefix + "faust", st.reads([catalogue.ORDERS]),
                    results_topic=st.settings.topic_prefix + "faust.customers")


def posvenda(st: Stage, port: int, profile_to: Path | None = None) -> accounting.Run:
    """(d) the posvenda worker with every read model, on every source event."""
    _prepare(st, None)
    return _watched(st, posvenda_argv(), posvenda_env(st, port), st.settings.app_id, st.reads(), profile_to)


def posvenda_argv() -> list[str]:
    return [sys.executable, "-m", "posvenda.cli", "worker"]


def posvenda_env(st: Stage, port: int) -> dict:
    """The worker's configuration: the run's prefix, group and state directory; no wall-clock ticks."""
    s = st.settings
    return {"KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers, "POSVENDA_TOPIC_PREFIX": s.topic_prefix,
            "POSVENDA_APP_ID": s.app_id, "POSVENDA_DATA_DIR": str(s.data_dir), "POSVENDA_WEB_PORT": str(port),
            "POSVENDA_PARTITIONS": str(s.partitions), "POSVENDA_RECOVERY_TICK_SECONDS": "0"}
