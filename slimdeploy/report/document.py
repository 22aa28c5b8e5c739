"""The report as a neutral list of blocks, which markdown.py and html.py render.

The answer comes first, then the speedup picture, then the tables. Sections marked ``detail``
fold into <details> where space is short (the GitHub job summary).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from slimdeploy.bench import stats
from slimdeploy.formatting import fmt_bytes, fmt_int
from slimdeploy.records.base import ABSENT
from slimdeploy.records.bench import Cell, Comparison, RuntimeInfo
from slimdeploy.records.environment import Cpu, Environment
from slimdeploy.records.lottery import LotteryRecord
from slimdeploy.records.run import AdoptedModel
from slimdeploy.report import answer, facts, timesplit, tickets
from slimdeploy.report.load import ReportInputs
from slimdeploy.report.settings import ReportSettings
from slimdeploy.tasks import DEFAULT_TASK, Task


@dataclass
class Paragraph:
    text: str
    lead: str | None = None  # shown bold before the text


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str | None = None


@dataclass
class Figure:
    name: str  # file name beside the Markdown
    png: bytes
    alt: str
    caption: str


@dataclass
class Section:
    title: str
    blocks: list
    detail: bool = False


@dataclass
class Document:
    title: str
    lead: list  # the answer: always shown first
    sections: list[Section] = field(default_factory=list)


def fmt_num(value, digits: int = 3) -> str:
    value = facts.number(value)
    return "–" if value is None else f"{value:.{digits}g}"


fmt_pct = facts.fmt_pct


def fmt_delta_points(value, base, task: Task = DEFAULT_TASK) -> str:
    """``value`` minus ``base`` (scores of the task's metric) in the budget's points: "+0.25"."""
    value, base = facts.number(value), facts.number(base)
    if value is None or base is None:
        return "–"
    return f"{task.points(value - base):+.2f}"


def build_document(inputs: ReportInputs, figures: dict[str, Figure], title: str | None = None,
                   max_drop: float | None = None) -> Document:
    sentences = answer.sentences(inputs)
    adopted = adopted_note(inputs)
    lead: list = [*decision_blocks(inputs, ReportSettings().max_drop if max_drop is None else max_drop),
                  Paragraph(answer.in_short(inputs), lead="In short:"), *([Bullets(sentences)] if sentences else []),
                  *([Paragraph(adopted, lead="Your model:")] if adopted else []),
                  # The decision's picture first.
                  *(figures[name] for name in ("accuracy_vs_latency.png", "speedup.png") if name in figures)]
    doc = Document(title=title or default_title(inputs), lead=lead)
    missing = inputs.notes + _unavailable_runtimes(inputs)
    resources = timesplit.resource_rows(inputs)
    doc.sections += [
        *([Section("What this report could not show", [Bullets(missing)])] if missing else []),
        _comparisons_section(inputs),
        *filter(None, [_time_split_section(inputs, figures.get(TIME_SPLIT_PNG))]),
        _models_section(inputs),
        *([_exports_section(inputs)] if inputs.export is not None else []),
        _latency_section(inputs, figures.get("latency_vs_batch.png")),
        *([Section("Load time and memory", [Table(timesplit.RESOURCE_HEADERS, resources), Paragraph(
            "Load and compile: opening the model in the runtime (read, optimise, compile), the first worker process's. "
            "Peak RSS growth on load: how much opening this model's sessions raised the worker's peak resident memory "
            "(the models loaded before it stay loaded, so this is roughly its footprint). Worker peak RSS: the worker "
            "process's peak after loading and measuring all models of the group.")], detail=True)] if resources else []),
        *([_lottery_section(inputs, figures.get("accuracy_vs_weights.png"))] if inputs.lotteries else []),
        _environment_section(inputs)]
    return doc


def decision_blocks(inputs: ReportInputs, max_drop: float) -> list:
    lines = answer.decision_lines(inputs, max_drop)
    blocks: list = []
    if lines["fastest"]:  # one paragraph (one Markdown line), so the lines that follow keep their place
        blocks.append(Paragraph(" ".join(lines["fastest"]), lead="Which model to ship:"))
    if lines["tickets"]:
        blocks += [Paragraph(f"chosen on validation {inputs.task.metric_label}, never on test", lead="Tickets:"),
                   Bullets(lines["tickets"])]
    if lines["stacking"]:
        blocks += [Paragraph("did pruning and INT8 add up? (each compared with the model it was built on)", lead="Stacking:"),
                   Bullets(lines["stacking"])]
    return blocks + ([Bullets(lines["aligned"])] if lines["aligned"] else []) + (
        [Paragraph(lines["sparse"])] if lines["sparse"] else [])


# What a reset does to an adopted model's survivors (it has no θ0), as the report says it.
ADOPTED_RESET_WORDS = {
    "finetune": "fine-tuned from its trained weights",
    "init": "re-initialised with its own initializers (seeded) and retrained",
    "random": "freshly initialised and retrained",
}


def adopted_note(inputs: ReportInputs) -> str | None:
    """Where an adopted dense model came from, and what pruning reset it to (it has no θ0)."""
    adopted = inputs.dense_metrics.adopted if inputs.dense_metrics else None
    if not isinstance(adopted, AdoptedModel):
        return None
    resets = sorted({str(lottery.adopted.reset) for lottery in inputs.lotteries.values()
                     if lottery.adopted and lottery.adopted.reset})
    sha = str(adopted.sha256 or "")
    text = (f"the dense model is {PurePosixPath(str(facts.present(adopted.source))).name} (sha256 {sha[:12]}…), trained "
            "outside slimdeploy and adopted as it is; the accuracies are measured on the run's own test split.")
    if resets:
        words = " or ".join(f"{ADOPTED_RESET_WORDS.get(reset, reset)} (reset {reset})" for reset in resets)
        text += f" It has no θ0, so the pruned models' survivors were {words}."
    return text


def default_title(inputs: ReportInputs) -> str:
    return f"Does pruning make {model_name(inputs) or 'the model'} faster? — slimdeploy report"


def model_name(inputs: ReportInputs) -> str | None:
    """What the run is called: its recipe, the adopted file, the run directory or the bench's first source."""
    dense = inputs.dense_metrics
    recipe = dense.recipe_name if dense else None
    adopted = dense.adopted.source if dense and dense.adopted else None
    sources = (inputs.bench.config.sources if inputs.bench else None) or []
    return (recipe or (PurePosixPath(str(adopted)).stem if adopted else None) or (inputs.run_dir.name if inputs.run_dir else None)
            or (PurePosixPath(str(sources[0]).rstrip("/")).name if sources else None))


def _unavailable_runtimes(inputs: ReportInputs) -> list[str]:
    return [f"{facts.runtime_name(runtime)} was not measured: {status.reason or 'unavailable'}."
            for runtime, status in sorted((inputs.bench.runtimes if inputs.bench else {}).items()) if status.available is False]


def runtime_versions(runtimes: dict[str, RuntimeInfo], names) -> list[str]:
    """'ONNX Runtime 1.19.2' for each runtime named (without a version where bench.json has none)."""
    return [f"{facts.runtime_name(rt)} {facts.present(runtimes[rt].version, '') if rt in runtimes else ''}".strip()
            for rt in names]


def speedup_text(c: Comparison) -> str:
    """``2.99x (2.66–3.42)``: the speedup with its interval."""
    interval = f" ({c.ci_low:.2f}–{c.ci_high:.2f})" if c.ci_low is not None and c.ci_high is not None else ""
    return f"{c.speedup:.2f}x{interval}"


def verdict_text(c: Comparison) -> str:
    return c.verdict + (" (unstable cell)" if c.unstable else "")


def _comparisons_section(inputs: ReportInputs) -> Section:
    comps = [c for group in facts.comparison_groups(inputs).values() for c in group]
    if not comps:
        return Section("Speedup of pruned models over dense", [Paragraph("No comparisons: the benchmark has no pruned model measured beside dense.")])
    vary = facts.varied(comps)
    # Zeros still cost a dense kernel time; the nonzero ratio is what a sparse kernel could reach.
    sparse = any(facts.number(c.nonzero_ideal_speedup) not in (None, facts.number(c.ideal_speedup)) for c in comps)
    headers = ["Runtime", "Model", "Batch", *facts.optional(vary, facts.VARIED_HEADERS),
               f"Speedup ({facts.confidence(inputs) * 100:.0f}% interval)", "Ideal (FLOP ratio)",
               *(["Ideal for sparse kernels (nonzero FLOPs)"] if sparse else []),
               "Efficiency", "Verdict", "Baseline p50 (ms)", "Model p50 (ms)"]
    rows = [[facts.runtime_name(c.runtime), f"{c.model} vs {c.baseline}", str(c.batch),
             *facts.optional(vary, facts.varied_values(c)), speedup_text(c), _times(c.ideal_speedup),
             *([_times(c.nonzero_ideal_speedup)] if sparse else []),
             fmt_pct(c.efficiency), verdict_text(c), fmt_num(c.baseline_p50_ms), fmt_num(c.model_p50_ms)] for c in comps]
    blocks = [Table(headers, rows), Paragraph(
        facts.rule_text(comps) + " Ideal is the FLOP ratio, what a runtime that turned every saved operation into time "
        "would reach; efficiency is measured / ideal.")]
    assumes = sorted({str(c.ideal_assumes) for c in comps if c.ideal_assumes})
    if any(c.baseline != facts.BASELINE for c in comps) or assumes:
        blocks.append(Paragraph(
            "A row 'A vs B' gives B's latency over A's (above 1: A is faster): INT8 variants are also compared with the float model they "
            "were quantized from, and pruned INT8 variants with dense-int8, to show whether pruning and INT8 add up."
            + "".join(f" Ideal for INT8 rows: {a}." for a in assumes)))
    return Section("Speedup of pruned models over dense", blocks)


def _times(value) -> str:
    return f"{value:.2f}x" if facts.number(value) else "–"


TIME_SPLIT_PNG = "time_split.png"


def _time_split_section(inputs: ReportInputs, figure: Figure | None) -> Section | None:
    """Where the time goes (``bench --profile``): absent for a bench without profiles."""
    rows = timesplit.table_rows(inputs)
    if not rows:
        return None
    return Section("Where the time goes", [Bullets(timesplit.runtime_sentences(inputs)), *filter(None, [figure]),
                                           Table(timesplit.TABLE_HEADERS, rows), Paragraph(
        "From one profiled pass per cell after measuring (OpenVINO's PERF_COUNT counters, ONNX Runtime's profiler; "
        "never part of the latency figures): each node's median time over the profiled calls. Matmuls: the Dense layers' MatMul/Gemm/FullyConnected "
        "nodes (fused and quantized forms included); outside the layers: the measured median minus the profiled "
        "layers' sum. If only the matmuls shrank and dense spends a share f of its call outside them, a model with R "
        "times fewer FLOPs (R: the ideal speedup) would be at most 1/(f + (1−f)/R) times faster (Amdahl's law): the "
        "estimate each sentence states (f from dense's cell at the same batch, R from the comparison); below it, the "
        "matmuls themselves ran less than R times faster; above it, the rest of the call shrank too. The kernel names "
        "are OpenVINO's exec types and ONNX Runtime's provider:op. OpenVINO may fuse a narrow model's small layers "
        "into one Subgraph node, counted under other layers although it may hold matmuls.")])


def _models_section(inputs: ReportInputs) -> Section:
    task = inputs.task
    info = facts.models(inputs)
    by_runtime = facts.runtime_accuracy(inputs)
    runtimes = sorted({rt for _, rt in by_runtime if rt != facts.keras_runtime()})
    sizes = {(a.model, a.target): (a.bytes, a.gzip_bytes)
             for a in (inputs.export.artifacts if inputs.export else []) if a.model and a.target}
    targets = sorted({t for (_, t) in sizes})
    int8 = any(values.get("variant_of") or values.get("precision") == "int8" for values in info.values())
    headers = ["Model", "Params", "Nonzero params", "FLOPs", "Widths", "Weights remaining",
               f"Test {task.metric_label} (Keras)", f"Δ vs dense ({task.budget_unit})",
               *(f"{task.metric_title}, {facts.runtime_name(rt)}" for rt in runtimes),
               *(f"{facts.target_name(t)} file (raw / gzip)" for t in targets), *(["Precision"] if int8 else [])]
    rows = []
    for name, values in info.items():
        size = [sizes.get((name, target)) for target in targets]
        base = facts.variant_of(name, info)
        precision = f"{values.get('precision') or 'int8'} (quantized from {base})" if base else str(values.get("precision") or "fp32")
        rows.append([name, fmt_int(values.get("params")), fmt_int(values.get("nonzero_params")), fmt_int(values.get("flops")),
                     _widths(values.get("widths")), fmt_pct(values.get("weights_remaining")),
                     facts.fmt_score(task, values.get("test_accuracy")),
                     "–" if name == facts.BASELINE
                     else fmt_delta_points(values.get("test_accuracy"), facts.dense_accuracy_for(name, info), task),
                     *(facts.fmt_score(task, by_runtime.get((name, rt))) for rt in runtimes),
                     *(f"{fmt_bytes(s[0])} / {fmt_bytes(s[1])}" if s else "–" for s in size), *([precision] if int8 else [])])
    if not rows:
        return Section("Models", [Paragraph("No model information in this run.")])
    return Section("Models", [Table(headers, rows), Paragraph(
        f"Weights remaining: nonzero parameters as a share of the dense model's. {task.metric_title} per runtime is "
        f"the test {task.metric_label} of the exported file run by that runtime (export.json); gzip size shows what "
        "zeros save on disk.")],
        detail=True)


def _widths(widths) -> str:
    return "/".join(str(w) for w in widths) if isinstance(widths, list) else "–"


def _precision(name: str) -> str:
    # export.json says "fp32" for the file and OpenVINO's "f32" for how it runs: the same thing.
    return str(name).lower().replace("fp", "f")


def _exports_section(inputs: ReportInputs) -> Section:
    task = inputs.task
    base_acc = {a.target: a.test_accuracy for a in inputs.export.artifacts if a.model == facts.BASELINE}
    headers = ["Model", "Target", "File", "Precision", "Size", "gzip", f"Test {task.metric_label}",
               f"Δ vs dense ({task.budget_unit})", f"{task.agreement_title} with Keras", "Max |diff|", "Verified"]
    rows = []
    for a in sorted(inputs.export.artifacts, key=lambda a: (facts.model_order(a.model or ""), str(a.target))):
        precision = a.precision or "–"
        runs = a.inference_precision
        if runs and _precision(runs) != _precision(precision):
            precision += f" (runs {runs})"
        verified = "yes" if a.valid else f"NO: {a.error or 'failed'}"
        rows.append([a.model or "–", facts.target_name(a.target), str(a.path), precision, fmt_bytes(a.bytes),
                     fmt_bytes(a.gzip_bytes), facts.fmt_score(task, a.test_accuracy),
                     "–" if a.model == facts.BASELINE else fmt_delta_points(a.test_accuracy, base_acc.get(a.target), task),
                     fmt_pct(a.top1_agreement), fmt_num(a.max_abs_diff, 2), verified])
    blocks: list = [Table(headers, rows)]
    skipped = [f"{facts.target_name(facts.present(s.target))} not exported: {facts.present(s.reason)}"
               for s in inputs.export.skipped or []]
    if skipped:
        blocks.append(Bullets(skipped))
    return Section("Exported files", blocks, detail=True)


def _latency_section(inputs: ReportInputs, figure: Figure | None) -> Section:
    cells = inputs.cells
    if not cells:
        return Section("Latency and throughput", [Paragraph("No benchmark cells.")], detail=True)
    vary = facts.varied(cells)
    ordered = sorted(cells, key=lambda c: (c.runtime, c.threads or 0, str(c.mode), facts.settings_text(c), c.batch,
                                           facts.model_order(c.model)))
    headers = ["Runtime", "Batch", *facts.optional(vary, facts.VARIED_HEADERS), "Model", "p50 (ms)", "p99 (ms)",
               "Throughput (images/s)", "CV", "Samples", "Note"]
    rows = [[facts.runtime_name(c.runtime), str(c.batch), *facts.optional(vary, facts.varied_values(c)), c.model,
             fmt_num(c.stats.p50_ms), fmt_num(c.stats.p99_ms),
             fmt_int(round(c.stats.throughput_per_s)) if facts.number(c.stats.throughput_per_s) is not None else "–",
             fmt_pct(c.stats.cv), fmt_int(facts.sample_count(c)), _unstable_note(c)] for c in ordered if c.ok]
    failed = [f"{facts.runtime_name(c.runtime)}, {c.model}, batch {c.batch}: {c.status}{' — ' + str(c.error) if c.error else ''}"
              for c in ordered if not c.ok]
    return Section("Latency and throughput", [*filter(None, [figure]), Table(headers, rows), *(
        [Paragraph("Cells that did not run:"), Bullets(failed)] if failed else [])], detail=True)


def _unstable_note(cell: Cell) -> str:
    """Why a cell is flagged: its rounds' spread (bench.stats), or per-call CV in an older bench.json."""
    if not cell.unstable:
        return ""
    if cell.stability:
        return f"unstable ({stats.stability_words(cell.stability)})"
    return "unstable (per-call cv, an older bench.json)"


def _lottery_section(inputs: ReportInputs, figure: Figure | None) -> Section:
    task = inputs.task
    blocks: list = [*filter(None, [figure])]
    for mode, lottery in sorted(inputs.lotteries.items(), key=lambda kv: facts.model_order(kv[0])):
        reset = facts.reset_label(lottery.reset)
        headers = ["Round", "Weights remaining", "Widths", "Params (nonzero)", f"Test {task.metric_label} (ticket, reset: {reset})",
                   "Control: random re-init", "Control: fine-tune"]
        rows = []
        for r in lottery.rounds:
            controls = [(r.controls or {}).get(name) for name in ("random_init", "finetune")]
            rows.append([str(facts.present(r.round, "–")), fmt_pct(r.weights_remaining), _widths(r.widths),
                         fmt_int(facts.present(r.nonzero_params, facts.present(r.params))),
                         facts.fmt_score(task, r.test_accuracy),
                         *(facts.fmt_score(task, control.test_accuracy if control else None) for control in controls)])
        blocks += [Table(headers, rows, caption=f"{mode} pruning"), *filter(None, [_resets_table(lottery, task)])]
        candidates = tickets.candidate_rows(lottery, task)
        if candidates:
            blocks += [Paragraph(f"Ticket candidates, {mode} (averaged over seeds; the budget is judged on validation):"),
                       Table(tickets.candidate_headers(task), candidates)]
        notes = []
        ticket = lottery.ticket
        if ticket:
            chosen = tickets.candidate_words(ticket) if ticket.candidate else f"round {facts.present(ticket.round)}"
            notes.append(f"Ticket kept for export: {chosen} ({facts.present(ticket.reason, 'chosen')}).")
        winner, by_test = (lottery.resets.winner, lottery.resets.winner_by_test) if lottery.resets else (None, None)
        if winner:
            notes.append(f"Best way to train the pruned network, by validation {task.metric_label}: {winner}"
                         + (f" (by test {task.metric_label}: {by_test})." if by_test and by_test != winner else "."))
        unprunable = [f"{facts.present(u.layer)} ({facts.present(u.reason)})" for u in lottery.unprunable]
        if unprunable:
            notes.append("Not pruned: " + ", ".join(unprunable) + ".")
        if notes:
            blocks.append(Bullets(notes))
    return Section(f"{task.metric_title} of the pruning rounds", blocks, detail=True)


def _resets_table(lottery: LotteryRecord, task: Task) -> Table | None:
    """The final round's reset against its controls, mean ± std over seeds."""
    resets = {k: v for k, v in (lottery.resets.scores if lottery.resets else {}).items() if v.test_accuracy is not ABSENT}
    if not resets:
        return None
    rows = []
    for name, values in resets.items():
        label = {"random": "random re-init (control)", "finetune": "fine-tune (control)"}.get(
            name, f"ticket, reset {facts.reset_label(name)}")
        cells = []
        for value, std in ((values.val_accuracy, values.val_accuracy_std), (values.test_accuracy, values.test_accuracy_std)):
            std = facts.number(std)
            cells.append(facts.fmt_score(task, value) + (f" ± {task.points(std):.2f}" if std else ""))
        rows.append([label, *cells])
    seeds = lottery.seeds or []
    return Table(["Final round trained as", f"Validation {task.metric_label}", f"Test {task.metric_label}"], rows,
                 caption=f"{lottery.mode} pruning: which reset wins ({len(seeds) or 1} seed{'s' if len(seeds) > 1 else ''})")


def _environment_section(inputs: ReportInputs) -> Section:
    bench = inputs.bench
    env = (bench.environment if bench else None) or (inputs.export.environment if inputs.export else None) or Environment()
    cpu = env.cpu or Cpu()
    rows = [
        ["CPU", str(facts.present(cpu.model, "–"))],
        ["Cores (logical / usable)", f"{facts.present(cpu.logical_cores, '–')} / {facts.present(cpu.usable_cores, '–')}"],
        ["CPU flags", ", ".join(cpu.flags or []) or "–"],
        ["OS", str(facts.present(env.os, "–"))],
        ["Python", str(facts.present(env.python, "–"))],
        ["git commit", str(env.git_commit or "–")],
        ["Runtimes measured", ", ".join(runtime_versions(bench.runtimes, sorted(rt for rt, st in bench.runtimes.items()
                                                                                  if st.available)) if bench else []) or "–"],
        ["Benchmark made", str(bench.created if bench else "–")],
        ["Tool", str(bench.tool if bench else "–")],
    ]
    blocks: list = [Table(["Item", "Value"], rows)]
    libraries = env.libraries or {}
    if libraries:
        blocks.append(Table(["Library", "Version"], [[k, str(v)] for k, v in sorted(libraries.items())]))
    config = bench.config.to_json() if bench else {}
    if config:
        blocks.append(Table(["Benchmark setting", "Value"],
                            [[k, json.dumps(v) if not isinstance(v, str) else v] for k, v in config.items()]))
    return Section("Environment", blocks, detail=True)
