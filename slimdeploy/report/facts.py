"""The numbers a report shows, derived from the run's records: every view reads these helpers, so
they cannot disagree about a model's score or which comparison belongs to which runtime."""

from __future__ import annotations

from collections import defaultdict

from slimdeploy.bench import cellkey, stats
from slimdeploy.bench.cellkey import CellKey
from slimdeploy.bench.compare import ALIGNED_WIDTHS, INT8_ON_PRUNED, PRUNING_ON_INT8, SPARSE_KERNEL, VS_BASELINE  # noqa: F401 (re-exported)
from slimdeploy.export.registry import display_name as target_name, verifying_runtime  # noqa: F401 (re-exported)
from slimdeploy.export.settings import INT8_VARIANT_SUFFIX
from slimdeploy.prune.ticket import aligned_multiple, ticket_entry
from slimdeploy.records.base import ABSENT, present  # noqa: F401 (present re-exported)
from slimdeploy.records.bench import Cell, Comparison
from slimdeploy.report.load import ReportInputs
from slimdeploy.rundir import MODES, aligned_model_name
from slimdeploy.runtimes.registry import display_name as runtime_name
from slimdeploy.tasks import Task

BASELINE = "dense"


def fmt_pct(value) -> str:
    value = number(value)
    return "–" if value is None else f"{value * 100:.2f}%"


def fmt_score(task: Task, value) -> str:
    return task.format(number(value))


def number(value) -> float | None:
    """A number as a float; None for anything else (None, ABSENT, a bool)."""
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)


def fields(record, *names: str) -> dict:
    return {name: getattr(record, name) for name in names}


def reset_label(reset: str | None) -> str:
    """How a ticket's surviving weights were reset: θ0 (init), rewind:K, ..."""
    reset = str(reset or "init")
    return "θ0" if reset == "init" else reset


def confidence(inputs: ReportInputs) -> float:
    """The level of the speedup intervals, as the bench file states it (95% by default)."""
    for comparison in inputs.comparisons:
        if number(comparison.confidence):
            return number(comparison.confidence)
    return number(inputs.bench.config.confidence if inputs.bench else None) or 0.95


def rule_text(comparisons: list[Comparison]) -> str:
    """How these comparisons' speedups and verdicts were made (files before ``p50_speedup``: the older rule)."""
    thresholds = {number(c.threshold) for c in comparisons} - {None}
    threshold = thresholds.pop() if len(thresholds) == 1 else stats.DEFAULT_THRESHOLD
    if any(c.p50_speedup is ABSENT for c in comparisons):
        return stats.rule_text(threshold, stats.LEGACY_RULE)
    return stats.rule_text(threshold, stats.PAIRED_RULE if all(c.rounds for c in comparisons) else stats.MEDIANS_RULE)


def models(inputs: ReportInputs) -> dict[str, dict]:
    """Everything known about each model. Later sources win: dense metrics < export < lottery < bench."""
    merged: dict[str, dict] = defaultdict(dict)

    def put(name: str, values: dict):
        for key, value in values.items():
            if value is not None and value is not ABSENT:
                merged[name][key] = value

    m = inputs.dense_metrics
    if m is not None:
        put(BASELINE, fields(m, "params", "flops", "test_accuracy", "val_accuracy"))
        put(BASELINE, {"nonzero_params": m.params})
    for artifact in inputs.export.artifacts if inputs.export else []:
        if artifact.model:
            put(artifact.model, fields(artifact, "params", "nonzero_params", "flops", "variant_of", "precision"))
            # An INT8 variant's keras_test_accuracy is its float model's: it has no Keras score of its own.
            if "test_accuracy" not in merged[artifact.model] and not artifact.variant_of:
                put(artifact.model, {"test_accuracy": artifact.keras_test_accuracy})
    for mode, lottery in inputs.lotteries.items():
        dense = lottery.dense
        put(BASELINE, fields(dense, "params", "flops", "widths"))
        put(BASELINE, {"test_accuracy": number(dense.test_accuracy), "val_accuracy": number(dense.val_accuracy)})
        # The ticket, and the aligned candidates exported and benchmarked as <mode>-rN; the lottery's
        # own dense model (its seeds) is the fair reference for them.
        entries = [(mode, ticket_entry(lottery, final_round_otherwise=True))] + [(aligned_model_name(mode, aligned_multiple(str(c.name))), c)
                                                     for c in lottery.candidates or [] if c.kind == "aligned"]
        for name, entry in entries:
            if entry is None:
                continue
            ticket = name == mode
            put(name, fields(entry, "params", "nonzero_params", "flops", "nonzero_flops", "widths"))
            put(name, {k: number(getattr(entry, k)) for k in ("test_accuracy", "val_accuracy", "weights_remaining")[:3 if ticket else 2]})
            put(name, {"round": entry.round if ticket else None, "dense_test_accuracy": number(dense.test_accuracy)})
    for name, info in (inputs.bench.models if inputs.bench else {}).items():
        if number(info.test_accuracy) not in (None, merged[name].get("test_accuracy")):
            merged[name].pop("dense_test_accuracy", None)
        put(name, {k: (number(v) if k.endswith("accuracy") else v) for k, v in info.to_json().items()})
    for cell in inputs.cells:
        merged[cell.model]  # a model measured but described nowhere still gets a row
    dense_params = merged.get(BASELINE, {}).get("params")
    for info in merged.values():
        # From the counts shown beside it when known, so the row agrees with itself.
        kept = info.get("nonzero_params", info.get("params"))
        if kept is not None and dense_params:
            info["weights_remaining"] = kept / dense_params
    return dict(sorted(merged.items(), key=lambda item: model_order(item[0])))


