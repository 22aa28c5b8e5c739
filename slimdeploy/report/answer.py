"""The answer in plain words: which model to ship, how much faster each one is, and what it costs.

First the decision: per runtime, the fastest model within the budget (``max_drop`` of the task's
points below dense in that runtime) at the smallest and the largest batch measured; then whether
pruning and INT8 stacked and what the sparse INT8 kernel did; then one sentence per runtime and
pruned model, and one short line over all runtimes. Every view carries exactly these sentences.
"""

from __future__ import annotations

from collections import Counter

from slimdeploy.bench.stats import FASTER, NO_DIFFERENCE, SLOWER
from slimdeploy.records.bench import Cell, Comparison
from slimdeploy.report import facts, tickets
from slimdeploy.report.load import ReportInputs
from slimdeploy.tasks import DEFAULT_TASK, Task


def fmt_speedup(value: float) -> str:
    return f"{value:.2f}x"


def _join(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def _batches(comps: list[Comparison], threads: bool, mode: bool, settings: bool = False) -> str:
    labels = [facts.cell_label(c, threads=threads, mode=mode, settings=settings) for c in comps]
    if not threads and not mode and not settings and len(labels) > 1:
        return "batch " + _join([str(c.batch) for c in comps])
    return _join(labels)


def _by_verdict(comps: list[Comparison]) -> dict[str, list[Comparison]]:
    return {v: [c for c in comps if c.verdict == v] for v in (FASTER, SLOWER, NO_DIFFERENCE)}


def speed_clause(comps: list[Comparison], baseline: str, threads: bool, mode: bool, settings: bool = False) -> str:
    by_verdict = _by_verdict(comps)
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


def interval_clause(comps: list[Comparison], level: float, threads: bool, mode: bool, settings: bool = False) -> str:
    pieces = []
    for index, c in enumerate(comps):
        where = facts.cell_label(c, threads=threads, mode=mode, settings=settings)
        interval = ""
        if c.ci_low is not None and c.ci_high is not None:
            prefix = f"{level * 100:.0f}% interval " if index == 0 else ""
            interval = f" ({prefix}{c.ci_low:.2f}–{c.ci_high:.2f}x)"
        pieces.append(f"{fmt_speedup(c.speedup)} at {where}{interval}")
    return ", ".join(pieces)


def accuracy_clause(model_acc: float | None, base_acc: float | None, baseline: str, task: Task = DEFAULT_TASK) -> str:
    """What ``model_acc`` (the task's test score) costs against ``base_acc``, in the budget's points."""
    metric = f"test {task.metric_label}"
    if model_acc is None or base_acc is None:
        return f"its {metric} was not measured in this run"
    drop = task.points(task.drop(base_acc, model_acc))
    compared = f"({task.format(model_acc)} vs {task.format(base_acc)} for {baseline})"
    if abs(drop) < 0.005:
        return f"its {metric} is unchanged {compared}"
    if drop > 0:
        return f"it costs {task.format_points(drop, '.2f')} of {metric} {compared}"
    return f"its {metric} is {task.format_points(-drop, '.2f')} {task.better_word} {compared}"


def runtime_sentences(inputs: ReportInputs) -> list[dict]:
    """One entry per (runtime, pruned model): the sentence and the numbers behind it."""
    info = facts.models(inputs)
    by_runtime = facts.runtime_accuracy(inputs)
    level = facts.confidence(inputs)
    sentences = []
    for (runtime, model, baseline), comps in facts.vs_dense_groups(inputs).items():
        # Name threads, mode or settings only where this runtime's cells differ in them.
        threads, mode, settings = facts.varied(comps)
        model_acc = facts.accuracy_of(model, runtime, info, by_runtime)
        base_acc = facts.accuracy_of(baseline, runtime, info, by_runtime)
        text = (
            f"On {facts.runtime_name(runtime)}, the {model} model {speed_clause(comps, baseline, threads, mode, settings)}: "
            f"{interval_clause(comps, level, threads, mode, settings)}; "
            f"{accuracy_clause(model_acc, base_acc, baseline, inputs.task)}."
        )
        sentences.append({
            "runtime": runtime, "model": model, "baseline": baseline, "sentence": text,
            "verdicts": [c.verdict for c in comps],
            "accuracy": model_acc, "baseline_accuracy": base_acc,
            "accuracy_delta_points": None if model_acc is None or base_acc is None else inputs.task.points(model_acc - base_acc),
        })
    return sentences


def sentences(inputs: ReportInputs) -> list[str]:
    return [s["sentence"] for s in runtime_sentences(inputs)]


def in_short(inputs: ReportInputs) -> str:
    """One line over all runtimes (after "In short:"): which pruned model is faster where, and what it costs."""
    info = facts.models(inputs)
    # The float models: the decision above already weighs the INT8 variants.
    groups = {key: comps for key, comps in facts.vs_dense_groups(inputs).items() if not facts.variant_of(key[1], info)}
    if not groups:
        return _no_comparison(inputs, info)
    per_model: dict[tuple[str, str], list[tuple[str, list[Comparison]]]] = {}
    for (runtime, model, baseline), comps in groups.items():
        per_model.setdefault((model, baseline), []).append((runtime, comps))
    clauses = []
    for (model, baseline), runs in per_model.items():
        faster = [(rt, max(c.speedup for c in comps if c.verdict == FASTER))
                  for rt, comps in runs if any(c.verdict == FASTER for c in comps)]
        slower = [rt for rt, comps in runs if any(c.verdict == SLOWER for c in comps)]
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
        model_acc = facts.score(model, info)
        base_acc = facts.dense_accuracy_for(model, info) if baseline == facts.BASELINE else facts.score(baseline, info)
        clauses.append(f"the {model} model {speed}; {accuracy_clause(model_acc, base_acc, baseline, inputs.task)}")
    return "; ".join(clauses)[0].upper() + "; ".join(clauses)[1:] + "."


def _no_comparison(inputs: ReportInputs, info: dict) -> str:
    if inputs.bench is None:
        reason = "there are no benchmark results"
    elif not inputs.ok_cells():
        reason = "no benchmark cell ran successfully"
    else:
        reason = "the benchmark compared no pruned model with dense"
    accuracy = [f"the {model} model: "
                + accuracy_clause(facts.score(model, info), facts.dense_accuracy_for(model, info), facts.BASELINE, inputs.task)
                for model in info if model != facts.BASELINE and facts.score(model, info) is not None]
    return f"Speed is not known because {reason}{''.join('; ' + clause for clause in accuracy)}."


def _group_label(key: tuple, several: bool) -> str:
    """' (4 threads, throughput mode)' when a runtime was measured in several ways, else ''."""
    if not several:
        return ""
    _, threads, mode, options = key
    words = [f"{threads} thread{'s' if threads != 1 else ''}", f"{mode} mode"] + ([options] if options else [])
    return f" ({', '.join(words)})"


def decisions(inputs: ReportInputs, max_drop: float) -> list[dict]:
    """Per runtime (and threads/mode/settings when they varied): the fastest model within budget
    at the smallest and at the largest batch measured, with the numbers behind the sentence."""
    info = facts.models(inputs)
    by_runtime = facts.runtime_accuracy(inputs)
    groups = facts.cell_groups(inputs)
    per_runtime = Counter(runtime for runtime, *_ in groups)
    out = []
    for key, cells in groups.items():
        runtime = key[0]
        accuracy = {m: facts.accuracy_of(m, runtime, info, by_runtime) for m in {c.model for c in cells}}
        where = f"On {facts.runtime_name(runtime)}{_group_label(key, per_runtime[runtime] > 1)}"
        picks = [_fastest_at(inputs, cells, batch, accuracy, max_drop) for batch in _end_batches(cells)]
        out.append({"runtime": runtime, "threads": key[1], "mode": key[2], "settings": key[3], "max_drop": max_drop,
                    "dense_accuracy": accuracy.get(facts.BASELINE), "picks": picks,
                    "sentence": _decision_sentence(where, picks, accuracy, max_drop, inputs.task)})
    return out


def _end_batches(cells: list[Cell]) -> list[int]:
    batches = sorted({int(c.batch) for c in cells})
    return batches[:1] + batches[-1:] if len(batches) > 1 else batches


def within_budget(model_acc: float | None, dense_acc: float | None, max_drop: float, task: Task = DEFAULT_TASK) -> bool:
    # A hair of slack so that exactly max_drop points below still counts despite float rounding.
    return (model_acc is not None and dense_acc is not None
            and task.within_budget(task.points(task.drop(dense_acc, model_acc)), max_drop + 1e-9))


def _fastest_at(inputs: ReportInputs, cells: list[Cell], batch: int, accuracy: dict, max_drop: float) -> dict:
    """The fastest (median latency) model at one batch among those within budget, and who was faster but not."""
    here = sorted((c for c in cells if c.batch == batch), key=facts.p50)
    dense_acc = accuracy.get(facts.BASELINE)
    dense = next((c for c in here if c.model == facts.BASELINE), None)
    # A model displaces dense only when the bench found it faster: a median a hair lower is noise.
    allowed = [c for c in here if c.model == facts.BASELINE or (
        within_budget(accuracy.get(c.model), dense_acc, max_drop, inputs.task) and _beats_dense(inputs, c, dense))]
    best = allowed[0] if allowed else None
    faster_out = [c.model for c in here if best is not None and facts.p50(c) < facts.p50(best)
                  and not within_budget(accuracy.get(c.model), dense_acc, max_drop, inputs.task)]
    return {"batch": batch, "model": best.model if best else None, "p50_ms": facts.p50(best) if best else None,
            "speedup": _speedup_vs_dense(inputs, best, dense),
            "accuracy": accuracy.get(best.model) if best else None, "faster_outside_budget": faster_out}


def _beats_dense(inputs: ReportInputs, cell: Cell, dense: Cell | None) -> bool:
    comparison = facts.vs_dense_comparison(inputs, cell)
    if comparison is not None:
        return comparison.verdict == FASTER
    return dense is not None and facts.p50(cell) < facts.p50(dense)  # no comparison: the medians


def _speedup_vs_dense(inputs: ReportInputs, cell: Cell | None, dense: Cell | None) -> float | None:
    """The bench's own comparison when it made one, else the ratio of the two medians."""
    if cell is None or dense is None or cell.model == facts.BASELINE:
        return None
    comparison = facts.vs_dense_comparison(inputs, cell)
    if comparison is not None and facts.number(comparison.speedup) is not None:
        return facts.number(comparison.speedup)
    return facts.p50(dense) / facts.p50(cell)


def _decision_sentence(where: str, picks: list[dict], accuracy: dict, max_drop: float, task: Task) -> str:
    dense_acc = accuracy.get(facts.BASELINE)
    budget = f"within {task.format_points(max_drop)} of dense's {task.metric_label}"
    if dense_acc is None:
        return (f"{where}, the fastest model within the {task.metric_label} budget cannot be named: "
                f"dense's test {task.metric_label} in this runtime is not known.")
    if all(p["model"] == facts.BASELINE for p in picks):
        others = [m for m in accuracy if m != facts.BASELINE]
        fits = [m for m in others if within_budget(accuracy[m], dense_acc, max_drop, task)]
        why = ("no other model stays " + budget + f" ({task.format(dense_acc)})") if not fits else (
            "no model " + budget + " is measurably faster")
        return f"{where}, only dense qualifies: {why}{_outside_clause(picks, accuracy, dense_acc, task)}."
    one_model = len({p["model"] for p in picks}) == 1
    parts = []
    for index, pick in enumerate(picks):
        if pick["model"] == facts.BASELINE:
            parts.append(f"dense itself at batch {pick['batch']}")
            continue
        speed = f"{fmt_speedup(pick['speedup'])} dense" if pick["speedup"] is not None else "speedup not measured"
        acc = f", {task.format(pick['accuracy'])} vs {task.format(dense_acc)}"
        if one_model:  # name it once, its accuracy once
            parts.append(f"{pick['model'] + ' ' if index == 0 else ''}at batch {pick['batch']} ({speed}"
                         f"{acc if index == len(picks) - 1 else ''})")
        else:
            parts.append(f"{pick['model']} at batch {pick['batch']} ({speed}{acc})")
    return f"{where}, the fastest model {budget} is {_join(parts)}{_outside_clause(picks, accuracy, dense_acc, task)}."


def _outside_clause(picks: list[dict], accuracy: dict, dense_acc: float, task: Task) -> str:
    """Who was faster but cost too much of the metric, so a reader sees why it was not chosen."""
    seen = list(dict.fromkeys(m for p in picks for m in p["faster_outside_budget"]))
    if not seen:
        return ""
    words = [f"{m} ({task.format_points(task.points(task.drop(dense_acc, accuracy[m])), '.2f')} below dense)"
             if accuracy.get(m) is not None else f"{m} ({task.metric_label} not measured)" for m in seen]
    return f"; faster but outside the budget: {_join(words)}"


STACKING_WORDS = {facts.INT8_ON_PRUNED: "INT8 on top of {mode} pruning",
                  facts.PRUNING_ON_INT8: "{Mode} pruning on top of INT8"}


def verdict_clause(comps: list[Comparison]) -> str:
    """'faster at batch 64, slower at batch 1 and 256' from the comparisons' verdicts."""
    by_verdict = _by_verdict(comps)
    for verdict, words in ((FASTER, "faster"), (SLOWER, "slower")):
        if len(by_verdict[verdict]) == len(comps):
            return f"{words} at every batch size measured"
    if len(by_verdict[NO_DIFFERENCE]) == len(comps):
        return "no significant difference at any batch size"
    threads, mode, settings = facts.varied(comps)
    parts = [f"{words} at {_batches(by_verdict[v], threads, mode, settings)}"
             for v, words in ((FASTER, "faster"), (SLOWER, "slower"), (NO_DIFFERENCE, "no significant difference"))
             if by_verdict[v]]
    return ", ".join(parts)


def _asking(inputs: ReportInputs, *questions: str) -> list[tuple[str, str, str, list[Comparison], str]]:
    """(runtime, model, baseline, comparisons, question) of the comparison groups asking one of ``questions``."""
    info = facts.models(inputs)
    groups = [(*key, comps, facts.question(comps[0], info)) for key, comps in facts.comparison_groups(inputs).items()]
    return [group for group in groups if group[-1] in questions]


def stacking_sentences(inputs: ReportInputs) -> list[dict]:
    """One entry per (runtime, stacking comparison): INT8 on a pruned model, pruning on an INT8 model."""
    info = facts.models(inputs)
    out = []
    for runtime, model, baseline, comps, question in _asking(inputs, *STACKING_WORDS):
        pruned = baseline if question == facts.INT8_ON_PRUNED else (facts.variant_of(model, info) or model)
        what = STACKING_WORDS[question].format(mode=pruned, Mode=pruned[:1].upper() + pruned[1:])
        out.append({"runtime": runtime, "model": model, "baseline": baseline, "question": question,
                    "verdicts": [c.verdict for c in comps],
                    "sentence": f"{what} ({model} vs {baseline}): {verdict_clause(comps)} ({facts.runtime_name(runtime)})."})
    return out


def sparse_sentence(inputs: ReportInputs) -> str | None:
    """Whether the sparse INT8 kernel made unstructured-int8 faster; None for files from before INT8."""
    sparse = inputs.bench.sparse_int8 if inputs.bench else None
    if not sparse:
        return None
    if not sparse.applicable:
        return f"Sparse INT8 kernels: not applicable ({sparse.reason or 'no reason given'})."
    clauses = [f"{model} vs {baseline}: {verdict_clause(comps)} ({facts.runtime_name(runtime)})"
               for runtime, model, baseline, comps, _ in _asking(inputs, facts.SPARSE_KERNEL)]
    if not clauses:
        return "Sparse INT8 kernels: applicable, but no sparse-kernel comparison was measured."
    return "Sparse INT8 kernel (did it make the unstructured INT8 model faster?): " + "; ".join(clauses) + "."


def aligned_sentences(inputs: ReportInputs) -> list[str]:
    """Per runtime and aligned model: did rounding the ticket's widths to a multiple run faster?"""
    info = facts.models(inputs)
    out = []
    for runtime, model, baseline, comps, _ in _asking(inputs, facts.ALIGNED_WIDTHS):
        widths = [tickets.widths_text(info.get(name, {}).get("widths")) for name in (model, baseline)]
        shape = f", widths {widths[0]} vs {widths[1]}" if all(widths) else ""
        out.append(f"Aligned widths ({model} vs {baseline}{shape}): {verdict_clause(comps)} ({facts.runtime_name(runtime)}).")
    return out


def fastest_runtime_sentence(decided: list[dict]) -> str | None:
    """Across runtimes (per thread count and mode): whose pick ran fastest at each batch of the decision,
    the answer when the runtime itself is the choice; None with fewer than two runtimes."""
    picks: dict[tuple, dict[str, tuple]] = {}
    for decision in decided:
        for pick in decision["picks"]:
            if pick["model"] is not None and pick["p50_ms"] is not None:
                here = picks.setdefault((decision["threads"], decision["mode"], pick["batch"]), {})
                here[decision["runtime"]] = min(here.get(decision["runtime"], (float("inf"),)), (pick["p50_ms"], pick["model"]))
    parts = []
    for (_, _, batch), by_runtime in picks.items():
        if len(by_runtime) < 2:
            continue
        best, *others = sorted(by_runtime, key=by_runtime.get)
        (best_ms, model) = by_runtime[best]
        rest = ", ".join(f"{facts.runtime_name(r)} {_per_call(by_runtime[r][0])}" for r in others)
        parts.append(f"at batch {batch}, {model} on {facts.runtime_name(best)} ({_per_call(best_ms)} per call; {rest})")
    if not parts:
        return None
    return ("Across runtimes (their medians were measured apart, so small gaps are not significant), the fastest pick: "
            + _join(parts) + ".")


def _per_call(ms: float) -> str:
    return f"{ms * 1000:.3g} µs" if ms < 1 else f"{ms:.3g} ms"


def decision_lines(inputs: ReportInputs, max_drop: float) -> dict:
    """The report's first lines, as every view shows them."""
    decided = decisions(inputs, max_drop)
    across = fastest_runtime_sentence(decided)
    return {"fastest": [d["sentence"] for d in decided] + ([across] if across else []),
            "tickets": tickets.ticket_sentences(inputs),
            "stacking": [s["sentence"] for s in stacking_sentences(inputs)],
            "aligned": aligned_sentences(inputs),
            "sparse": sparse_sentence(inputs)}
