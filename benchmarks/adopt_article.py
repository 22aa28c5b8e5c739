"""Own model, own data: does adoption reach the article's answer? (issue 13's acceptance run)

    python benchmarks/adopt_article.py [--out runs/adopt_article] [--epochs 15] [--config my.toml]

What a user does, done here from scratch:
1. writes Fashion-MNIST as a flat ``.npz`` (784 float32 features in [0, 1], its own
   ``x_val, y_val``: the same 5000 validation images the article recipe holds out);
2. trains a *functional* Keras 784-300-150-10 model outside slimdeploy (SGD 0.01, batch 32,
   ``--epochs`` epochs, seed 0) and saves it compiled, so its compile config travels with it;
3. runs ``slimdeploy run --model m.keras --data f.npz`` (every default: both modes, every
   export target, the default bench, the report).

Then it prints, from the run's own files, the checks of issue 13: the structured ticket keeps
at most 10% of the parameters, its test accuracy is within 0.5 points of the adopted model's,
and it is ``faster`` than dense on ONNX Runtime and OpenVINO at every batch benchmarked.
Exit status 1 when a check fails. Takes about 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
MAX_PARAMS_FRACTION = 0.10
MAX_DROP_POINTS = 0.5
RUNTIMES = ("onnxruntime", "openvino")


def write_npz(path: Path) -> None:
    import numpy as np

    from slimdeploy.data import load_dataset

    data = load_dataset(None, validation_size=5000, seed=0, allow_download=False)  # IDX pixels / 255
    flat = {f"x_{split}": getattr(data, f"x_{split}").reshape(-1, 784).astype(np.float32)
            for split in ("train", "val", "test")}
    labels = {f"y_{split}": getattr(data, f"y_{split}") for split in ("train", "val", "test")}
    np.savez(path, **flat, **labels)


def train_outside(npz: Path, model_path: Path, epochs: int) -> float:
    """A plain Keras model, trained with plain Keras: nothing of slimdeploy touches it."""
    import keras
    import numpy as np

    arrays = np.load(npz)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((784,), name="pixels")
    hidden = keras.layers.Dense(300, activation="relu")(inputs)
    hidden = keras.layers.Dense(150, activation="relu")(hidden)
    outputs = keras.layers.Dense(10, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs, name="user_mlp")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(arrays["x_train"], arrays["y_train"], batch_size=32, epochs=epochs,
              validation_data=(arrays["x_val"], arrays["y_val"]), verbose=2)
    model.save(model_path)
    return float(model.evaluate(arrays["x_test"], arrays["y_test"], verbose=0)[1])


def checks(run_dir: Path) -> list[tuple[str, bool, str]]:
    dense = json.loads((run_dir / "dense" / "metrics.json").read_text())
    lottery = json.loads((run_dir / "structured" / "lottery.json").read_text())
    bench = json.loads((run_dir / "bench.json").read_text())
    ticket = lottery["ticket"]
    chosen = lottery["rounds"][ticket["round"]]
    fraction = chosen["params"] / dense["params"]  # every parameter, not only the prunable ones
    drop = (dense["test_accuracy"] - ticket["test_accuracy"]) * 100
    results = [
        (f"structured ticket keeps <= {MAX_PARAMS_FRACTION:.0%} of the parameters", fraction <= MAX_PARAMS_FRACTION,
         f"{fraction:.2%} (round {ticket['round']}, widths {chosen.get('widths')})"),
        (f"structured ticket within {MAX_DROP_POINTS} points of the adopted model", drop <= MAX_DROP_POINTS,
         f"adopted {dense['test_accuracy']:.4f}, ticket {ticket['test_accuracy']:.4f} ({-drop:+.2f} points)"),
    ]
    for runtime in RUNTIMES:
        rows = [c for c in bench["comparisons"]
                if c["model"] == "structured" and c["baseline"] == "dense" and c["runtime"] == runtime]
        described = ", ".join(f"bs {c['batch']}: {c['speedup']:.2f}x [{c['ci_low']:.2f}, {c['ci_high']:.2f}] {c['verdict']}"
                              for c in sorted(rows, key=lambda c: c["batch"]))
        results.append((f"structured faster than dense on {runtime} at every batch",
                        bool(rows) and all(c["verdict"] == "faster" for c in rows), described or "no comparison"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/adopt_article", help="run directory (default: runs/adopt_article)")
    parser.add_argument("--work", default="runs/adopt_article_inputs", help="where the .npz and the model go")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the outside training (default: 15)")
    parser.add_argument("--config", help="a `slimdeploy run` config TOML (default: every default)")
    parser.add_argument("--check-only", action="store_true", help="only print the checks of an existing run")
    args = parser.parse_args(argv)
    out, work = Path(args.out), Path(args.work)
    if not args.check_only:
        work.mkdir(parents=True, exist_ok=True)
        npz, model_path = work / "fashion_flat.npz", work / "user_mlp.keras"
        if not npz.exists():
            write_npz(npz)
        if not model_path.exists():
            print(f"outside training: test accuracy {train_outside(npz, model_path, args.epochs):.4f}", flush=True)
        command = ["slimdeploy", "run", "--model", str(model_path), "--data", str(npz),
                   "--name", out.name, "--force"]
        command += ["--config", args.config] if args.config else []
        started = time.perf_counter()
        # `run` puts the run in runs_dir/NAME; this script's --out must be under runs/ unless a config says otherwise.
        subprocess.run(command, check=True, env=ENV)
        print(f"slimdeploy run: {time.perf_counter() - started:.0f} s", flush=True)
    failed = 0
    for name, passed, detail in checks(out):
        failed += not passed
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
