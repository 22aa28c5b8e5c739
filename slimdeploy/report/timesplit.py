"""Where the time goes (``bench --profile`` cells): a cell's median per call splits into matmuls, other
layers and outside the layers (median − the layers' sum). Pruning shrinks the matmuls only: with a share
``f`` of dense's call outside them, R times fewer FLOPs are at most ``1 / (f + (1 − f) / R)`` times faster."""

from __future__ import annotations

from dataclasses import dataclass

from slimdeploy.records.bench import Cell
from slimdeploy.report import facts
from slimdeploy.report.load import ReportInputs
from slimdeploy.runtimes.session import is_matmul


def profiled_cells(inputs: ReportInputs) -> list[Cell]:
    return [c for c in inputs.ok_cells() if c.profile and facts.present(c.profile.layers) is not None]


@dataclass(frozen=True)
class Split:
    """A cell's time per call in microseconds, and the matmul kernels that ran."""

    matmul_us: float
    other_us: float
    outside_us: float
    wall_us: float
    outside_matmul_share: float | None
    matmul_kernels: list[str]
    by_op_type: dict


def split(cell: Cell) -> Split:
    profile = cell.profile
    matmul = float(profile.matmul_us or 0.0)
    layers = float(profile.total_us or 0.0)
    wall = max(float(facts.p50(cell)) * 1000.0, layers)
    kernels = sorted({name for op, names in (profile.kernels or {}).items() if is_matmul(op) for name in names})
    return Split(matmul, layers - matmul, wall - layers, wall, (wall - matmul) / wall if wall > 0 else None, kernels,
                 dict(profile.by_op_type or {}))


def amdahl_cap(outside_share: float, flop_ratio: float) -> float:
    return 1.0 / (outside_share + (1.0 - outside_share) / flop_ratio)


def shown_batches(cells: list[Cell]) -> list[int]:
    """Batch 1 (or the smallest) and the largest profiled."""
    batches = sorted({c.batch for c in cells})
    return sorted({batches[0], batches[-1]}) if batches else []


def _groups(inputs: ReportInputs) -> dict[tuple, dict[str, Cell]]:
    """(runtime, batch, threads, mode, settings) -> model -> profiled cell, at the shown batches."""
    cells = profiled_cells(inputs)
    keep = set(shown_batches(cells))
    groups: dict[tuple, dict[str, Cell]] = {}
    for c in cells:
        if c.batch in keep:
            key = (c.runtime, c.batch, c.threads or 0, str(c.mode), facts.settings_text(c))
            groups.setdefault(key, {})[c.model] = c
    return dict(sorted(groups.items(), key=lambda kv: (facts.runtime_name(kv[0][0]), kv[0][1:])))


def _splits(inputs: ReportInputs) -> list[tuple[str, int, str, Split]]:
    """(runtime, batch, model, its split) of every profiled cell shown."""
    return [(runtime, batch, name, split(models[name])) for (runtime, batch, *_), models in _groups(inputs).items()
            for name in sorted(models, key=facts.model_order)]


def table_rows(inputs: ReportInputs) -> list[list[str]]:
    return [[facts.runtime_name(runtime), str(batch), name, f"{s.wall_us:.1f}", f"{s.matmul_us:.1f}", f"{s.other_us:.1f}",
             f"{s.outside_us:.1f}", _pct(s.outside_matmul_share), ", ".join(s.matmul_kernels) or "–"]
            for runtime, batch, name, s in _splits(inputs)]


TABLE_HEADERS = ["Runtime", "Batch", "Model", "Median per call (µs)", "Matmuls (µs)", "Other layers (µs)",
                 "Outside the layers (µs)", "Share outside the matmuls", "Matmul kernels"]


