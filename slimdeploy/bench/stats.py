"""Statistics for latency samples: summaries, bootstrap speedup intervals, verdicts.

A comparison needs an effect size and significance (asv, pyperf): the speedup is the
ratio of medians, its 95% interval comes from a percentile bootstrap over the raw
samples, and the verdict is ``faster`` only when the whole interval lies above
``1 + threshold`` (``slower`` when below ``1 - threshold``).
"""

from __future__ import annotations

import numpy as np

FASTER = "faster"
SLOWER = "slower"
NO_DIFFERENCE = "no significant difference"
DEFAULT_THRESHOLD = 0.05
# A cell whose coefficient of variation exceeds this is flagged unstable. Quiet cells on
# the 2-core test machines show CV of 2-8% for sub-millisecond calls (timer and scheduler
# jitter); above 10%, the median moves by more than the 5% verdict threshold between runs.
UNSTABLE_CV = 0.10
# Bootstrap indices drawn per slice (8 bytes each): bounds the memory of an interval.
BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000


def summarize(samples_ms, batch: int) -> dict:
    samples = np.asarray(samples_ms, dtype=float)
    if samples.size == 0:
        raise ValueError("no samples")
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    mean = float(samples.mean())
    stdev = float(samples.std(ddof=1)) if samples.size > 1 else 0.0
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": mean,
        "stdev_ms": stdev,
        "min_ms": float(samples.min()),
        "max_ms": float(samples.max()),
        "cv": stdev / mean if mean > 0 else 0.0,
        "throughput_per_s": batch * 1000.0 / float(p50) if p50 > 0 else 0.0,
        "n": int(samples.size),
    }


def is_unstable(stats: dict, threshold: float = UNSTABLE_CV) -> bool:
    return stats["cv"] > threshold


def speedup_interval(baseline_ms, candidate_ms, *, confidence: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Speedup = median(baseline) / median(candidate), with a percentile-bootstrap interval.

    Each bootstrap replicate resamples both sets of raw latencies independently.
    """
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
    """The medians of ``resamples`` bootstrap resamples, drawn a slice of rows at a time: one
    (resamples x samples) index array would take 320 MB at 20,000 samples. The generator yields
    the same indices whether drawn at once or in slices, so the interval does not change."""
    rows = max(1, BOOTSTRAP_CHUNK_ELEMENTS // samples.size)
    medians = []
    for start in range(0, resamples, rows):
        indices = rng.integers(0, samples.size, size=(min(rows, resamples - start), samples.size))
        medians.append(np.median(samples[indices], axis=1))
    return np.concatenate(medians)


def verdict(low: float, high: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    if low > 1.0 + threshold:
        return FASTER
    if high < 1.0 - threshold:
        return SLOWER
    return NO_DIFFERENCE


def split_blocks(samples_ms, block_sizes) -> list[np.ndarray]:
    """Raw samples -> one array per interleaved block (``block_sizes`` as the harness recorded)."""
    samples = np.asarray(samples_ms, dtype=float)
    edges = np.cumsum([0, *block_sizes])
    if edges[-1] != samples.size:
        raise ValueError(f"block sizes add up to {edges[-1]}, not to the {samples.size} samples")
    return [samples[a:b] for a, b in zip(edges[:-1], edges[1:])]


def process_round_interval(processes, *, confidence: float = 0.95, resamples: int = 2000,
                           seed: int = 0) -> tuple[float, float, float, int]:
    """Speedup from interleaved rounds measured in one or more worker processes: the median
    over rounds of (baseline block median / candidate block median), with a two-level
    bootstrap (processes, then rounds within each). Returns (speedup, low, high, rounds).

    ``processes``: one (baseline_blocks, candidate_blocks) pair per worker process. Block k
    of the baseline and block k of the candidate ran side by side in round k of the same
    process, so a round's ratio cancels drift slower than a round, and resampling whole
    rounds keeps the correlation of latencies within a burst of machine load
    (``speedup_interval`` treats every call as independent, which on a busy machine gives
    intervals narrower than the run-to-run spread). Resampling processes as well carries
    what a process fixes for all its rounds (where code and weights landed in memory): for
    identical models, one process alone gave ratios from 0.94 to 1.05 with intervals that
    excluded 1.0.
    """
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
    ``within[p][i]``. Processes with equally many rounds (the usual case) are gathered for all
    replicates at once: the same values as one replicate at a time, without 2,000 calls."""
    replicates = np.arange(len(picks))
    if len({w.shape[1] for w in within}) == 1:
        gathered = np.stack(within)[picks, replicates[:, None]]  # (replicates, processes picked, rounds)
        return np.median(gathered.reshape(len(picks), -1), axis=1)
    return np.array([np.median(np.concatenate([within[p][i] for p in picks[i]])) for i in replicates])
