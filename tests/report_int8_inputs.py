"""Schema-conforming run files with INT8 variants, for the report tests (extends test_report_inputs).

Six variants race in each runtime: dense, structured, unstructured and their INT8 variants.
Latency samples are seeded draws around chosen medians, and the comparisons (speedup,
interval, verdict) are computed by slimdeploy.bench.stats as the bench stage does, so the
verdicts a test asserts come from the same code as a real run's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_report_inputs import (SUFFIX, WIDTHS, dense_latency_ms, draw_samples, make_bench, make_cell, make_export,
                                mlp_flops, model_info, true_speedup, write_json, write_run)

from slimdeploy.bench.stats import speedup_interval, verdict

INT8 = ("dense-int8", "structured-int8", "unstructured-int8")
VARIANTS = ("dense", "structured", "unstructured", *INT8)
BASE = {"dense-int8": "dense", "structured-int8": "structured", "unstructured-int8": "unstructured"}
# Accuracy points below dense in every runtime: unstructured-int8 is fast but 2 points worse.
POINTS_BELOW_DENSE = {"dense": 0.0, "structured": 0.20, "unstructured": 0.10, "dense-int8": 0.05,
                      "structured-int8": 0.35, "unstructured-int8": 2.0}
DENSE_ACCURACY = {"onnxruntime": 0.8640, "openvino": 0.8638}
# INT8 on top of structured pruning: faster at batch 1, the same at 64, slower at 256.
STRUCTURED_INT8_OVER_STRUCTURED = {1: 0.6, 64: 1.0, 256: 1.3}
IDEAL_ASSUMES = "FLOP ratio only: no INT8 speedup is assumed"
NO_AMX = "the CPU has no AMX: OpenVINO's sparse INT8 kernel needs it"


def accuracy(model: str, runtime: str) -> float:
    return round(DENSE_ACCURACY[runtime] - POINTS_BELOW_DENSE[model] / 100, 6)


def int8_speedup(model: str, batch: int) -> float:
    """True speedup over dense: INT8 alone 1.8x; unstructured-int8 5x (the fastest of all)."""
    if model == "dense-int8":
        return 1.8
    if model == "structured-int8":
        return true_speedup("structured", batch) / STRUCTURED_INT8_OVER_STRUCTURED.get(batch, 1.0)
    if model in ("unstructured-int8", "unstructured-int8-sparse"):
        return 5.0
    return true_speedup(model, batch)


def comparison(model: str, baseline: str, cells: dict, question: str) -> dict:
    cell, base = cells[model], cells[baseline]
    speedup, low, high = speedup_interval(base["samples_ms"], cell["samples_ms"])
    ideal = mlp_flops(WIDTHS[BASE.get(baseline, baseline)]) / mlp_flops(WIDTHS[BASE.get(model, model).replace("-int8-sparse", "")])
    record = {"model": model, "baseline": baseline, "runtime": cell["runtime"], "batch": cell["batch"], "threads": 1,
              "mode": "latency", "settings": {}, "question": question, "speedup": speedup, "ci_low": low, "ci_high": high,
              "confidence": 0.95, "ideal_speedup": ideal, "efficiency": speedup / ideal, "verdict": verdict(speedup, low, high),
              "p50_speedup": speedup, "threshold": 0.05, "baseline_p50_ms": base["stats"]["p50_ms"], "model_p50_ms": cell["stats"]["p50_ms"]}
    if "int8" in model:
        record["ideal_assumes"] = IDEAL_ASSUMES
    return record


def bench_model_info(model: str, runtimes) -> dict:
    base = BASE.get(model, model)
    info = {k: v for k, v in model_info(base).items() if k != "test_accuracy"}
    info["precision"] = "int8" if model in BASE else "fp32"
    if model in BASE:
        info["variant_of"] = base
    else:
        info["test_accuracy"] = accuracy(model, "onnxruntime")
    info["runtime_test_accuracy"] = {rt: accuracy(model, rt) for rt in runtimes}
    return info


def make_int8_bench(seed: int = 0, *, runtimes=("onnxruntime", "openvino"), batches=(1, 64, 256), n: int = 200,
                    sparse: bool = False) -> dict:
    """bench.json of the six variants, every comparison the INT8 bench makes, and sparse_int8."""
    doc = make_bench(seed, runtimes=runtimes, batches=batches, models=("dense",), n=n)
    rng = np.random.default_rng(seed + 100)
    cells, comparisons = [], []
    for runtime in runtimes:
        for batch in batches:
            models = VARIANTS + (("unstructured-int8-sparse",) if sparse and runtime == "openvino" else ())
            by_model = {m: make_cell(m, runtime, batch, draw_samples(rng, dense_latency_ms(runtime, batch) / int8_speedup(m, batch), n))
                        for m in models}
            cells += by_model.values()
            comparisons += [comparison(m, "dense", by_model, "vs_baseline") for m in models if m not in ("dense", "unstructured-int8-sparse")]
            comparisons += [comparison(m, BASE[m], by_model, "int8_on_pruned") for m in ("structured-int8", "unstructured-int8")]
            comparisons += [comparison(m, "dense-int8", by_model, "pruning_on_int8") for m in ("structured-int8", "unstructured-int8")]
            if "unstructured-int8-sparse" in by_model:
                comparisons.append(comparison("unstructured-int8-sparse", "unstructured-int8", by_model, "sparse_kernel"))
    doc["cells"], doc["comparisons"] = cells, comparisons
    doc["models"] = {m: bench_model_info(m, runtimes) for m in VARIANTS}
    if sparse:
        doc["models"]["unstructured-int8-sparse"] = {**bench_model_info("unstructured-int8", runtimes), "variant_of": "unstructured"}
        doc["sparse_int8"] = {"applicable": True, "reason": "the CPU has AMX", "cpu": "test CPU", "rate": 0.9, "amx": True,
                              "models": ["unstructured-int8-sparse"]}
    else:
        doc["sparse_int8"] = {"applicable": False, "reason": NO_AMX}
    return doc


def make_int8_export() -> dict:
    """export.json with fp32 and INT8 artifacts (an INT8 file is about a quarter of its float one)."""
    doc = make_export()
    for artifact in doc["artifacts"]:
        artifact["test_accuracy"] = accuracy(artifact["model"], {"onnx": "onnxruntime", "openvino": "openvino"}[artifact["target"]])
    for model, base in BASE.items():
        for target, runtime in (("onnx", "onnxruntime"), ("openvino", "openvino")):
            float_artifact = next(a for a in doc["artifacts"] if (a["model"], a["target"]) == (base, target))
            raw = float_artifact["bytes"] // 4 + 3000
            name = f"{model}{SUFFIX[target]}"
            doc["artifacts"].append({
                **float_artifact, "model": model, "path": name, "files": [name], "precision": "int8",
                "inference_precision": "i8", "bytes": raw, "gzip_bytes": int(raw * 0.8), "max_abs_diff": 0.03,
                "mean_abs_diff": 0.004, "top1_agreement": 0.99, "test_accuracy": accuracy(model, runtime),
                "variant_of": base, "tolerance": None, "max_accuracy_drop": 0.01, "min_top1_agreement": 0.97,
                "calibration": {"samples": 1000, "requested": 1000, "from": "validation", "method": "minmax", "tool": "test"}})
    return doc


def write_int8_run(run_dir: Path, seed: int = 0, *, sparse: bool = False) -> Path:
    """A run directory after export --precision fp32,int8 and bench (model files left out: the report never reads them)."""
    write_run(run_dir, seed, bench=False, export=False)
    write_json(run_dir / "bench.json", make_int8_bench(seed, sparse=sparse))
    write_json(run_dir / "exports" / "export.json", make_int8_export())
    return run_dir
