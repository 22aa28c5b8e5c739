"""Prune, quantize, or both? Three back-to-back benches of every variant (issue 14's acceptance run).

    python benchmarks/int8_stacking.py [RUN_DIR] [--repeats 3] [--skip-export] [-- BENCH OPTIONS]

RUN_DIR (default runs/article; made with `slimdeploy run` when missing) is exported with
``--precision fp32,int8`` (dense, structured, unstructured and their INT8 variants, ONNX and
OpenVINO, each verified), then benchmarked ``--repeats`` times back to back with the default
bench settings (RUN_DIR/bench_repeat_K.json). It prints every comparison (each variant against
dense fp32, and the stacking comparisons: INT8 on a pruned model, pruning on an INT8 model) with
its speedup and verdict in each repeat, marks every cell where INT8 made a model slower, and
says whether the repeats agree (a `~` after a verdict: a cell of that comparison was flagged
unstable). Options after `--` go to every `slimdeploy bench` (e.g. `-- --processes 4`). Exit status 1 when a verdict differs between repeats.
Takes about 15 minutes on 2 cores for an existing run (keep the machine otherwise idle).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def slimdeploy(*args: str) -> None:
    print("$ slimdeploy " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "slimdeploy", *args], check=True, env=ENV)


def has_int8(run_dir: Path) -> bool:
    manifest = run_dir / "exports" / "export.json"
    if not manifest.is_file():
        return False
    return any(a.get("precision") == "int8" and a.get("valid") for a in json.loads(manifest.read_text())["artifacts"])


def key(c: dict) -> tuple:
    return (c["runtime"], c["batch"], c["baseline"], c["model"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default="runs/article")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-export", action="store_true", help="use the run's export as it is")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    bench_options = argv[split + 1:]  # after --: options for every slimdeploy bench
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        slimdeploy("run", "--name", run_dir.name, "--quiet")
    if not args.skip_export and not has_int8(run_dir):
        slimdeploy("export", str(run_dir), "--precision", "fp32,int8", "--force", "--quiet")
    results = []
    for repeat in range(1, args.repeats + 1):
        out = run_dir / f"bench_repeat_{repeat}.json"
        slimdeploy("bench", str(run_dir), "--runtime", "onnxruntime,openvino", "--out", str(out), "--force", "--quiet",
                   *bench_options)
        results.append({key(c): c for c in json.loads(out.read_text())["comparisons"]})

    manifest = json.loads((run_dir / "exports" / "export.json").read_text())
    print("\nverified artifacts (test accuracy in its runtime, Keras's):")
    for a in manifest["artifacts"]:
        print(f"  {a['model']:<20} {a['target']:<9} valid={a['valid']} acc={a['test_accuracy']:.4f} "
              f"keras={a['keras_test_accuracy']:.4f} agree={a['top1_agreement']:.4f} gzip={a['gzip_bytes']:,} B")

    print(f"\n{'runtime':<12} {'batch':>5}  {'model vs baseline':<40} " + "  ".join(f"{'run ' + str(i + 1):>23}" for i in range(len(results))))
    differ = []
    for k in sorted(results[0]):
        cells = [r.get(k) for r in results]
        verdicts = [c["verdict"] if c else "missing" for c in cells]
        shown = "  ".join(f"{c['speedup']:5.2f}x [{c['ci_low']:.2f},{c['ci_high']:.2f}] {c['verdict'][:6]:<6}{'~' if c.get('unstable') else ' '}" if c else f"{'missing':>23}"
                          for c in cells)
        slower = " <- INT8 slower" if "int8" in k[3] and not k[2].endswith("int8") and k[2] != "dense" and "slower" in verdicts else ""
        slower = slower or (" <- slower than dense" if k[2] == "dense" and "slower" in verdicts else "")
        same = "" if len(set(verdicts)) == 1 else "  VERDICTS DIFFER"
        if same:
            differ.append(k)
        print(f"{k[0]:<12} {k[1]:>5}  {k[3] + ' vs ' + k[2]:<40} {shown}{same}{slower}")
    print(f"\n{len(results[0])} comparisons x {len(results)} repeats: "
          + ("the same verdicts in every repeat" if not differ else f"{len(differ)} differ between repeats"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
