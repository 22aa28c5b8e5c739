"""``--crosscheck``: OpenVINO's own ``benchmark_app`` on the same IR, shape, threads, one
stream and precision, so anyone can see the harness measures the runtime, not itself.

benchmark_app (sync API) times ``request.infer()`` and reports the median of
``request.latency``; slimdeploy records the same engine latency per call. The two cannot
run at the same time without disturbing each other, so they alternate: slimdeploy
measures the model alone for T seconds, then benchmark_app runs for T seconds, and again.

Why several runs and the lowest median: on the shared 2-core test machine the host
switches between a fast and a slow state every few seconds, whatever runs in the VM (the
same batch-64 call took 240 µs or 360-440 µs, in phases of 1-5 s, on either vCPU, with
numpy as with OpenVINO). Another process can only slow a run down, so each tool's lowest
run median is its least disturbed estimate. Runs go on until each tool has seen that
lowest level twice (its two lowest run medians within ``SETTLED``), at least ``MIN_RUNS``
and at most ``MAX_RUNS`` times; the rule looks at each tool alone, never at how well the
two agree. Each vCPU changes state on its own, so both tools run on the same one (Linux:
every thread of the worker, and benchmark_app, which inherits it) and use the same
OpenVINO CPU pinning (read back from the compiled model); slimdeploy's runs rotate the
cell's session instances as its interleaved blocks do. It runs inside the OpenVINO
worker, which waits idle while benchmark_app runs.
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

_MEDIAN = re.compile(r"Median:\s*([0-9.]+)\s*(ms|us|µs|s)\b")
_MIN = re.compile(r"Min:\s*([0-9.]+)\s*(ms|us|µs|s)\b")
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


def parse_median_ms(output: str) -> float | None:
    match = _MEDIAN.search(output)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def parse_min_ms(output: str) -> float | None:
    match = _MIN.search(output)
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


def run_benchmark_app(artifact, shape, threads: int, precision: str, seconds: float, pin: bool | None = None) -> dict:
    with tempfile.TemporaryDirectory() as report_dir:
        args = benchmark_app_args(artifact, shape, threads, precision, seconds, report_dir, pin)
        try:
            done = subprocess.run(benchmark_app_command() + args, capture_output=True, text=True,
                                  timeout=benchmark_app_timeout(seconds))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"median_ms": None, "error": f"{type(exc).__name__}: {exc}", "command": ""}
    command = " ".join(["benchmark_app", *args[:-2]])  # the temporary report folder is not worth keeping
    median = parse_median_ms(done.stdout + done.stderr)
    if done.returncode != 0 or median is None:
        lines = [l.strip() for l in (done.stderr + done.stdout).splitlines() if "error" in l.lower()]
        return {"median_ms": None, "command": command,
                "error": (lines[-1] if lines else f"benchmark_app exited with status {done.returncode}")[:300]}
    return {"median_ms": median, "min_ms": parse_min_ms(done.stdout + done.stderr), "command": command, "error": None}


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


def crosscheck_session(sessions, artifact, threads: int, precision: str, seconds: float, measure_alone) -> dict:
    """Alternate slimdeploy (the open session instances of one model) and benchmark_app."""
    with one_cpu(threads) as cpus:
        record = _alternate(sessions, artifact, threads, precision, seconds, measure_alone)
    record["cpus"] = cpus
    return record


def _alternate(sessions, artifact, threads: int, precision: str, seconds: float, measure_alone) -> dict:
    start = time.perf_counter()
    seconds = max(1, round(seconds))  # benchmark_app's -t takes whole seconds
    pin = sessions[0].applied_settings().get("enable_cpu_pinning")
    ours, apps, app = [], [], None

    def both_settled() -> bool:
        return settled([o["median_ms"] for o in ours]) and settled([a["median_ms"] for a in apps])

    while len(apps) < MAX_RUNS:
        ours.append(measure_alone(sessions[len(ours) % len(sessions)], seconds))
        app = run_benchmark_app(artifact, sessions[0].input_shape(), threads, precision, seconds,
                                pin if isinstance(pin, bool) else None)
        if app["error"] is not None:
            break
        apps.append(app)
        if len(apps) >= MIN_RUNS and both_settled():
            break
    record = {
        "tool": "benchmark_app",
        "status": "ok" if apps else "error",
        "error": None if apps else app["error"],
        "command": app["command"],
        "seconds": time.perf_counter() - start,
        "runs": len(apps),
        "settled": both_settled(),
        "median_ms": min(a["median_ms"] for a in apps) if apps else None,
        "engine_median_ms": min(o["median_ms"] for o in ours) if ours[0]["engine"] else None,
        "wall_median_ms": min(o["wall_median_ms"] for o in ours),
        "runs_median_ms": {"slimdeploy": [o["median_ms"] for o in ours], "benchmark_app": [a["median_ms"] for a in apps]},
        "ratio": None,
        "agrees": None,
        "min_ratio": None,
    }
    if apps:
        mine = record["engine_median_ms"] or record["wall_median_ms"]
        record["ratio"] = mine / record["median_ms"]
        record["agrees"] = abs(record["ratio"] - 1.0) <= AGREEMENT
        app_min = min((a["min_ms"] for a in apps if a.get("min_ms")), default=None)
        if app_min:
            record["min_ratio"] = min(o["min_ms"] for o in ours) / app_min
    return record
