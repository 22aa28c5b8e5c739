"""Comparisons: each model against its baseline in the same runtime, batch, threads, mode and
settings: speedup with a bootstrap interval, the FLOP ratio it could reach, and a verdict.

``speedup`` is the paired estimate where the cells recorded their interleaved rounds (the median over
rounds of the round's baseline block median / the model's; ``stats.process_round_interval``): drift
that slows both blocks of a round alike cancels. Cells without rounds fall back to ``p50_speedup``
and ``sample_interval`` (the raw samples, thinned to ``MAX_BOOTSTRAP_SAMPLES``).

The ``question`` a comparison answers (``comparison_pairs``): ``vs_baseline``, ``int8_on_pruned``
(``<m>-int8`` against a pruned ``<m>``), ``pruning_on_int8`` (against ``<baseline>-int8``),
``sparse_kernel`` (``<m>-int8-sparse`` against ``<m>-int8``), ``aligned_widths`` (``<m>-rN`` against
``<m>``: widths rounded down to multiples of N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from slimdeploy.bench import stats
from slimdeploy.bench.cellkey import CellKey
from slimdeploy.records.base import ABSENT
from slimdeploy.records.bench import QUESTIONS, BenchModel, Cell, Comparison
from slimdeploy.rundir import aligned_source
from slimdeploy.runtimes.registry import sort_key

MAX_BOOTSTRAP_SAMPLES = 5000

VS_BASELINE, INT8_ON_PRUNED, PRUNING_ON_INT8, SPARSE_KERNEL, ALIGNED_WIDTHS = QUESTIONS
INT8_IDEAL = "FLOP ratio only: no INT8 speedup is assumed"


def thin(samples, limit: int = MAX_BOOTSTRAP_SAMPLES) -> np.ndarray:
    samples = np.asarray(samples, dtype=float)
    step = max(1, math.ceil(samples.size / limit))
    return samples[::step]


def _blocks_by_process(cell: Cell) -> list[list]:
    """A cell's interleaved blocks, one list per worker process (one process when not recorded)."""
    blocks = stats.split_blocks(cell.samples_ms, cell.blocks)
    counts = cell.processes or [len(blocks)]
    if sum(counts) != len(blocks):
        raise ValueError("process block counts do not add up to the blocks")
    return stats.split_counts(blocks, counts)


def _round_interval(base: Cell, cell: Cell, confidence: float, resamples: int, seed: int):
    """(speedup, low, high, rounds) from the cells' interleaved blocks; None without blocks."""
    if not base.blocks or not cell.blocks:
        return None
    try:
        base_parts, cell_parts = _blocks_by_process(base), _blocks_by_process(cell)
        if len(base_parts) != len(cell_parts):
            return None
        return stats.process_round_interval(list(zip(base_parts, cell_parts)), confidence=confidence,
                                            resamples=resamples, seed=seed)
    except ValueError:  # blocks that do not match the samples (a hand-edited file): samples only
        return None


@dataclass(frozen=True)
class SpeedupInterval:
    """``rounds``: the paired estimate and interval a comparison's verdict stands on; ``low``/``high``:
    its union with ``sample_interval``, which the regression gate judges on."""

    low: float
    high: float
    sample_interval: tuple[float, float]
    rounds: tuple[float, float, float, int] | None  # (speedup, low, high, rounds); None without blocks


