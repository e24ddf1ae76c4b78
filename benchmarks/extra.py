"""Installs the `bench` optional extra of pyproject.toml into .state/bench-lib (`make bench` runs this).

Not into the project's virtualenv: quixstreams requires orjson, and Faust switches its JSON codec to
orjson whenever it can import it, so installing the extra beside the worker would change the worker
being measured (and every test run sharing that virtualenv). The Quix peer gets this directory on its
path; py-spy is a standalone binary found in its bin/.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib

from benchmarks.runners import BENCH_LIB
from streams.settings import REPO


def requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]["bench"]


def main() -> int:
    wanted = requirements()
    stamp = BENCH_LIB / (".installed-" + hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12])
    if stamp.exists():
        return 0
    BENCH_LIB.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--upgrade", "--target", str(BENCH_LIB), *wanted],
                   check=True)
    for old in BENCH_LIB.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
