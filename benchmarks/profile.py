"""(i) A py-spy profile of a runner process, summarised as its top functions (self and inclusive).

py-spy samples the process from outside (`record --format raw --nonblocking`: the target is never
paused), from shortly after start until the run is drained; the summary is written as markdown.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

RATE_HZ = 50
_LINE = re.compile(r"\s+\d+$")


def py_spy() -> str | None:
    from benchmarks.runners import BENCH_LIB

    for candidate in (BENCH_LIB / "bin" / "py-spy", Path(sys.executable).parent / "py-spy"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("py-spy")


def attach(pid: int, raw: Path) -> subprocess.Popen | None:
    binary = py_spy()
    if binary is None:
        raw.with_suffix(".error").write_text("py-spy not found (make bench installs the bench extra)\n")
        return None
    time.sleep(1.0)  # let the interpreter come up before py-spy looks for it
    return subprocess.Popen([binary, "record", "--format", "raw", "--rate", str(RATE_HZ), "--nonblocking",
                             "-o", str(raw), "--pid", str(pid)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def detach(spy: subprocess.Popen, raw: Path, summary_to: Path) -> None:
    """Stops py-spy (it writes its samples on SIGINT) and writes the summary, or py-spy's own error."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    output = spy.communicate(timeout=60)[0].decode(errors="replace")
    if not raw.exists():
        summary_to.write_text(f"# py-spy profile\n\npy-spy wrote no samples; its output:\n\n```\n{output}\n```\n")
        return
    summary_to.write_text(markdown(raw.read_text().splitlines()))


def frame_name(frame: str) -> str:
    """`fn (path/to/module.py:123)` -> `fn (path/to/module.py)`: lines of one function counted together."""
    return re.sub(r":\d+\)$", ")", frame.strip())


def summarise(lines: list[str]) -> tuple[int, Counter, Counter]:
    """(samples, self samples per function, inclusive samples per function) of py-spy raw output."""
    total, own, inclusive = 0, Counter(), Counter()
    for line in lines:
        match = _LINE.search(line)
        if not match:
            continue
        count = int(match.group())
        frames = [frame_name(f) for f in line[: match.start()].split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return total, own, inclusive


def markdown(lines: list[str], top: int = 30) -> str:
    total, own, inclusive = summarise(lines)
    if not total:
        return "# py-spy profile\n\nno samples\n"

    def table(counter: Counter) -> str:
        rows = [f"| {100 * n / total:5.1f}% | `{name}` |" for name, n in counter.most_common(top)]
        return "| share | function |\n|---|---|\n" + "\n".join(rows)

    return (f"# py-spy profile of the posvenda worker\n\n{total:,} samples at {RATE_HZ} Hz (`py-spy record --format "
            f"raw --nonblocking`), from start-up until every topic was drained; idle threads left out (py-spy default).\n\n"
            f"## Self time (the function on top of the stack)\n\n{table(own)}\n\n"
            f"## Inclusive time (the function anywhere on the stack)\n\n{table(inclusive)}\n")
