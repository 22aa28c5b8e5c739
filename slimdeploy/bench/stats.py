"""Statistics for latency samples: summaries, bootstrap speedup intervals, verdicts.

A comparison needs an effect size and significance (asv, pyperf): the speedup is an
estimate with a 95% bootstrap interval, and the verdict (``verdict``) is asv's rule: ``faster``
when the speedup is beyond ``1 + threshold`` AND the interval excludes 1.0 (``slower``: below
``1 - threshold`` and the interval below 1.0).
"""

from __future__ import annotations

import numpy as np

from slimdeploy.records.base import ABSENT
from slimdeploy.records.bench import VERDICTS, Stability

FASTER, SLOWER, NO_DIFFERENCE = VERDICTS
DEFAULT_THRESHOLD = 0.05
# Round or process spread beyond which a cell is flagged unstable (per-call CV cannot say it:
# microsecond calls are heavy-tailed); how it was chosen: docs/ARCHITECTURE.md, "Statistics".
UNSTABLE_SPREAD = 0.40
STABILITY_BASIS = "round medians"
# Bootstrap indices drawn per slice (8 bytes each): bounds the memory of an interval.
BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000


def summarize(samples_ms, batch: int) -> dict:
    """A cell's latency statistics, as bench.json writes them (``records.bench.Stats``)."""
    samples = np.asarray(samples_ms, dtype=float)
    if samples.size == 0:
        raise ValueError("no samples")
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    mean = float(samples.mean())
    stdev = float(samples.std(ddof=1)) if samples.size > 1 else 0.0
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": mean, "stdev_ms": stdev,
            "min_ms": float(samples.min()), "max_ms": float(samples.max()), "cv": stdev / mean if mean > 0 else 0.0,
            "throughput_per_s": batch * 1000.0 / float(p50) if p50 > 0 else 0.0, "n": int(samples.size)}


def round_stability(samples_ms, block_sizes, processes=None, threshold: float = UNSTABLE_SPREAD) -> Stability:
    """Whether a cell's interleaved rounds agree (the evidence behind its ``unstable`` flag): they
    disagree when the machine's speed changed during the cell. ``round_spread``: (p90 - p10) / median
    of the round medians; ``process_spread``: the slowest process's median of round medians over the
    fastest's, minus 1 (None with fewer than two processes). One round is not judged."""
    rounds = len(block_sizes or [])
    stability = Stability(basis=STABILITY_BASIS, rounds=rounds, round_spread=None, process_spread=None,
                          threshold=threshold)
    if rounds < 2:
        return stability.replace(note="one round: no spread to judge" if rounds == 1 else "no rounds recorded: not judged")
    medians = np.array([np.median(block) for block in split_blocks(samples_ms, block_sizes)])
    p10, p50, p90 = np.percentile(medians, [10, 50, 90])
    process_medians = [np.median(part) for part in _process_rounds(medians, processes) if part.size]
    two = len(process_medians) >= 2 and min(process_medians) > 0
    return stability.replace(round_spread=float((p90 - p10) / p50) if p50 > 0 else 0.0,
                             process_spread=float(max(process_medians) / min(process_medians) - 1.0) if two else None)


def _process_rounds(medians: np.ndarray, processes) -> list[np.ndarray]:
    """Round medians split by the worker process that measured them (all one process when unknown)."""
    return split_counts(medians, processes) if processes and sum(processes) == medians.size else [medians]


def split_counts(values, counts) -> list:
    """``values`` cut into consecutive parts of ``counts`` items."""
    edges = np.cumsum([0, *counts])
    return [values[a:b] for a, b in zip(edges[:-1], edges[1:])]


def is_unstable(stability: Stability) -> bool:
    """True when the rounds or the processes disagree beyond the threshold (``round_stability``)."""
    return any(spread is not None and spread > stability.threshold
               for spread in (stability.round_spread, stability.process_spread) if spread is not ABSENT)


def stability_words(stability: Stability) -> str:
    """For people: ``round spread 52%, process spread 8%`` (the spreads that were measured)."""
    parts = [f"{name} spread {spread:.0%}" for name, spread in (("round", stability.round_spread),
                                                                  ("process", stability.process_spread))
             if spread is not None and spread is not ABSENT]
    return ", ".join(parts) or stability.note or "not judged"