def _pct(value) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def runtime_sentences(inputs: ReportInputs) -> list[str]:
    """One sentence per runtime and batch shown: dense's split, then per model why its measured
    speedup differs from the FLOP ideal, from the profiles (``_model_clause``)."""
    sentences = []
    for key, models in _groups(inputs).items():
        if facts.BASELINE not in models:
            continue
        runtime, batch = key[0], key[1]
        dense = split(models[facts.BASELINE])
        f = dense.outside_matmul_share or 0.0
        head = (f"{facts.runtime_name(runtime)}, batch {batch}: {f * 100:.0f}% of dense's {dense.wall_us:.1f} µs per "
                f"call is outside its matmuls ({', '.join(dense.matmul_kernels) or 'no matmul kernel named'}).")
        clauses = [_model_clause(inputs, name, models[name], dense, f)
                   for name in sorted(models, key=facts.model_order) if name != facts.BASELINE]
        sentences.append(" ".join([head, *clauses]))
    return sentences


def _model_clause(inputs: ReportInputs, name: str, cell: Cell, dense: Split, f: float) -> str:
    """``name`` against dense: the matmul kernels and times, and for a model with fewer FLOPs the
    Amdahl estimate (only its matmuls shrink) beside the measured speedup."""
    mine = split(cell)
    comp = facts.vs_dense_comparison(inputs, cell)
    ideal, measured = (facts.number(comp.ideal_speedup), facts.number(comp.speedup)) if comp else (None, None)
    same = bool(dense.matmul_kernels) and mine.matmul_kernels == dense.matmul_kernels
    kernels = "the same matmul kernels as dense" if same else ", ".join(mine.matmul_kernels) or "no matmul kernel named"
    ratio = f"{dense.matmul_us / mine.matmul_us:.2f}×" if mine.matmul_us else "–"
    text = f"{name}: {kernels}, matmuls {mine.matmul_us:.1f} µs vs {dense.matmul_us:.1f} µs ({ratio} as fast)"
    # Without a matmul in dense's profile (OpenVINO fused them into a Subgraph) there is no split to reason from.
    if ideal and ideal > 1 and measured and dense.matmul_us > 0:
        estimate = amdahl_cap(f, ideal)
        if measured < estimate:
            why = (f"below the {estimate:.2f}× that {f * 100:.0f}% outside the matmuls would allow (Amdahl: "
                   f"1/(f + (1−f)/R)), because its matmuls ran {ratio} faster, not {ideal:.2f}×")
        else:
            why = f"above the {estimate:.2f}× Amdahl estimate: the rest of the call shrank with the model too"
        text += f"; measured {measured:.2f}× of the {ideal:.2f}× FLOP ideal, {why}"
    elif not same and mine.outside_matmul_share is not None:
        text += f"; {mine.outside_matmul_share * 100:.0f}% of its call outside them"
    return text + "."


def stacks(inputs: ReportInputs) -> dict[str, list[dict]]:
    """For the plot, per runtime: one bar per (batch, model), microseconds per op type plus the
    time outside the layers."""
    out: dict[str, list[dict]] = {}
    for runtime, batch, name, s in _splits(inputs):
        parts = {op: us for op, us in s.by_op_type.items() if us > 0}
        if s.outside_us > 0:
            parts[OUTSIDE] = s.outside_us
        out.setdefault(runtime, []).append({"model": name, "batch": batch, "parts": parts})
    return out


OUTSIDE = "outside the layers"


def resource_rows(inputs: ReportInputs) -> list[list[str]]:
    """Per model and runtime: load time, peak RSS and its growth on load (smallest batch's cell,
    where load costs least depend on the batch)."""
    first: dict[tuple, Cell] = {}
    for c in sorted(inputs.ok_cells(), key=lambda c: c.batch):
        if facts.present(c.peak_rss_mb) is not None or c.load_seconds is not None:
            first.setdefault((c.runtime, c.model), c)
    return [[facts.runtime_name(runtime), model, str(c.batch), _num(c.load_seconds, 1000, "{:.1f}"),
             _num(c.load_rss_growth_mb, 1, "{:.1f}"), _num(c.peak_rss_mb, 1, "{:.0f}")]
            for (runtime, model), c in sorted(first.items(), key=lambda kv: (facts.runtime_name(kv[0][0]),
                                                                            facts.model_order(kv[0][1])))]


RESOURCE_HEADERS = ["Runtime", "Model", "Batch", "Load and compile (ms)", "Peak RSS growth on load (MB)",
                    "Worker peak RSS (MB)"]


def _num(value, scale: float, pattern: str) -> str:
    value = facts.number(value)
    return "–" if value is None else pattern.format(value * scale)
