"""Schema-conforming inputs for the report tests, and checks that they load.

bench.json, lottery.json and export.json are written by other stages; the report is a pure
function of these files, so its tests write documents that follow docs/ARCHITECTURE.md,
with latency samples drawn from seeded distributions and statistics, intervals and
verdicts computed by slimdeploy.bench.stats exactly as the bench stage does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from slimdeploy import environment
from slimdeploy.bench.stats import speedup_interval, summarize, verdict

WIDTHS = {"dense": [300, 150, 10], "structured": [75, 37, 10], "unstructured": [300, 150, 10]}


def true_speedup(model: str, batch: int) -> float:
    """The structured ticket gains more as the batch grows (2.4x at 1, ~4x at 256); zeros gain nothing."""
    return 4.0 - 1.6 / (1 + (batch - 1) / 8) if model == "structured" else 1.0

TEST_ACCURACY = {"dense": 0.8640, "structured": 0.8575, "unstructured": 0.8630}
RUNTIME_BASE_MS = {"onnxruntime": 1.0, "openvino": 1.2, "tensorflow": 3.0}
TARGET_OF = {"onnxruntime": "onnx", "openvino": "openvino"}
SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}


def mlp_params(widths, inputs=784) -> int:
    total, previous = 0, inputs
    for width in widths:
        total += previous * width + width
        previous = width
    return total


def mlp_flops(widths, inputs=784) -> int:
    total, previous = 0, inputs
    for width in widths:
        total += 2 * previous * width
        previous = width
    return total


def model_info(name: str) -> dict:
    params = mlp_params(WIDTHS[name])
    nonzero = int(params * 0.1) if name == "unstructured" else params
    return {"params": params, "nonzero_params": nonzero, "flops": mlp_flops(WIDTHS[name]),
            "widths": WIDTHS[name], "test_accuracy": TEST_ACCURACY[name]}


def draw_samples(rng, median_ms: float, n: int, sigma: float = 0.06) -> list[float]:
    """Right-skewed latencies around a median, like timer samples of a real call."""
    return (median_ms * np.exp(rng.normal(0.0, sigma, n))).round(6).tolist()


def dense_latency_ms(runtime: str, batch: int) -> float:
    return RUNTIME_BASE_MS[runtime] * (0.02 + 0.004 * batch)


def make_cell(model, runtime, batch, samples, *, threads=1, status="ok", error=None) -> dict:
    target = TARGET_OF.get(runtime, runtime)
    cell = {"id": f"{model}|{runtime}|b{batch}|t{threads}|latency", "model": model, "runtime": runtime,
            "batch": batch, "threads": threads, "mode": "latency", "settings": {},
            "artifact": f"exports/{model}{SUFFIX.get(target, '')}", "status": status,
            "error": error if status == "ok" else (error or f"{runtime} failed"),
            "load_seconds": 0.1, "first_inference_seconds": 0.01, "samples_ms": samples if status == "ok" else [],
            "iterations": len(samples) if status == "ok" else 0, "seconds": 1.0,
            "stats": None, "unstable": False, "engine_latency_ms": None, "crosscheck": None}
    if status == "ok":
        cell["stats"] = summarize(samples, batch)
    return cell


def make_bench(seed: int = 0, *, runtimes=("onnxruntime", "openvino"), batches=(1, 64, 256),
               models=("dense", "structured", "unstructured"), n: int = 200, slowdown: float = 1.0) -> dict:
    """A bench.json document; ``slowdown`` multiplies every latency (to make a regression)."""
    rng = np.random.default_rng(seed)
    cells, comparisons = [], []
    for runtime in runtimes:
        for batch in batches:
            by_model = {}
            for model in models:
                median = dense_latency_ms(runtime, batch) / true_speedup(model, batch) * slowdown
                by_model[model] = make_cell(model, runtime, batch, draw_samples(rng, median, n))
                cells.append(by_model[model])
            for model in models:
                if model == "dense":
                    continue
                speedup, low, high = speedup_interval(by_model["dense"]["samples_ms"], by_model[model]["samples_ms"])
                ideal = mlp_flops(WIDTHS["dense"]) / mlp_flops(WIDTHS[model])
                nonzero_ideal = mlp_flops(WIDTHS["dense"]) / (mlp_flops(WIDTHS[model]) * model_info(model)["nonzero_params"]
                                                              / model_info(model)["params"])
                comparisons.append({"model": model, "baseline": "dense", "runtime": runtime, "batch": batch,
                                    "threads": 1, "mode": "latency", "settings": {}, "speedup": speedup, "ci_low": low,
                                    "ci_high": high, "confidence": 0.95, "ideal_speedup": ideal,
                                    "nonzero_ideal_speedup": nonzero_ideal, "efficiency": speedup / ideal,
                                    "verdict": verdict(speedup, low, high), "p50_speedup": speedup, "threshold": 0.05,
                                    "baseline_p50_ms": by_model["dense"]["stats"]["p50_ms"],
                                    "model_p50_ms": by_model[model]["stats"]["p50_ms"]})
    return {"schema_version": 1, "tool": "slimdeploy 0.1.0", "created": "2026-11-20T10:00:00+00:00", "complete": True,
            "environment": environment.describe(),
            "config": {"runtimes": list(runtimes), "batches": list(batches), "threads": [1], "mode": "latency",
                       "min_iters": n, "min_time": 1.0, "baseline_model": "dense", "confidence": 0.95},
            "models": {m: model_info(m) for m in models},
            "cells": cells, "comparisons": comparisons,
            "runtimes": {**{rt: {"available": True, "version": "1.0"} for rt in runtimes},
                         "tensorrt": {"available": False, "reason": "tensorrt is not installed and no NVIDIA GPU was found"}}}


def make_lottery(mode: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed + (1 if mode == "structured" else 2))
    dense = model_info("dense")
    rounds = []
    structured_widths = ((300, 150), (228, 114), (173, 87), (131, 66), (99, 49), (75, 37))
    for k, remaining in enumerate((1.0, 0.64, 0.41, 0.26, 0.17, 0.107)):
        if mode == "structured":
            widths = [*structured_widths[k], 10]
            params = mlp_params(widths)
            nonzero, flops = params, mlp_flops(widths)
        else:
            widths, params = WIDTHS["dense"], dense["params"]
            nonzero, flops = int(params * remaining), dense["flops"]
        accuracy = 0.864 - 0.006 * (1 - remaining) + rng.normal(0, 0.0007)
        # The sizes every round and control records (lottery.json's Round).
        sizes = {"params": params, "nonzero_params": nonzero, "params_fraction": params / dense["params"], "flops": flops,
                 "nonzero_flops": flops, "weights_remaining": nonzero / dense["params"], "zero_weights": params - nonzero,
                 "prunable_weights": params, "widths": widths}
        controls = {} if k == 0 else {"controls": {
            "random_init": {**sizes, "val_accuracy": accuracy - 0.004 * k, "test_accuracy": accuracy - 0.004 * k},
            "finetune": {**sizes, "val_accuracy": accuracy + 0.001, "test_accuracy": accuracy + 0.001},
        }}
        rounds.append({"round": k, **sizes, "val_accuracy": accuracy + 0.002, "test_accuracy": accuracy,
                       "test_accuracy_std": 0.0015, "seconds": 3.0, "path": f"round_{k}/model.keras", **controls})
    final = rounds[-1]
    resets = {"init": {"val_accuracy": final["val_accuracy"], "test_accuracy": final["test_accuracy"], "test_accuracy_std": 0.0015},
              **{name: {"val_accuracy": values["val_accuracy"], "test_accuracy": values["test_accuracy"],
                        "test_accuracy_std": 0.002} for name, values in final["controls"].items()},
              "winner": "finetune", "winner_by_test": "finetune"}
    return {"schema_version": 1, "mode": mode, "complete": True, "settings": {"rounds": 5, "target": 0.1, "reset": "init"},
            "rate": 0.36, "seeds": [seed, seed + 1],
            "dense": {**{k: dense[k] for k in ("params", "flops", "widths")}, "test_accuracy": 0.864, "val_accuracy": 0.87},
            "prunable": ["dense", "dense_1"], "unprunable": [{"layer": "dense_2", "reason": "output layer"}],
            "rounds": rounds, "accuracy_drop": {"threshold_points": 0.5, "first_round_beyond": None},
            "ticket": {"round": 5, "path": "ticket.keras", "reason": "final round"},
            "resets": resets, "versions": environment.library_versions()}


def make_export(models=("dense", "structured", "unstructured")) -> dict:
    artifacts = []
    for model in models:
        info = model_info(model)
        for target in ("onnx", "openvino"):
            raw = info["params"] * 4 + 2000
            artifacts.append({
                "model": model, "source": f"{model}/model.keras", "target": target, "path": f"{model}{SUFFIX[target]}",
                "files": [f"{model}{SUFFIX[target]}"], "precision": "fp32", "inference_precision": "f32",
                "input_name": "input", "input_shape": [None, 28, 28], "bytes": raw,
                "gzip_bytes": int(raw * (0.2 if model == "unstructured" else 0.92)), "sha256": "0" * 64,
                "params": info["params"], "nonzero_params": info["nonzero_params"], "flops": info["flops"],
                "max_abs_diff": 1.4e-6, "mean_abs_diff": 2e-7, "top1_agreement": 1.0,
                "test_accuracy": info["test_accuracy"] - (0.0002 if target == "openvino" else 0.0),
                "keras_test_accuracy": info["test_accuracy"], "tolerance": 1e-4, "valid": True, "error": None,
                "seconds": 1.2, "versions": {}})
    return {"schema_version": 1, "settings": {}, "environment": environment.describe(), "artifacts": artifacts,
            "skipped": [{"target": "tensorrt", "reason": "tensorrt is not installed and no NVIDIA GPU was found"}]}


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


def write_run(run_dir: Path, seed: int = 0, *, bench: bool = True, lottery: bool = True, export: bool = True) -> Path:
    """A run directory as the stages leave it (without the model files the report never reads)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "dense" / "metrics.json",
               {"model": "dense", "test_accuracy": 0.864, "val_accuracy": 0.87, "params": model_info("dense")["params"],
                "flops": model_info("dense")["flops"], "epochs": 10, "seed": seed, "recipe": {"name": "fashion_mlp"}})
    if bench:
        write_json(run_dir / "bench.json", make_bench(seed))
    if lottery:
        for mode in ("structured", "unstructured"):
            write_json(run_dir / mode / "lottery.json", make_lottery(mode, seed))
    if export:
        write_json(run_dir / "exports" / "export.json", make_export())
    return run_dir


# --- the inputs themselves load, and behave as the tests assume ---------------------------

def test_generated_bench_follows_the_bench_schema():
    """The contract with `slimdeploy bench`: the JSON Schema generated from its record."""
    import jsonschema

    from slimdeploy.bench.results import schema

    jsonschema.Draft202012Validator(schema()).validate(make_bench(0))

def test_generated_run_loads(tmp_path):
    from slimdeploy.report.load import load_source

    inputs = load_source(write_run(tmp_path / "run"))
    assert inputs.bench is not None and inputs.export is not None
    assert set(inputs.lotteries) == {"structured", "unstructured"}
    assert len(inputs.ok_cells()) == 18
    assert inputs.notes == []


def test_generated_verdicts_follow_the_true_speedups():
    bench = make_bench(0)
    verdicts = {(c["model"], c["runtime"], c["batch"]): c["verdict"] for c in bench["comparisons"]}
    assert all(v == "faster" for (m, _, _), v in verdicts.items() if m == "structured")
    assert all(v == "no significant difference" for (m, _, _), v in verdicts.items() if m == "unstructured")
