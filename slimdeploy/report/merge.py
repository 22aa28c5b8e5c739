"""One report from benchmarks made on several machines (``slimdeploy report A.json B.json``).

Nothing is averaged across machines: a speedup is shown beside the same comparison measured on the
others. The sources must have measured the same models: the sha256 of the artifact each runtime ran
(``BenchModel.artifact_sha256``) must match; older files are compared on names and counts.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from slimdeploy.bench.cellkey import CellKey
from slimdeploy.environment import ARM64, CPUINFO_NAMES
from slimdeploy.errors import UserError
from slimdeploy.records.bench import BenchModel, BenchResults, Comparison
from slimdeploy.records.environment import Cpu, Environment
from slimdeploy.report import answer, document, facts
from slimdeploy.report.document import Bullets, Figure, Paragraph, Section, Table
from slimdeploy.report.load import ReportInputs, load_source
from slimdeploy.report.settings import MACHINE_PLOT
from slimdeploy.runtimes.registry import device_name as runtime_device_name, sort_key

# Shown in a machine's name, in this order; avx2 is left out where avx512f implies it.
ISA_ORDER = ("avx2", "avx512f", "avx512_vnni", "amx", "neon")
# bench.json ``models`` counts that identify a model when no artifact sha256 is recorded.
COUNT_WORDS = {"params": "parameter counts", "nonzero_params": "nonzero parameter counts", "flops": "FLOPs"}
# Words for what make a CPU brand string long without telling machines apart.
CPU_NOISE = re.compile(r"\((?:R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|\b\d+-Core\b|@\s*[\d.]+\s*GHz|\bwith Radeon.*$")
MAX_CPU_CHARS = 40
# What platform.processor()/machine() answer where the OS gives no brand string: not a CPU's name.
NOT_A_CPU_NAME = ("", "x86_64", "amd64", "i386", "i686", "arm", *ARM64)
FAILED = "failed"


@dataclass(frozen=True)
class Failed:
    error: str  # a row's cell that errored on a machine


@dataclass
class Machine:
    label: str
    inputs: ReportInputs
    bench: BenchResults = field(init=False)
    source: Path = field(init=False)

    def __post_init__(self):
        self.bench, self.source = self.inputs.bench, self.inputs.source


@dataclass
class MergedInputs:
    machines: list[Machine]
    compared: str  # how the sources were found to hold the same models, in words
    differences: list[str] = field(default_factory=list)  # kept only with --allow-different-models
    notes: list[str] = field(default_factory=list)


def load_machines(sources, labels=None, allow_different_models: bool = False) -> MergedInputs:
    """Read every source, name its machine and check that all measured the same models."""
    sources = [Path(s) for s in sources]
    labels = list(labels or [])
    if labels and len(labels) != len(sources):
        raise UserError(f"--label given {len(labels)} time{'s' if len(labels) != 1 else ''} for {len(sources)} sources; "
                        "give one --label per SOURCE, in the same order")
    machines = []
    for source in sources:
        inputs = load_source(source)
        if inputs.bench is None:
            raise UserError(f"report source {source} has no benchmark results (run slimdeploy bench {source} first); "
                            "a report of several sources sets their benchmarks side by side")
        machines.append(Machine("", inputs))
    names = labels or [machine_name(m.bench.environment) for m in machines]
    for machine, name in zip(machines, numbered(names)):
        machine.label = name
    compared, differences = check_same_models(machines, allow_different_models)
    merged = MergedInputs(machines, compared, differences)
    if differences:
        merged.notes.append("Merged although the models differ (--allow-different-models): " + "; ".join(differences)
                            + ". Speedups of different models are set side by side, but they measure different things.")
    for machine in machines:
        merged.notes += [f"{machine.label}: {note}" for note in machine.inputs.notes
                         if not note.startswith("Made from a bench JSON alone")]
    return merged


def numbered(names: list[str]) -> list[str]:
    """The names, each repeat given "#2", "#3"... (skipping a number already taken as a label)."""
    seen: dict[str, int] = {}
    used: set[str] = set()
    out = []
    for name in names:
        count = seen.get(name, 0)
        candidate = name if count == 0 and name not in used else ""
        while not candidate or candidate in used:
            count += 1
            candidate = f"{name} #{count}" if count > 1 else name
        seen[name] = count
        used.add(candidate)
        out.append(candidate)
    return out


def machine_name(environment: Environment) -> str:
    """'AMD EPYC 7B13 · 2 cores · avx2': CPU, the cores the benchmark could use, kernel-deciding ISA."""
    cpu = environment.cpu or Cpu()
    cores = cpu.usable_cores or cpu.logical_cores
    isa = shown_isa(isa_of(cpu))
    parts = [cpu_name(cpu, environment), f"{cores} core{'s' if cores != 1 else ''}" if cores else "", "+".join(isa)]
    return " · ".join(p for p in parts if p)


def cpu_name(cpu: Cpu, environment: Environment) -> str:
    """The CPU's brand string, shortened; OpenVINO's device name where the OS gave only the arch."""
    model = str(cpu.model or "").strip()
    if model == cpu.arch or model.lower() in NOT_A_CPU_NAME:
        model = str(device_name(environment) or model or cpu.arch or "unknown CPU")
    return short_cpu_model(model)


def device_name(environment: Environment) -> str | None:
    """The CPU as a runtime names it (bench.json ``environment.devices``: OpenVINO's plug-in reads them)."""
    return runtime_device_name(environment.devices or {})


def short_cpu_model(model: str) -> str:
    """'Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz' -> 'Intel Xeon Platinum 8480+'."""
    short = " ".join(CPU_NOISE.sub(" ", model).split()) or model.strip()
    if len(short) > MAX_CPU_CHARS:
        short = short[:MAX_CPU_CHARS].rsplit(" ", 1)[0] + "…"
    return short


def isa_of(cpu: Cpu) -> list[str]:
    """bench.json's ``cpu.isa`` where recorded; older files: derived from ``cpu.flags`` and the arch."""
    if isinstance(cpu.isa, list):
        found = {str(f) for f in cpu.isa}
    else:
        found = {CPUINFO_NAMES[f] for f in cpu.flags or [] if f in CPUINFO_NAMES}
        if str(cpu.arch or "").lower() in ARM64:
            found.add("neon")  # every arm64 CPU has it
    return sorted(found, key=lambda f: (ISA_ORDER.index(f) if f in ISA_ORDER else len(ISA_ORDER), f))


def shown_isa(isa: list[str]) -> list[str]:
    return [f for f in isa if not (f == "avx2" and "avx512f" in isa)]


def check_same_models(machines: list[Machine], allow: bool) -> tuple[str, list[str]]:
    """How the sources were compared (words) and how they differ; refuses a difference unless ``allow``."""
    how: set[str] = set()
    differences: list[str] = []
    for i, first in enumerate(machines):
        for second in machines[i + 1:]:
            found, compared = model_differences(first.bench.models or {}, second.bench.models or {})
            how |= compared
            if found and not allow:
                more = f" and {len(found) - 1} more" if len(found) > 1 else ""
                raise UserError(
                    f"{first.source} and {second.source} measured different models ({found[0]}{more}; compared "
                    f"{compared_words(compared)}); a merged report sets the same model side by side: pass "
                    "--allow-different-models to merge them anyway")
            differences += [f"{first.label} vs {second.label}: {d}" for d in found]
    return compared_words(how), differences


def model_differences(a: dict[str, BenchModel], b: dict[str, BenchModel]) -> tuple[list[str], set[str]]:
    """What differs between two bench.json ``models``, and what was compared: the artifact sha256 per
    runtime where both files record it for a model, else its counts."""
    common = [name for name in a if name in b]
    if not common:
        return [f"no model in common: {', '.join(a) or 'none'} vs {', '.join(b) or 'none'}"], {"names"}
    found: list[str] = []
    compared = {"names"}
    for name in common:
        hashes_a, hashes_b = (m[name].artifact_sha256 or {} for m in (a, b))
        shared = [rt for rt in hashes_a if rt in hashes_b]
        # The files a runtime measured in both, if any: a .keras nobody benched changes nothing measured.
        measured = [rt for rt in shared if all(rt in (m[name].artifacts or {}) for m in (a, b))]
        runtimes = measured or shared
        if runtimes:
            compared.add("sha256")
            found += [f"{name}'s {facts.runtime_name(rt)} artifact has sha256 {hashes_a[rt][:12]}… vs {hashes_b[rt][:12]}…"
                      for rt in runtimes if hashes_a[rt] != hashes_b[rt]]
            continue
        for key in COUNT_WORDS:
            values = [facts.number(getattr(m[name], key)) for m in (a, b)]
            if None not in values:
                compared.add(key)
                if values[0] != values[1]:
                    found.append(f"{name} has {COUNT_WORDS[key]} {values[0]:,.0f} vs {values[1]:,.0f}")
    return found, compared


def compared_words(compared: set[str]) -> str:
    words = []
    if "sha256" in compared:
        words.append("the sha256 of each model's artifact per runtime")
    counts = [words for key, words in COUNT_WORDS.items() if key in compared]
    if counts:
        # Only where no sha256 was recorded in both files: say why, so a reader knows it was weaker.
        words.append(f"model names, {', '.join(counts)} where a file records no artifact sha256 (a bench.json "
                     "from before slimdeploy recorded them)")
    elif "sha256" not in compared:
        words.append("model names only (no artifact sha256 or counts recorded)")
    return "; ".join(words) or "nothing (a single source)"


@dataclass
class PairRows:
    """One compared pair (structured vs dense, ...) with each machine's comparison per row."""

    model: str
    baseline: str
    rows: dict = field(default_factory=dict)  # row key -> {machine label: Comparison or Failed}


def pair_rows(merged: MergedInputs) -> list[PairRows]:
    pairs: dict[tuple[str, str], PairRows] = {}
    for machine in merged.machines:
        for (_, model, baseline), comps in facts.comparison_groups(machine.inputs).items():
            pair = pairs.setdefault((model, baseline), PairRows(model, baseline))
            for c in comps:
                pair.rows.setdefault(_row_key(c), {})[machine.label] = c
    for pair in pairs.values():
        _mark_failed(pair, merged.machines)
        pair.rows = dict(sorted(pair.rows.items(), key=lambda kv: _row_order(kv[0])))
    # Against dense first, then the stacking questions; in model order within each.
    return sorted(pairs.values(), key=lambda p: (p.baseline != facts.BASELINE, facts.model_order(p.model), p.baseline))


def _row_key(record) -> CellKey:
    return dataclasses.replace(CellKey.of(record), model=None)


def _mark_failed(pair: PairRows, machines: list[Machine]) -> None:
    """A machine whose model's or baseline's cell errored says "failed", not "not measured"."""
    for machine in machines:
        for cell in machine.bench.cells:
            if cell.status == "error" and cell.model in (pair.model, pair.baseline):
                row = pair.rows.get(_row_key(cell))
                if row is not None and machine.label not in row:
                    row[machine.label] = Failed(f"{cell.model}: {cell.error or 'error'}")


def _row_order(key: CellKey) -> tuple:
    return (sort_key(str(key.runtime)), key.threads or 0, str(key.mode), key.settings, key.batch)


def row_label(key: CellKey, **vary: bool) -> str:
    """'ONNX Runtime\nbatch 64' (a plot's tick), plus threads, mode and settings where the rows differ in them."""
    return f"{facts.runtime_name(str(key.runtime))}\n{key.label(**vary)}"


def _varying(pair: PairRows) -> dict:
    """Whether threads, mode or settings vary within one runtime's rows (two runtimes always have
    different settings: not a choice the reader must see)."""
    by_runtime: dict = {}
    for key in pair.rows:
        by_runtime.setdefault(key.runtime, []).append(key)
    return {what: any(len({getattr(k, what) for k in keys}) > 1 for keys in by_runtime.values()) for what in facts.VARIED}


def speedup_words(c: Comparison | Failed | None) -> str:
    if c is None:
        return "not measured"
    if isinstance(c, Failed):
        return FAILED
    return f"{document.speedup_text(c)} {document.verdict_text(c)}"


def pair_table(pair: PairRows, machines: list[str]) -> Table:
    vary = _varying(pair).values()
    headers = ["Runtime", "Batch", *facts.optional(vary, facts.VARIED_HEADERS), *machines, "Ideal (FLOP ratio)"]
    rows = [[facts.runtime_name(str(key.runtime)), str(key.batch), *facts.optional(vary, facts.varied_values(key)),
             *(speedup_words(by_machine.get(m)) for m in machines), ideal_words(by_machine, machines)]
            for key, by_machine in pair.rows.items()]
    return Table(headers, rows, caption=f"{pair.model} vs {pair.baseline}: speedup (bootstrap interval) and verdict on each machine")


def ideal_words(by_machine: dict, machines: list[str]) -> str:
    """The FLOP ratio; per machine when they differ (only --allow-different-models merges such files)."""
    ideals = {m: facts.number(getattr(by_machine[m], "ideal_speedup", None)) for m in machines if m in by_machine}
    shown = {m: f"{v:.2f}x" for m, v in ideals.items() if v}
    if len(set(shown.values())) > 1:
        return "differs: " + "; ".join(f"{m} {v}" for m, v in shown.items())
    return next(iter(shown.values()), "–")


def plot_panels(pairs: list[PairRows], machines: list[str]) -> list[dict]:
    """What ``plots.machine_speedup_plot`` draws: per pair, a group of bars per row, a bar per machine."""
    panels = []
    for pair in pairs:
        vary = _varying(pair)
        panels.append({"title": f"{pair.model} vs {pair.baseline}",
                       "slots": [row_label(key, **vary) for key in pair.rows],
                       "bars": {m: [_bar(pair.rows[key].get(m)) for key in pair.rows] for m in machines}})
    return panels


def _bar(c: Comparison | Failed | None) -> tuple | None:
    if c is None or isinstance(c, Failed):
        return None
    return (c.speedup, c.speedup if c.ci_low is None else c.ci_low, c.speedup if c.ci_high is None else c.ci_high)


def build_document(merged: MergedInputs, figures: dict[str, Figure], title: str | None, max_drop: float) -> document.Document:
    """The decision per machine first, the speedups side by side, then what each machine is."""
    machines = [m.label for m in merged.machines]
    lead: list = [Paragraph(" ".join(answer.decision_lines(m.inputs, max_drop)["fastest"]) or answer.in_short(m.inputs),
                            lead=f"{m.label}:") for m in merged.machines]
    lead.append(Paragraph(f"compared {merged.compared}.", lead="Same models:"))
    if MACHINE_PLOT in figures:
        lead.append(figures[MACHINE_PLOT])
    doc = document.Document(title=title or default_title(merged), lead=lead)
    if merged.notes:
        doc.sections.append(Section("What this report could not show", [Bullets(merged.notes)]))
    pairs = pair_rows(merged)
    blocks: list = [pair_table(pair, machines) for pair in pairs] or [
        Paragraph("No comparisons: no source has a pruned model measured beside dense.")]
    blocks.append(Paragraph(
        "Each machine's own measurement, never averaged across machines: a row sets the same comparison (model vs "
        "baseline, runtime, batch, threads, mode and settings) side by side; 'not measured' marks a machine that "
        "did not run it, 'failed' one where the model's or its baseline's cell errored. "
        + facts.rule_text([c for m in merged.machines for c in m.inputs.comparisons])))
    doc.sections.append(Section("Speedup per machine", blocks))
    doc.sections.append(Section("Answers per machine", [Bullets(
        [f"{m.label}: {s}" for m in merged.machines for s in answer.sentences(m.inputs)]
        or ["No comparisons with dense were measured."])], detail=True))
    doc.sections.append(Section("Machines", [machines_table(merged)], detail=True))
    return doc


def machine_answers(m: Machine, max_drop: float, environment: bool = False) -> dict:
    """A machine's answers, as report.json and ``report --json`` give them."""
    return {"label": m.label, "source": str(m.source),
            **({"environment": m.bench.environment.to_json()} if environment else {}),
            "decision": answer.decision_lines(m.inputs, max_drop)["fastest"], "in_short": answer.in_short(m.inputs),
            "answers": answer.sentences(m.inputs)}


def default_title(merged: MergedInputs) -> str:
    name = document.model_name(merged.machines[0].inputs)
    return f"Does pruning make {name or 'the model'} faster on {len(merged.machines)} machines? — slimdeploy report"


MACHINE_HEADERS = ["Machine", "Source", "CPU", "Arch", "Cores (logical / usable)", "ISA", "OpenVINO device", "OS",
                   "Runtimes measured", "Benchmark made"]


def machines_table(merged: MergedInputs) -> Table:
    rows = []
    for m in merged.machines:
        env = m.bench.environment
        cpu = env.cpu or Cpu()
        runtimes = sorted({c.runtime for c in m.inputs.ok_cells()}, key=sort_key)
        rows.append([m.label, str(m.source), str(cpu.model or "–"), str(cpu.arch or "–"),
                     f"{facts.present(cpu.logical_cores, '–')} / {facts.present(cpu.usable_cores, '–')}",
                     ", ".join(isa_of(cpu)) or "–", str(device_name(env) or "–"), str(env.os or "–"),
                     ", ".join(document.runtime_versions(m.bench.runtimes, runtimes)) or "–", str(m.bench.created or "–")])
    return Table(MACHINE_HEADERS, rows)


def report_json(merged: MergedInputs, max_drop: float) -> dict:
    """The merged report's content as data (without the header fields api.py adds)."""
    speedups = []
    for pair in pair_rows(merged):
        for key, by_machine in pair.rows.items():
            for label, c in by_machine.items():
                figures = ({"status": FAILED, "error": c.error} if isinstance(c, Failed) else
                           facts.fields(c, "speedup", "ci_low", "ci_high", "verdict", "ideal_speedup", "unstable"))
                speedups.append({"model": pair.model, "baseline": pair.baseline, "runtime": key.runtime, "batch": key.batch,
                                 "threads": key.threads, "mode": key.mode, "settings": key.settings_dict, "machine": label,
                                 **figures})
    return {
        "sources": [str(m.source) for m in merged.machines],
        "machines": [machine_answers(m, max_drop, environment=True) for m in merged.machines],
        "same_models": {"compared": merged.compared, "differences": merged.differences},
        "speedups": speedups,
        "notes": merged.notes,
    }
