"""Does an interrupted export always stop cleanly? SIGTERM at random moments, many times.

    python benchmarks/interrupt_export.py [--attempts 40] [--seed 1] [--window 0.6]

Trains a tiny run (1 epoch on a 3000-image slice), then starts ``slimdeploy export RUN
--target onnx --target openvino`` ``--attempts`` times and sends SIGTERM a random 0 to
``--window`` seconds after ``export.partial.json`` appears, i.e. while OpenVINO is imported,
converting or verifying. Prints how each attempt ended. Exit status 1 when any attempt hung
(no exit within 120 s), left a failed artifact, or ended in any other way than interrupted
(130, no export.json) or finished (export.json; exit 0, or killed by the signal while Python
was already shutting down).

The unit tests put the signal at two fixed moments; this probes the moments in between.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
HANG_SECONDS = 120


def slimdeploy(*args: str) -> list[str]:
    return [sys.executable, "-m", "slimdeploy", *args]


def attempt(template: Path, run: Path, delay: float) -> str:
    """One interrupted export; returns how it ended, in a few words."""
    shutil.copytree(template, run)
    process = subprocess.Popen(slimdeploy("export", str(run), "--target", "onnx", "--target", "openvino",
                                          "--verify-limit", "300", "--quiet"),
                               env=ENV, stderr=subprocess.PIPE, text=True)
    partial = run / "exports" / "export.partial.json"
    while not partial.exists() and process.poll() is None:
        time.sleep(0.005)
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    try:
        stderr = process.communicate(timeout=HANG_SECONDS)[1].strip()
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return f"HUNG: no exit {HANG_SECONDS} s after SIGTERM"
    names = sorted(p.name for p in (run / "exports").iterdir())
    failed = any(name.endswith(".failed") for name in names)
    finished = "export.json" in names and "export.partial.json" not in names and not failed
    if process.returncode == 130 and not finished and not failed:
        return "interrupted (130), only verified artifacts kept"
    if process.returncode == 0 and finished:
        return "finished before the signal (0)"
    if process.returncode == -signal.SIGTERM and finished and not stderr:
        # Python restores the default SIGTERM action late in its shutdown: a signal that
        # comes then ends the process by the default action, after the work was complete.
        return "finished, then ended by SIGTERM while Python shut down (-15)"
    return f"BAD: exit {process.returncode}, left {names}: {stderr[-1500:]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=float, default=0.6, help="latest signal, seconds after the ONNX artifact")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    outcomes = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="slimdeploy-interrupt-") as tmp:
        template = Path(tmp) / "tiny"
        subprocess.run(slimdeploy("train", "--epochs", "1", "--limit", "3000", "--out", str(template), "--quiet"),
                       env=ENV, check=True)
        for index in range(args.attempts):
            run = Path(tmp) / f"attempt-{index}"
            outcome = attempt(template, run, rng.uniform(0, args.window))
            shutil.rmtree(run)
            outcomes[outcome] += 1
            print(f"{index + 1:3d}/{args.attempts} {outcome}", flush=True)
    print()
    for outcome, count in outcomes.most_common():
        print(f"{count:4d}  {outcome}")
    return 1 if any(outcome.startswith(("HUNG", "BAD")) for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
