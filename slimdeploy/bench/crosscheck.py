"""``--crosscheck``: OpenVINO's own ``benchmark_app`` (sync API, the median of its engine
latencies) on the same IR, shape, threads, one stream and precision, so anyone can see the
harness measures the runtime, not itself.

The two alternate runs of T seconds. Another process can only slow a run down, so each tool's
lowest run median is its least disturbed estimate: runs go on until each tool has seen that level
twice (``settled``), ``MIN_RUNS`` to ``MAX_RUNS`` times, both on the same CPUs (``one_cpu``).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from slimdeploy.records.bench import Crosscheck

_UNITS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}
# The harness agrees with benchmark_app when the medians are this close.
AGREEMENT = 0.10
# A tool's lowest level counts as seen twice when its two lowest run medians are this close.
SETTLED = 0.05
MIN_RUNS, MAX_RUNS = 5, 10


def benchmark_app_command() -> list[str]:
    script = Path(sys.executable).with_name("benchmark_app")
    if script.is_file():
        return [str(script)]
    # The wheel's module has no __main__ guard: call its main() directly.
    return [sys.executable, "-c", "import sys; from openvino.tools.benchmark.main import main; sys.exit(main())"]


def _parse_ms(name: str, output: str) -> float | None:
    """benchmark_app's "Median:" or "Min:" latency, in ms."""
    match = re.search(name + r":\s*([0-9.]+)\s*(ms|us|µs|s)\b", output)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def benchmark_app_args(artifact, shape, threads: int, precision: str, seconds: float, report_dir: str,
                       pin: bool | None = None) -> list[str]:
    args = ["-m", str(artifact), "-d", "CPU", "-shape", "[" + ",".join(map(str, shape)) + "]",
            "-nthreads", str(threads), "-nstreams", "1", "-hint", "none", "-api", "sync",
            "-infer_precision", precision, "-t", str(max(1, round(seconds)))]  # whole seconds only
    if pin is not None:
        args += ["-pin", "YES" if pin else "NO"]
    return args + ["-report_type", "no_counters", "-report_folder", report_dir]


def benchmark_app_timeout(seconds: float) -> float:
    return max(60.0, seconds * 5 + 60)


def longest_crosscheck_seconds(seconds: float) -> float:
    """The most one cell's crosscheck can take: the parent's stall watch allows for it."""
    seconds = max(1, round(seconds))
    return MAX_RUNS * (seconds + benchmark_app_timeout(seconds))


class AppRun(NamedTuple):  # one benchmark_app run: its median and minimum (ms), or why it failed
    median_ms: float | None
    command: str
    error: str | None = None
    min_ms: float | None = None


def run_benchmark_app(artifact, shape, threads: int, precision: str, seconds: float, pin: bool | None = None) -> AppRun:
    with tempfile.TemporaryDirectory() as report_dir:
        args = benchmark_app_args(artifact, shape, threads, precision, seconds, report_dir, pin)
        try:
            done = subprocess.run(benchmark_app_command() + args, capture_output=True, text=True,
                                  timeout=benchmark_app_timeout(seconds))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return AppRun(None, "", f"{type(exc).__name__}: {exc}")
    command = " ".join(["benchmark_app", *args[:-2]])  # the temporary report folder is not worth keeping
    median = _parse_ms("Median", done.stdout + done.stderr)
    if done.returncode != 0 or median is None:
        lines = [l.strip() for l in (done.stderr + done.stdout).splitlines() if "error" in l.lower()]
        return AppRun(None, command, (lines[-1] if lines else f"benchmark_app exited with status {done.returncode}")[:300])
    return AppRun(median, command, min_ms=_parse_ms("Min", done.stdout + done.stderr))


def settled(medians: list[float]) -> bool:
    """The lowest level was seen twice: the two lowest run medians are within ``SETTLED``."""
    if len(medians) < 2:
        return False
    low, second = sorted(medians)[:2]
    return second <= low * (1 + SETTLED)


@contextlib.contextmanager
def one_cpu(threads: int):
    """Every thread of this process on the same ``threads`` CPUs (the last ones allowed) while
    the crosscheck runs; child processes inherit them. A no-op where Linux affinity is absent."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
        tasks = [int(t) for t in os.listdir("/proc/self/task")]
    except (AttributeError, OSError):
        yield None
        return
    chosen = set(allowed[-max(1, threads):])
    pinned = []
    try:
        for task in tasks:
            with contextlib.suppress(OSError):  # a thread that has just ended
                before = os.sched_getaffinity(task)
                os.sched_setaffinity(task, chosen)
                pinned.append((task, before))
        yield sorted(chosen)
    finally:
        for task, before in pinned:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(task, before)


def crosscheck_session(sessions, artifact, threads: int, precision: str, seconds: float, measure_alone) -> Crosscheck:
    """Alternate slimdeploy (the open session instances of one model) and benchmark_app."""
    with one_cpu(threads) as cpus:
        return _alternate(sessions, artifact, threads, precision, seconds, measure_alone).replace(cpus=cpus)


def _alternate(sessions, artifact, threads: int, precision: str, seconds: float, measure_alone) -> Crosscheck:
    start = time.perf_counter()
    seconds = max(1, round(seconds))  # benchmark_app's -t takes whole seconds
    pin = sessions[0].applied_settings().get("enable_cpu_pinning")
    ours, apps, app = [], [], None

    def both_settled() -> bool:
        return settled([o.median_ms for o in ours]) and settled([a.median_ms for a in apps])

    while len(apps) < MAX_RUNS:
        ours.append(measure_alone(sessions[len(ours) % len(sessions)], seconds))
        app = run_benchmark_app(artifact, sessions[0].input_shape(), threads, precision, seconds,
                                pin if isinstance(pin, bool) else None)
        if app.error is not None:
            break
        apps.append(app)
        if len(apps) >= MIN_RUNS and both_settled():
            break
    median = min(a.median_ms for a in apps) if apps else None
    engine = min(o.median_ms for o in ours) if ours[0].engine else None
    wall = min(o.wall_median_ms for o in ours)
    ratio = (engine or wall) / median if apps else None
    app_min = min((a.min_ms for a in apps if a.min_ms), default=None)
    return Crosscheck(
        tool="benchmark_app", status="ok" if apps else "error", error=None if apps else app.error, command=app.command,
        seconds=time.perf_counter() - start, runs=len(apps), settled=both_settled(), median_ms=median,
        engine_median_ms=engine, wall_median_ms=wall,
        runs_median_ms={"slimdeploy": [o.median_ms for o in ours], "benchmark_app": [a.median_ms for a in apps]},
        ratio=ratio, agrees=abs(ratio - 1.0) <= AGREEMENT if apps else None,
        min_ratio=min(o.min_ms for o in ours) / app_min if apps and app_min else None)
