"""The answer in plain words: how much faster each pruned model is, and what it costs.

One sentence per runtime and pruned model ("On ONNX Runtime, the structured model is
faster than dense at every batch size measured: ...; it costs 0.65 points of test
accuracy ...") and one short line over all runtimes. Markdown, HTML and report.json
all carry exactly these sentences.
"""

from __future__ import annotations

from slimdeploy.bench.stats import FASTER, NO_DIFFERENCE, SLOWER
from slimdeploy.report import facts
from slimdeploy.report.load import ReportInputs


def fmt_speedup(value: float) -> str:
    return f"{value:.2f}x"


def fmt_percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _batches(comps: list[dict], threads: bool, mode: bool, settings: bool = False) -> str:
    labels = [facts.cell_label(c, threads=threads, mode=mode, settings=settings) for c in comps]
    if not threads and not mode and not settings and len(labels) > 1:
        return "batch " + _join([str(c["batch"]) for c in comps])
    return _join(labels)


def speed_clause(comps: list[dict], baseline: str, threads: bool, mode: bool, settings: bool = False) -> str:
    by_verdict = {v: [c for c in comps if c["verdict"] == v] for v in (FASTER, SLOWER, NO_DIFFERENCE)}
    faster, slower, same = by_verdict[FASTER], by_verdict[SLOWER], by_verdict[NO_DIFFERENCE]
    if len(faster) == len(comps):
        return f"is faster than {baseline} at every batch size measured"
    if len(same) == len(comps):
        return f"is not measurably faster than {baseline} (no significant difference at any batch size)"
    if len(slower) == len(comps):
        return f"is slower than {baseline} at every batch size measured"
    parts = []
    if faster:
        parts.append(f"is faster than {baseline} at {_batches(faster, threads, mode, settings)}")
    if slower:
        parts.append(f"{'slower' if faster else f'is slower than {baseline}'} at {_batches(slower, threads, mode, settings)}")
    if same:
        parts.append(f"with no significant difference at {_batches(same, threads, mode, settings)}")
    return ", ".join(parts)


def interval_clause(comps: list[dict], level: float, threads: bool, mode: bool, settings: bool = False) -> str:
    pieces = []
    for index, c in enumerate(comps):
        where = facts.cell_label(c, threads=threads, mode=mode, settings=settings)
        interval = ""
        if c.get("ci_low") is not None and c.get("ci_high") is not None:
            prefix = f"{level * 100:.0f}% interval " if index == 0 else ""
            interval = f" ({prefix}{c['ci_low']:.2f}–{c['ci_high']:.2f}x)"
        pieces.append(f"{fmt_speedup(c['speedup'])} at {where}{interval}")
    return ", ".join(pieces)


def accuracy_clause(model_acc: float | None, base_acc: float | None, baseline: str) -> str:
    if model_acc is None or base_acc is None:
        return "its test accuracy was not measured in this run"
    points = (model_acc - base_acc) * 100
    compared = f"({fmt_percent(model_acc)} vs {fmt_percent(base_acc)} for {baseline})"
    if abs(points) < 0.005:
        return f"its test accuracy is unchanged {compared}"
    if points < 0:
        return f"it costs {-points:.2f} points of test accuracy {compared}"
    return f"its test accuracy is {points:.2f} points higher {compared}"


def runtime_sentences(inputs: ReportInputs) -> list[dict]:
    """One entry per (runtime, pruned model): the sentence and the numbers behind it."""
    info = facts.models(inputs)
    by_runtime = facts.runtime_accuracy(inputs)
    level = facts.confidence(inputs)
    sentences = []
    for (runtime, model, baseline), comps in facts.comparison_groups(inputs).items():
        # Name threads, mode or settings only where this runtime's cells differ in them.
        threads, mode, settings = (facts.varying(comps, k) for k in ("threads", "mode", "settings"))
        model_acc = facts.accuracy_of(model, runtime, info, by_runtime)
        base_acc = facts.accuracy_of(baseline, runtime, info, by_runtime)
        text = (
            f"On {facts.runtime_name(runtime)}, the {model} model {speed_clause(comps, baseline, threads, mode, settings)}: "
            f"{interval_clause(comps, level, threads, mode, settings)}; {accuracy_clause(model_acc, base_acc, baseline)}."
        )
        sentences.append({
            "runtime": runtime, "model": model, "baseline": baseline, "sentence": text,
            "verdicts": [c["verdict"] for c in comps],
            "accuracy": model_acc, "baseline_accuracy": base_acc,
            "accuracy_delta_points": None if model_acc is None or base_acc is None else (model_acc - base_acc) * 100,
        })
    return sentences


def in_short(inputs: ReportInputs) -> str:
    """One line over all runtimes: which pruned model is faster where, and its accuracy cost (shown after "In short:")."""
    groups = facts.comparison_groups(inputs)
    info = facts.models(inputs)
    if not groups:
        return _no_comparison(inputs, info)
    per_model: dict[tuple[str, str], list[tuple[str, list[dict]]]] = {}
    for (runtime, model, baseline), comps in groups.items():
        per_model.setdefault((model, baseline), []).append((runtime, comps))
    clauses = []
    for (model, baseline), runs in per_model.items():
        faster = [(rt, max(c["speedup"] for c in comps if c["verdict"] == FASTER))
                  for rt, comps in runs if any(c["verdict"] == FASTER for c in comps)]
        slower = [rt for rt, comps in runs if any(c["verdict"] == SLOWER for c in comps)]
        if faster:
            best = max(s for _, s in faster)
            where = "every runtime measured" if len(faster) == len(runs) else _join([facts.runtime_name(rt) for rt, _ in faster])
            speed = f"is faster than {baseline} on {where} (up to {fmt_speedup(best)})"
        elif slower:
            speed = f"is not faster than {baseline} on any runtime measured"
        else:
            speed = f"is not measurably faster than {baseline} on any runtime measured"
        if slower:
            speed += f", but slower on {_join([facts.runtime_name(rt) for rt in slower])} at some batch sizes"
        model_acc = facts.number(info.get(model, {}).get("test_accuracy"))
        base_acc = facts.dense_accuracy_for(model, info) if baseline == facts.BASELINE else facts.number(info.get(baseline, {}).get("test_accuracy"))
        clauses.append(f"the {model} model {speed}; {accuracy_clause(model_acc, base_acc, baseline)}")
    return "; ".join(clauses)[0].upper() + "; ".join(clauses)[1:] + "."


def _no_comparison(inputs: ReportInputs, info: dict) -> str:
    if inputs.bench is None:
        reason = "there are no benchmark results"
    elif not inputs.ok_cells():
        reason = "no benchmark cell ran successfully"
    else:
        reason = "the benchmark compared no pruned model with dense"
    accuracy = []
    for model, values in info.items():
        if model != facts.BASELINE and facts.number(values.get("test_accuracy")) is not None:
            base_acc = facts.dense_accuracy_for(model, info)
            accuracy.append(f"the {model} model: {accuracy_clause(facts.number(values['test_accuracy']), base_acc, facts.BASELINE)}")
    tail = ("; " + "; ".join(accuracy)) if accuracy else ""
    return f"Speed is not known because {reason}{tail}."