def verdict_interval(base: Cell, cell: Cell, *, confidence: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> SpeedupInterval:
    """Both intervals of two cells (the regression gate judges across two runs, where rounds are not paired)."""
    _, s_low, s_high = stats.speedup_interval(thin(base.samples_ms), thin(cell.samples_ms),
                                              confidence=confidence, resamples=resamples, seed=seed)
    rounds = _round_interval(base, cell, confidence, resamples, seed)
    low, high = (min(s_low, rounds[1]), max(s_high, rounds[2])) if rounds is not None else (s_low, s_high)
    return SpeedupInterval(low, high, (s_low, s_high), rounds)


def _ratio(a, b):
    return a / b if a and b else None


def _is_int8(info: BenchModel) -> bool:
    return info.precision == "int8"


def comparison_pairs(names, models: dict[str, BenchModel], baseline: str) -> list[tuple[str, str, str]]:
    """(model, its baseline, question) for the models measured in one group (``names``)."""
    present = set(names)
    info = {name: models.get(name, BenchModel()) for name in names}
    pairs = [(name, baseline, VS_BASELINE) for name in names if name != baseline] if baseline in present else []
    # The baseline's own int8 variant (dense-int8), which pruned int8 variants are held against.
    baseline_int8 = next((n for n in names if _is_int8(info[n]) and info[n].variant_of == baseline
                          and not info[n].sparse_weights_decompression_rate), None)
    for name in names:
        aligned_of = aligned_source(name)
        if aligned_of in present and not _is_int8(info[name]):
            pairs.append((name, aligned_of, ALIGNED_WIDTHS))
        source = info[name].variant_of
        if not _is_int8(info[name]) or source not in present:
            continue
        if info[name].sparse_weights_decompression_rate:  # the sparse twin of an int8 variant
            pairs.append((name, source, SPARSE_KERNEL))
        elif source != baseline:
            pairs.append((name, source, INT8_ON_PRUNED))
            if baseline_int8 is not None:
                pairs.append((name, baseline_int8, PRUNING_ON_INT8))
    return pairs


def compare(cells: list[Cell], models: dict[str, BenchModel], baseline: str, *,
            threshold: float = stats.DEFAULT_THRESHOLD, confidence: float = 0.95, resamples: int = 2000,
            seed: int = 0) -> list[Comparison]:
    by_key: dict[tuple, dict] = {}
    for cell in cells:
        if cell.ok and cell.samples_ms:
            by_key.setdefault(CellKey.of(cell).group, {})[cell.model] = cell
    comparisons = [_comparison(group[against], group[name], models.get(against, BenchModel()),
                               models.get(name, BenchModel()), question, threshold, confidence, resamples, seed)
                   for group in by_key.values()
                   for name, against, question in comparison_pairs(sorted(group), models, baseline)]
    return sorted(comparisons, key=lambda c: (sort_key(c.runtime), c.runtime, c.threads, c.batch,
                                              QUESTIONS.index(c.question), c.model))


def _comparison(base: Cell, cell: Cell, base_info: BenchModel, info: BenchModel, question: str, threshold: float,
                confidence: float, resamples: int, seed: int) -> Comparison:
    interval = verdict_interval(base, cell, confidence=confidence, resamples=resamples, seed=seed)
    p50_speedup = base.stats.p50_ms / cell.stats.p50_ms
    rounds = interval.rounds
    speedup, low, high = rounds[:3] if rounds else (p50_speedup, *interval.sample_interval)
    ideal = _ratio(base_info.flops, info.flops)
    return Comparison(
        model=cell.model, baseline=base.model, runtime=cell.runtime, batch=cell.batch, threads=cell.threads,
        mode=cell.mode, settings=cell.settings or {}, speedup=speedup, ci_low=low, ci_high=high,
        confidence=confidence, ideal_speedup=ideal, efficiency=speedup / ideal if ideal else None,
        # What a sparse kernel could reach; dense kernels do not get it.
        nonzero_ideal_speedup=_ratio(base_info.flops, info.nonzero_flops),
        sample_interval=list(interval.sample_interval),
        round_interval=[rounds[1], rounds[2]] if rounds else None, round_speedup=rounds[0] if rounds else None,
        rounds=rounds[3] if rounds else 0, p50_speedup=p50_speedup,
        verdict=stats.verdict(speedup, low, high, threshold), threshold=threshold,
        baseline_p50_ms=base.stats.p50_ms, model_p50_ms=cell.stats.p50_ms, baseline_cell=base.id, model_cell=cell.id,
        unstable=bool(base.unstable or cell.unstable),
        bootstrap_samples=[int(thin(base.samples_ms).size), int(thin(cell.samples_ms).size)], question=question,
        ideal_assumes=INT8_IDEAL if _is_int8(info) or _is_int8(base_info) else ABSENT)
