"""Does the bench hold up? Repeat it and check it against OpenVINO's benchmark_app.

    python benchmarks/harness_crosscheck.py RUN_DIR [--repeat 3] [--batch 1,64,256]

Runs ``slimdeploy bench`` (ONNX Runtime and OpenVINO, 1 thread) ``--repeat`` times back to
back, the first time with ``--crosscheck``, then prints for every comparison the speedup,
its interval and verdict in each run, the interval widths, and for every OpenVINO cell the
engine median next to benchmark_app's. Exit status 1 when verdicts differ between runs or
the harness and benchmark_app disagree by more than 10% at batch >= 64.

The machine may be shared: medians and ratios are what to quote, not absolute times.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slimdeploy.bench.api import run_bench
from slimdeploy.bench.settings import BenchSettings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", default="1,64,256")
    parser.add_argument("--runtime", default="onnxruntime,openvino")
    parser.add_argument("--min-time", type=float, default=BenchSettings.min_time)
    parser.add_argument("--crosscheck-time", type=float, default=BenchSettings.crosscheck_time)
    parser.add_argument("--out-dir", help="keep each run's bench.json here (default: a temporary directory)")
    args = parser.parse_args(argv)
    console = Console(width=200)
    base = BenchSettings(runtimes=tuple(args.runtime.split(",")), batches=tuple(int(b) for b in args.batch.split(",")),
                         threads=(1,), min_time=args.min_time, crosscheck_time=args.crosscheck_time)
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="slimdeploy-crosscheck-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, walls = [], []
    for index in range(args.repeat):
        settings = dataclasses.replace(base, crosscheck=index == 0, seed=index)
        start = time.perf_counter()
        runs.append(run_bench(args.sources, settings, out_dir / f"bench-{index + 1}.json", force=True))
        walls.append(time.perf_counter() - start)
        console.print(f"run {index + 1}: {walls[-1]:.0f} s -> {out_dir / f'bench-{index + 1}.json'}")

    ok = True
    table = Table(title="speedup [95% interval] (width) per run; ideal = FLOP ratio")
    for column in ("runtime", "batch", "model", "ideal", *[f"run {i + 1}" for i in range(len(runs))], "same verdict"):
        table.add_column(column)
    keyed = [{(c["runtime"], c["batch"], c["model"]): c for c in r["comparisons"]} for r in runs]
    for key in keyed[0]:
        cells = [k.get(key) for k in keyed]
        verdicts = {c["verdict"] if c else None for c in cells}
        same = len(verdicts) == 1
        ok &= same
        ideal = cells[0].get("ideal_speedup")
        table.add_row(key[0], str(key[1]), key[2], f"{ideal:.2f}" if ideal else "–",
                      *[f"{c['speedup']:.2f} [{c['ci_low']:.2f},{c['ci_high']:.2f}] ({c['ci_high'] - c['ci_low']:.3f}) "
                        f"{c['verdict']}" if c else "–" for c in cells],
                      "yes" if same else "NO")
    console.print(table)

    cross = Table(title="OpenVINO: slimdeploy engine median vs benchmark_app median (run 1)")
    for column in ("cell", "engine p50 (cell)", "engine p50 (alternating)", "benchmark_app p50", "cell ratio",
                   "ratio", "agrees"):
        cross.add_column(column)
    for cell in runs[0]["cells"]:
        check = cell.get("crosscheck")
        if not check:
            continue
        if check.get("status") != "ok":
            cross.add_row(cell["id"], "–", "–", "–", "–", "–", f"error: {check.get('error')}")
            ok &= cell["batch"] < 64
            continue
        agrees = bool(check["agrees"])
        if cell["batch"] >= 64:
            ok &= agrees
        cross.add_row(cell["id"], f"{cell['engine_latency_ms'] * 1000:.1f} µs",
                      f"{check['engine_median_ms'] * 1000:.1f} µs", f"{check['median_ms'] * 1000:.1f} µs",
                      f"{check.get('cell_ratio', float('nan')):.3f}", f"{check['ratio']:.3f}", "yes" if agrees else "NO")
    console.print(cross)
    console.print(f"wall seconds per run: {', '.join(f'{w:.0f}' for w in walls)}; "
                  f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