def speedup_interval(baseline_ms, candidate_ms, *, confidence: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Speedup = median(baseline) / median(candidate), with a percentile-bootstrap interval (each
    replicate resamples both sets of raw latencies independently)."""
    baseline = np.asarray(baseline_ms, dtype=float)
    candidate = np.asarray(candidate_ms, dtype=float)
    if baseline.size == 0 or candidate.size == 0:
        raise ValueError("both sample sets must be non-empty")
    rng = np.random.default_rng(seed)
    ratios = _resampled_medians(baseline, resamples, rng) / _resampled_medians(candidate, resamples, rng)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return float(np.median(baseline) / np.median(candidate)), float(low), float(high)


def _resampled_medians(samples: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The medians of ``resamples`` bootstrap resamples, drawn a slice of rows at a time (the same
    indices as drawn at once) to bound the memory of the index array."""
    rows = max(1, BOOTSTRAP_CHUNK_ELEMENTS // samples.size)
    medians = []
    for start in range(0, resamples, rows):
        indices = rng.integers(0, samples.size, size=(min(rows, resamples - start), samples.size))
        medians.append(np.median(samples[indices], axis=1))
    return np.concatenate(medians)


def verdict(speedup: float, low: float, high: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """asv's rule (see the module docstring); not "the whole interval beyond the threshold", which hangs
    the verdict on the interval's far edge, which moves between runs more than the estimate does."""
    if speedup > 1.0 + threshold and low > 1.0:
        return FASTER
    if speedup < 1.0 - threshold and high < 1.0:
        return SLOWER
    return NO_DIFFERENCE


LEGACY_RULE, MEDIANS_RULE, PAIRED_RULE = "legacy", "medians", "paired"


def rule_text(threshold: float = DEFAULT_THRESHOLD, basis: str = PAIRED_RULE) -> str:
    """The speedup and verdict in words, for the report. ``basis``: ``paired`` (the cells' interleaved
    rounds), ``medians`` (cells without recorded rounds) or ``legacy`` (a bench.json from before the
    paired estimate: its comparisons lack ``p50_speedup``)."""
    if basis == LEGACY_RULE:
        return (f"Speedup is the baseline's median latency divided by the model's; this bench.json predates the "
                f"paired estimate, and its verdicts were 'faster' only when the whole interval (per-call and round "
                f"bootstraps united) lay above {1 + threshold:g}x, 'slower' below {1 - threshold:g}x.")
    estimate = ("the median over interleaved rounds of the baseline's latency in a round divided by the model's in "
                "the same round (the two ran side by side), with a 95% bootstrap interval over worker processes and "
                "rounds" if basis == PAIRED_RULE else
                "the baseline's median latency divided by the model's (the cells recorded no interleaved rounds), "
                "with a 95% bootstrap interval over the raw latencies")
    return (f"Speedup is {estimate}; the verdict is 'faster' when the speedup is above {1 + threshold:g}x and the "
            f"whole interval above 1.0 (an effect beyond the threshold and a significant one), 'slower' when it is "
            f"below {1 - threshold:g}x and the whole interval below 1.0.")


def split_blocks(samples_ms, block_sizes) -> list[np.ndarray]:
    """Raw samples -> one array per interleaved block (``block_sizes`` as the harness recorded)."""
    samples = np.asarray(samples_ms, dtype=float)
    if sum(block_sizes) != samples.size:
        raise ValueError(f"block sizes add up to {sum(block_sizes)}, not to the {samples.size} samples")
    return split_counts(samples, block_sizes)


def process_round_interval(processes, *, confidence: float = 0.95, resamples: int = 2000,
                           seed: int = 0) -> tuple[float, float, float, int]:
    """Speedup from interleaved rounds: the median over rounds of (baseline block median / candidate
    block median), with a two-level bootstrap: processes (what a process fixes for all its rounds, e.g.
    memory layout), then whole rounds within each (latencies within a burst of load are correlated).
    ``processes``: one (baseline_blocks, candidate_blocks) pair per worker process. Returns (speedup,
    low, high, rounds)."""
    ratios = []
    for baseline_blocks, candidate_blocks in processes:
        rounds = min(len(baseline_blocks), len(candidate_blocks))
        if rounds:
            base = np.array([np.median(b) for b in baseline_blocks[:rounds]])
            cand = np.array([np.median(c) for c in candidate_blocks[:rounds]])
            ratios.append(base / cand)
    if not ratios:
        raise ValueError("no rounds to compare")
    rng = np.random.default_rng(seed)
    # Rounds resampled within each process, for every replicate at once.
    within = [r[rng.integers(0, r.size, size=(resamples, r.size))] for r in ratios]
    picks = rng.integers(0, len(ratios), size=(resamples, len(ratios)))
    replicates = _replicate_medians(within, picks)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    everything = np.concatenate(ratios)
    return float(np.median(everything)), float(low), float(high), int(everything.size)


def _replicate_medians(within: list[np.ndarray], picks: np.ndarray) -> np.ndarray:
    """Replicate i's median over the processes ``picks[i]``, each with its resampled rounds
    ``within[p][i]``; gathered for all replicates at once where the processes have equally many rounds."""
    replicates = np.arange(len(picks))
    if len({w.shape[1] for w in within}) == 1:
        gathered = np.stack(within)[picks, replicates[:, None]]  # (replicates, processes picked, rounds)
        return np.median(gathered.reshape(len(picks), -1), axis=1)
    return np.array([np.median(np.concatenate([within[p][i] for p in picks[i]])) for i in replicates])
