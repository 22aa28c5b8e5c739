"""``--crosscheck``: OpenVINO's own ``benchmark_app`` on the same IR, shape, threads, one
stream and precision, so anyone can see the harness measures the runtime, not itself.

benchmark_app (sync API) times ``request.infer()`` and reports the median of
``request.latency``; slimdeploy records the same engine latency per call. On a shared
machine the load changes from one second to the next, so the two alternate: slimdeploy
measures the model alone for T seconds, benchmark_app runs for T seconds, slimdeploy
again, benchmark_app again, slimdeploy again. Each tool's result is the lowest of its run
medians: another process can only slow a run down, so the least disturbed run is the best
estimate of each (on the 2-core test machine one run in five was 20-40% slower). Both
tools use the same CPU pinning (read back from the compiled model). It runs inside the OpenVINO worker, which waits idle while
benchmark_app runs, so the two never compete.
"""

from __future__ import annotations

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


def run_benchmark_app(artifact, shape, threads: int, precision: str, seconds: float, pin: bool | None = None) -> dict:
    with tempfile.TemporaryDirectory() as report_dir:
        args = benchmark_app_args(artifact, shape, threads, precision, seconds, report_dir, pin)
        try:
            done = subprocess.run(benchmark_app_command() + args, capture_output=True, text=True,
                                  timeout=max(60.0, seconds * 5 + 60))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"median_ms": None, "error": f"{type(exc).__name__}: {exc}", "command": ""}
    command = " ".join(["benchmark_app", *args[:-2]])  # the temporary report folder is not worth keeping
    median = parse_median_ms(done.stdout + done.stderr)
    if done.returncode != 0 or median is None:
        lines = [l.strip() for l in (done.stderr + done.stdout).splitlines() if "error" in l.lower()]
        return {"median_ms": None, "command": command,
                "error": (lines[-1] if lines else f"benchmark_app exited with status {done.returncode}")[:300]}
    return {"median_ms": median, "min_ms": parse_min_ms(done.stdout + done.stderr), "command": command, "error": None}


def crosscheck_session(session, artifact, threads: int, precision: str, seconds: float, measure_alone,
                       runs: int = 2) -> dict:
    """Alternate slimdeploy and benchmark_app on the same open session's model."""
    start = time.perf_counter()
    seconds = max(1, round(seconds))  # benchmark_app's -t takes whole seconds
    pin = session.applied_settings().get("enable_cpu_pinning")
    ours = [measure_alone(session, seconds)]
    apps = []
    for _ in range(runs):
        app = run_benchmark_app(artifact, session.input_shape(), threads, precision, seconds,
                                pin if isinstance(pin, bool) else None)
        if app["error"] is not None:
            break
        apps.append(app)
        ours.append(measure_alone(session, seconds))
    record = {
        "tool": "benchmark_app",
        "status": "ok" if apps else "error",
        "error": None if apps else app["error"],
        "command": app["command"],
        "seconds": time.perf_counter() - start,
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