# Float models first, then their INT8 variants in the same order.
MODEL_ORDER = (BASELINE, *MODES, *(f"{name}{INT8_VARIANT_SUFFIX}" for name in (BASELINE, *MODES)))


def model_order(name: str):
    return (MODEL_ORDER.index(name) if name in MODEL_ORDER else len(MODEL_ORDER), name)


def keras_runtime() -> str:
    """The runtime a Keras model's own score is recorded under (export.json's legacy "keras" target)."""
    return verifying_runtime("keras")


def runtime_accuracy(inputs: ReportInputs) -> dict[tuple[str, str], float]:
    """(model, runtime) -> test score of the exported file that runtime ran."""
    accuracy: dict[tuple[str, str], float] = {}
    for artifact in inputs.export.artifacts if inputs.export else []:
        model = artifact.model
        runtime = verifying_runtime(artifact.target) or artifact.target
        value = number(artifact.test_accuracy)
        if model and runtime and value is not None and artifact.valid in (True, None):
            accuracy[(model, runtime)] = value
        keras = number(artifact.keras_test_accuracy)
        if model and keras is not None and not artifact.variant_of:  # a variant's is its float model's
            accuracy.setdefault((model, keras_runtime()), keras)
    # bench.json's own record, for a bench file without its export.json.
    for model, info in (inputs.bench.models if inputs.bench else {}).items():
        for runtime, value in (info.runtime_test_accuracy or {}).items():
            if number(value) is not None:
                accuracy.setdefault((model, runtime), number(value))
    return accuracy


def score(model: str, info: dict[str, dict]) -> float | None:
    """A model's (Keras) test score, from ``models``."""
    return number(info.get(model, {}).get("test_accuracy"))


def dense_accuracy_for(model: str, info: dict[str, dict]) -> float | None:
    """The dense score a model's (Keras) score should be compared with."""
    own = number(info.get(model, {}).get("dense_test_accuracy"))
    return own if own is not None else score(BASELINE, info)


def accuracy_of(model: str, runtime: str | None, info: dict[str, dict], by_runtime: dict) -> float | None:
    if runtime is not None and (model, runtime) in by_runtime:
        return by_runtime[(model, runtime)]
    return score(model, info)


def p50(cell: Cell) -> float:
    return cell.stats.p50_ms


def sample_count(cell: Cell) -> int:
    return len(cell.samples_ms) if cell.stats.n is None else cell.stats.n


def comparison_groups(inputs: ReportInputs) -> dict[tuple[str, str, str], list[Comparison]]:
    """(runtime, model, baseline) -> its comparisons, ordered by threads, mode and batch."""
    groups: dict[tuple[str, str, str], list[Comparison]] = defaultdict(list)
    for c in inputs.comparisons:
        groups[(c.runtime, c.model, c.baseline)].append(c)
    for items in groups.values():
        items.sort(key=lambda c: (c.threads or 0, str(c.mode), settings_text(c), c.batch))
    return dict(sorted(groups.items(), key=lambda item: (item[0][0], model_order(item[0][1]))))


