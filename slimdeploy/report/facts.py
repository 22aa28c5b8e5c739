"""The numbers a report shows, derived from the run's files; no formatting here.

Every view (Markdown, HTML, JSON, CSV, plots) reads these helpers, so they cannot
disagree about a model's accuracy or which comparison belongs to which runtime.
"""

from __future__ import annotations

from collections import defaultdict

from slimdeploy.bench import cellkey
from slimdeploy.report.load import ReportInputs
from slimdeploy.runtimes.registry import display_name

# Which exported file each runtime runs, so its accuracy can be shown beside its speed.
TARGET_RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt", "keras": "tensorflow"}
TARGET_NAMES = {"onnx": "ONNX", "openvino": "OpenVINO IR", "tensorrt": "TensorRT engine", "keras": "Keras"}
BASELINE = "dense"


def runtime_name(runtime: str) -> str:
    return display_name(runtime)


def number(value) -> float | None:
    """A number, or the mean of a {"mean", "std"} summary (several seeds); None otherwise."""
    if isinstance(value, dict):
        value = value.get("mean")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def spread(record: dict, key: str) -> float | None:
    """The standard deviation across seeds of ``record[key]``, when the file has one."""
    value = record.get(key)
    if isinstance(value, dict):
        return number(value.get("std"))
    return number(record.get(f"{key}_std"))


def confidence(inputs: ReportInputs) -> float:
    """The level of the speedup intervals, as the bench file states it (95% by default)."""
    for comparison in (inputs.bench or {}).get("comparisons", []):
        if number(comparison.get("confidence")):
            return number(comparison["confidence"])
    return number(((inputs.bench or {}).get("config") or {}).get("confidence")) or 0.95


def models(inputs: ReportInputs) -> dict[str, dict]:
    """Everything known about each model. Later sources win: dense metrics < export < lottery < bench."""
    merged: dict[str, dict] = defaultdict(dict)

    def put(name: str, values: dict):
        for key, value in values.items():
            if value is not None:
                merged[name][key] = value

    if inputs.dense_metrics:
        m = inputs.dense_metrics
        put(BASELINE, {k: m.get(k) for k in ("params", "flops", "test_accuracy", "val_accuracy")})
        put(BASELINE, {"nonzero_params": m.get("params")})
    for artifact in (inputs.export or {}).get("artifacts", []):
        name = artifact.get("model")
        if name:
            put(name, {k: artifact.get(k) for k in ("params", "nonzero_params", "flops")})
            if "test_accuracy" not in merged[name]:
                put(name, {"test_accuracy": artifact.get("keras_test_accuracy")})
    for mode, lottery in inputs.lotteries.items():
        dense = lottery.get("dense") or {}
        put(BASELINE, {k: dense.get(k) for k in ("params", "flops", "widths")})
        put(BASELINE, {k: number(dense.get(k)) for k in ("test_accuracy", "val_accuracy")})
        ticket = ticket_round(lottery)
        if ticket is not None:
            put(mode, {k: ticket.get(k) for k in ("params", "nonzero_params", "flops", "nonzero_flops", "widths")})
            put(mode, {k: number(ticket.get(k)) for k in ("test_accuracy", "val_accuracy", "weights_remaining")})
            # The lottery's own dense model (its seeds) is the fair reference for its ticket.
            put(mode, {"round": ticket.get("round"), "dense_test_accuracy": number(dense.get("test_accuracy"))})
    for name, info in ((inputs.bench or {}).get("models") or {}).items():
        if isinstance(info, dict):
            if number(info.get("test_accuracy")) not in (None, merged[name].get("test_accuracy")):
                merged[name].pop("dense_test_accuracy", None)
            put(name, {k: (number(v) if k.endswith("accuracy") else v) for k, v in info.items()})
    for name in {c["model"] for c in (inputs.bench or {}).get("cells", [])}:
        merged[name]  # a model measured but described nowhere still gets a row
    dense_params = merged.get(BASELINE, {}).get("params")
    for name, info in merged.items():
        # From the counts shown beside it when known, so the row agrees with itself.
        kept = info.get("nonzero_params", info.get("params"))
        if kept is not None and dense_params:
            info["weights_remaining"] = kept / dense_params
    return dict(sorted(merged.items(), key=lambda item: model_order(item[0])))


def model_order(name: str):
    order = {BASELINE: 0, "structured": 1, "unstructured": 2}
    return (order.get(name, 3), name)


def ticket_round(lottery: dict) -> dict | None:
    rounds = [r for r in lottery.get("rounds", []) if isinstance(r, dict)]
    if not rounds:
        return None
    wanted = (lottery.get("ticket") or {}).get("round")
    for r in rounds:
        if wanted is not None and r.get("round") == wanted:
            return r
    return rounds[-1]


def runtime_accuracy(inputs: ReportInputs) -> dict[tuple[str, str], float]:
    """(model, runtime) -> test accuracy of the exported file that runtime ran."""
    accuracy: dict[tuple[str, str], float] = {}
    for artifact in (inputs.export or {}).get("artifacts", []):
        model, target = artifact.get("model"), artifact.get("target")
        runtime = TARGET_RUNTIMES.get(target, target)
        value = number(artifact.get("test_accuracy"))
        if model and runtime and value is not None and artifact.get("valid", True):
            accuracy[(model, runtime)] = value
        keras = number(artifact.get("keras_test_accuracy"))
        if model and keras is not None:
            accuracy.setdefault((model, "tensorflow"), keras)
    return accuracy


def dense_accuracy_for(model: str, info: dict[str, dict]) -> float | None:
    """The dense accuracy a model's (Keras) accuracy should be compared with."""
    own = number(info.get(model, {}).get("dense_test_accuracy"))
    return own if own is not None else number(info.get(BASELINE, {}).get("test_accuracy"))


def accuracy_of(model: str, runtime: str | None, info: dict[str, dict], by_runtime: dict) -> float | None:
    if runtime is not None and (model, runtime) in by_runtime:
        return by_runtime[(model, runtime)]
    return number(info.get(model, {}).get("test_accuracy"))


def comparison_groups(inputs: ReportInputs) -> dict[tuple[str, str, str], list[dict]]:
    """(runtime, model, baseline) -> its comparisons, ordered by threads, mode and batch."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for c in (inputs.bench or {}).get("comparisons", []):
        groups[(c["runtime"], c["model"], c.get("baseline", BASELINE))].append(c)
    for items in groups.values():
        items.sort(key=lambda c: (c.get("threads") or 0, str(c.get("mode")), settings_text(c), c["batch"]))
    return dict(sorted(groups.items(), key=lambda item: (item[0][0], model_order(item[0][1]))))


def settings_text(record: dict) -> str:
    """A cell's runtime settings as 'key=value,...' ('' when none)."""
    return cellkey.settings_text(record.get("settings"))


def varying(records: list[dict], key: str) -> bool:
    if key == "settings":
        return len({settings_text(r) for r in records}) > 1
    return len({r.get(key) for r in records}) > 1


def cell_label(record: dict, *, threads: bool, mode: bool, settings: bool = False) -> str:
    """'batch 64', plus threads, mode and settings only when the benchmark varied them."""
    return cellkey.CellKey.of(record).label(threads=threads, mode=mode, settings=settings)