def settings_text(record: Cell | Comparison | cellkey.CellKey) -> str:
    """A cell's runtime settings as 'key=value,...' ('' when none)."""
    return cellkey.settings_text(dict(record.settings or {}))


# What a benchmark may vary besides model, runtime and batch: a table shows a column for each it varied.
VARIED = ("threads", "mode", "settings")
VARIED_HEADERS = ("Threads", "Mode", "Settings")


def varying(records: list, name: str) -> bool:
    if name == "settings":
        return len({settings_text(r) for r in records}) > 1
    return len({getattr(r, name) for r in records}) > 1


def varied(records: list) -> tuple[bool, bool, bool]:
    return tuple(varying(records, name) for name in VARIED)


def optional(vary, items) -> list:
    """The items (one per ``VARIED``) whose flag in ``vary`` is set."""
    return [item for flag, item in zip(vary, items) if flag]


def varied_values(record) -> tuple[str, str, str]:
    return str(record.threads), str(record.mode), settings_text(record) or "–"


def cell_label(record: Cell | Comparison, *, threads: bool, mode: bool, settings: bool = False) -> str:
    """'batch 64', plus threads, mode and settings only when the benchmark varied them."""
    return CellKey.of(record).label(threads=threads, mode=mode, settings=settings)


def variant_of(model: str, info: dict[str, dict]) -> str | None:
    """The float model an INT8 variant was quantized from (None for a float model)."""
    value = info.get(model, {}).get("variant_of")
    return str(value) if value else None


def question(comparison: Comparison, info: dict[str, dict]) -> str:
    """The comparison's question (bench.compare), inferred from the models when an older file does not say."""
    if comparison.question:
        return str(comparison.question)
    model, baseline = comparison.model, comparison.baseline
    if baseline == BASELINE:
        return VS_BASELINE
    if variant_of(model, info) == baseline:
        return INT8_ON_PRUNED
    if variant_of(baseline, info) and variant_of(model, info):
        return PRUNING_ON_INT8
    return VS_BASELINE


def vs_dense_comparison(inputs: ReportInputs, cell: Cell) -> Comparison | None:
    """The bench's comparison of this cell's model with dense in the same runtime, batch and settings."""
    key = CellKey.of(cell)
    return next((c for c in inputs.comparisons if c.baseline == BASELINE and CellKey.of(c) == key), None)


def vs_dense_groups(inputs: ReportInputs) -> dict[tuple[str, str, str], list[Comparison]]:
    """The comparison groups that set a model against dense (what the per-model sentences say)."""
    return {key: comps for key, comps in comparison_groups(inputs).items() if key[2] == BASELINE}


def cell_groups(inputs: ReportInputs) -> dict[tuple, list[Cell]]:
    """(runtime, threads, mode, settings text) -> its measured cells: the models raced against each other."""
    groups: dict[tuple, list[Cell]] = defaultdict(list)
    for cell in inputs.ok_cells():
        groups[(cell.runtime, cell.threads or 0, str(cell.mode), settings_text(cell))].append(cell)
    return dict(sorted(groups.items()))


def accuracy_latency_panels(inputs: ReportInputs, max_drop: float) -> list[dict]:
    """Per runtime (and threads/mode/settings when they varied): each model's median latency at the
    largest batch measured beside its test score in that runtime, and the budget (``Task.budget_floor``)."""
    info = models(inputs)
    by_runtime = runtime_accuracy(inputs)
    groups = cell_groups(inputs)
    several = {rt for rt in {k[0] for k in groups} if sum(k[0] == rt for k in groups) > 1}
    panels = []
    for (runtime, threads, mode, options), cells in groups.items():
        batch = max(c.batch for c in cells)
        points = []
        for cell in sorted((c for c in cells if c.batch == batch), key=lambda c: model_order(c.model)):
            accuracy = accuracy_of(cell.model, runtime, info, by_runtime)
            if accuracy is not None:
                points.append({"model": cell.model, "p50_ms": p50(cell), "accuracy": accuracy,
                               "base": variant_of(cell.model, info) or cell.model})
        dense = accuracy_of(BASELINE, runtime, info, by_runtime)
        title = runtime_name(runtime) + (f" ({threads}t, {mode}{', ' + options if options else ''})" if runtime in several else "")
        panels.append({"title": title, "runtime": runtime, "batch": batch, "max_drop": max_drop, "points": points,
                       "budget": None if dense is None else inputs.task.budget_floor(dense, max_drop)})
    return panels
