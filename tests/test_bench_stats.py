"""Statistics with known answers: summaries, speedup intervals, verdicts, comparisons, settings."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from slimdeploy.bench import stats
from slimdeploy.bench.compare import MAX_BOOTSTRAP_SAMPLES, compare, thin
from slimdeploy.bench.plan import cell_id
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.errors import UserError
from slimdeploy.records.bench import BenchModel, Cell


def latencies(median_ms: float, n: int = 400, seed: int = 0, spread: float = 0.05) -> np.ndarray:
    """Lognormal latencies around ``median_ms`` with a small right tail, as real calls look."""
    rng = np.random.default_rng(seed)
    return median_ms * rng.lognormal(0.0, spread, n)


def test_summary_of_known_samples():
    summary = stats.summarize([1.0, 2.0, 3.0, 4.0, 5.0], batch=10)
    assert summary["p50_ms"] == 3.0
    assert summary["min_ms"] == 1.0 and summary["max_ms"] == 5.0
    assert summary["mean_ms"] == 3.0
    assert summary["stdev_ms"] == pytest.approx(np.sqrt(2.5))
    assert summary["cv"] == pytest.approx(np.sqrt(2.5) / 3.0)
    assert summary["throughput_per_s"] == pytest.approx(10 * 1000 / 3.0)
    assert summary["n"] == 5


def test_a_two_fold_shift_is_faster_with_the_interval_around_two():
    baseline = latencies(2.0, seed=1)
    pruned = latencies(1.0, seed=2)
    speedup, low, high = stats.speedup_interval(baseline, pruned)
    assert speedup == pytest.approx(2.0, rel=0.03)
    assert low < speedup < high
    assert 1.9 < low and high < 2.1
    assert stats.verdict(speedup, low, high) == stats.FASTER


def test_equal_distributions_are_no_significant_difference():
    baseline = latencies(1.0, seed=3)
    same = latencies(1.0, seed=4)
    speedup, low, high = stats.speedup_interval(baseline, same)
    assert low <= 1.0 <= high
    assert stats.verdict(speedup, low, high) == stats.NO_DIFFERENCE


def test_a_two_fold_slowdown_is_slower():
    speedup, low, high = stats.speedup_interval(latencies(1.0, seed=5), latencies(2.0, seed=6))
    assert stats.verdict(speedup, low, high) == stats.SLOWER


def test_a_real_but_tiny_difference_is_not_called_faster():
    # 2% faster, measured precisely: significant statistically, but below the 5% threshold.
    speedup, low, high = stats.speedup_interval(latencies(1.02, n=4000, seed=7, spread=0.01),
                                                latencies(1.0, n=4000, seed=8, spread=0.01))
    assert 1.0 < low and high < 1.05
    assert stats.verdict(speedup, low, high) == stats.NO_DIFFERENCE


@hsettings(max_examples=60, deadline=None)
@given(low=st.floats(0.01, 100), below=st.floats(0, 1), above=st.floats(0, 10))
def test_verdict_needs_an_effect_beyond_the_threshold_and_an_interval_clear_of_one(low, below, above):
    speedup = low + below
    high = speedup + above
    verdict = stats.verdict(speedup, low, high)
    if speedup > 1.05 and low > 1.0:
        assert verdict == stats.FASTER
    elif speedup < 0.95 and high < 1.0:
        assert verdict == stats.SLOWER
    else:
        assert verdict == stats.NO_DIFFERENCE


@pytest.mark.parametrize("speedup, low, high, expected", [
    (0.92, 0.90, 0.96, stats.SLOWER),         # 8% slower and significant, though the interval reaches past 0.95
    (0.97, 0.93, 0.99, stats.NO_DIFFERENCE),  # significant, but within the threshold
    (0.90, 0.85, 1.01, stats.NO_DIFFERENCE),  # beyond the threshold, but not significant
    (1.08, 1.02, 1.12, stats.FASTER),
    (1.08, 0.99, 1.12, stats.NO_DIFFERENCE),
])
def test_asv_rule_cases(speedup, low, high, expected):
    assert stats.verdict(speedup, low, high) == expected


def test_the_bootstrap_is_drawn_in_slices_that_bound_its_memory():
    baseline, candidate = latencies(1.0, n=20_000, seed=1), latencies(1.0, n=20_000, seed=2)
    tracemalloc.start()
    try:
        stats.speedup_interval(baseline, candidate)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6  # one draw of every replicate's indices took 320 MB per sample set
    # The slices draw the same indices as one draw: the interval is the one it always was.
    rng = np.random.default_rng(0)
    base_idx = rng.integers(0, baseline.size, size=(300, baseline.size))
    cand_idx = rng.integers(0, candidate.size, size=(300, candidate.size))
    ratios = np.median(baseline[base_idx], axis=1) / np.median(candidate[cand_idx], axis=1)
    assert stats.speedup_interval(baseline, candidate, resamples=300)[1:] == tuple(np.quantile(ratios, [0.025, 0.975]))


def test_thinning_keeps_every_part_of_the_run_and_caps_the_size():
    samples = np.arange(23_456, dtype=float)
    thinned = thin(samples)
    assert len(thinned) <= MAX_BOOTSTRAP_SAMPLES
    assert thinned[0] == 0 and thinned[-1] > 23_456 * 0.99  # the end of the run is represented
    assert list(thin(np.arange(10.0))) == list(range(10))


def compare_records(cells: list[dict], models: dict, baseline: str) -> list[dict]:
    """``compare`` on records made from hand-written cells and models, as bench.json would hold them."""
    records = {name: BenchModel.from_json(info) for name, info in models.items()}
    return [c.to_json() for c in compare([Cell.from_json(c) for c in cells], records, baseline)]


def _cell(model, runtime, batch, samples, status="ok"):
    samples = list(samples)
    return {"id": cell_id(model, runtime, batch, 1, "latency", {}), "model": model, "runtime": runtime,
            "batch": batch, "threads": 1, "mode": "latency", "settings": {}, "status": status,
            "samples_ms": samples, "stats": stats.summarize(samples, batch) if samples else None,
            "unstable": False}


def test_comparisons_pair_each_model_with_the_baseline_of_its_own_cell_group():
    models = {"dense": {"flops": 1000}, "narrow": {"flops": 100}, "sparse": {"flops": 1000, "nonzero_flops": 100}}
    cells = [
        _cell("dense", "onnxruntime", 1, latencies(1.0, seed=1)),
        _cell("narrow", "onnxruntime", 1, latencies(0.25, seed=2)),
        _cell("sparse", "onnxruntime", 1, latencies(1.0, seed=3)),
        _cell("dense", "openvino", 1, latencies(2.0, seed=4)),
        _cell("narrow", "openvino", 1, latencies(0.5, seed=5)),
        _cell("sparse", "openvino", 1, [], status="error"),  # an error cell: no comparison
        _cell("narrow", "tensorflow", 1, latencies(0.5, seed=6)),  # no baseline here: no comparison
    ]
    result = {(c["runtime"], c["model"]): c for c in compare_records(cells, models, "dense")}
    assert set(result) == {("onnxruntime", "narrow"), ("onnxruntime", "sparse"), ("openvino", "narrow")}
    narrow = result[("onnxruntime", "narrow")]
    assert narrow["speedup"] == pytest.approx(4.0, rel=0.05)
    assert narrow["ideal_speedup"] == pytest.approx(10.0)
    assert narrow["efficiency"] == pytest.approx(narrow["speedup"] / 10.0)
    assert narrow["verdict"] == stats.FASTER
    sparse = result[("onnxruntime", "sparse")]
    assert sparse["ideal_speedup"] == 1.0  # zeros are computed by dense kernels
    assert sparse["nonzero_ideal_speedup"] == pytest.approx(10.0)
    assert sparse["verdict"] == stats.NO_DIFFERENCE
    assert result[("openvino", "narrow")]["baseline_p50_ms"] == pytest.approx(2.0, rel=0.05)
    # No interleaved rounds recorded: the ratio of medians and the per-call interval.
    assert narrow["rounds"] == 0 and narrow["speedup"] == narrow["p50_speedup"]
    assert [narrow["ci_low"], narrow["ci_high"]] == narrow["sample_interval"]


def _interleaved_cell(model, blocks, processes):
    cell = _cell(model, "openvino", 1, np.concatenate(blocks))
    cell.update(blocks=[len(b) for b in blocks], processes=processes)
    return cell


def test_with_rounds_the_comparison_is_the_paired_estimate_not_the_ratio_of_medians():
    # Latency with two modes that move together (the machine busy in some rounds), the int8
    # model slowed more: 47 -> 83 us fp32, 50 -> 100 us int8, as once measured at batch 1 on
    # OpenVINO with a busy loop on the test machine's other CPU.
    rng = np.random.default_rng(3)
    busy = rng.random(120) < 0.5
    base = [(83 if b else 47) * 1e-3 * rng.lognormal(0, 0.03, 6) for b in busy]
    cand = [(100 if b else 50) * 1e-3 * rng.lognormal(0, 0.03, 6) for b in busy]
    cells = [_interleaved_cell("dense", base, [60, 60]), _interleaved_cell("dense-int8", cand, [60, 60])]
    models = {"dense": {"flops": 100}, "dense-int8": {"flops": 100, "precision": "int8", "variant_of": "dense"}}
    (comparison,) = compare_records(cells, models, "dense")
    speedup, low, high, rounds = stats.process_round_interval([(base[:60], cand[:60]), (base[60:], cand[60:])])
    assert comparison["speedup"] == speedup == comparison["round_speedup"] and rounds == comparison["rounds"] == 120
    assert [comparison["ci_low"], comparison["ci_high"]] == [low, high] == comparison["round_interval"]
    assert comparison["p50_speedup"] == pytest.approx(np.median(np.concatenate(base)) / np.median(np.concatenate(cand)))
    assert comparison["verdict"] == stats.verdict(speedup, low, high) == stats.SLOWER


def test_cell_ids_name_every_dimension():
    assert cell_id("dense", "onnxruntime", 64, 1, "latency", {"graph_optimization": "all"}) == \
        "dense|onnxruntime|b64|t1|latency|opt=all"
    assert cell_id("dense", "tensorflow", 1, 2, "throughput", {}) == "dense|tensorflow|b1|t2|throughput"


@pytest.mark.parametrize("changes, message", [
    ({"runtimes": ("onnxruntime", "pytorch")}, "unknown runtime 'pytorch'"),
    ({"batches": (1, 0)}, "--batch"),
    ({"threads": (0,)}, "--threads"),
    ({"mode": "fast"}, "--mode"),
    ({"ort_graph_optimization": "max"}, "--ort-opt"),
    ({"openvino_precision": "int8"}, "--precision"),
    ({"min_iters": 500, "max_iters": 100}, "--max-iters"),
    ({"min_time": -1}, "--min-time"),
])
def test_bad_settings_are_one_line_user_errors(changes, message):
    import dataclasses

    with pytest.raises(UserError, match=message.replace("|", r"\|")) as info:
        dataclasses.replace(BenchSettings(), **changes).validated()
    assert "\n" not in str(info.value)


def test_settings_from_a_toml_table():
    settings = BenchSettings.from_dict({"runtimes": ["onnxruntime"], "batches": [1, 8], "min_time": 0.5})
    assert settings.runtimes == ("onnxruntime",) and settings.batches == (1, 8) and settings.min_time == 0.5
    with pytest.raises(UserError, match="unknown key.*warmpu"):
        BenchSettings.from_dict({"warmpu": 3})
    assert BenchSettings().to_dict()["batches"] == [1, 64, 256]


def _blocky(median_ms, rounds, per_block, seed, burst=0.3):
    """Interleaved-looking samples: each block shares a random load factor (a burst)."""
    rng = np.random.default_rng(seed)
    blocks = [median_ms * rng.lognormal(0, burst) * rng.lognormal(0, 0.02, per_block) for _ in range(rounds)]
    return blocks


def test_round_interval_finds_a_two_fold_shift():
    base = _blocky(2.0, 300, 20, seed=1, burst=0.05)
    fast = _blocky(1.0, 300, 20, seed=2, burst=0.05)
    speedup, low, high, rounds = stats.process_round_interval([(base, fast)])
    assert rounds == 300
    assert 1.9 < low < speedup < high < 2.1
    assert stats.verdict(speedup, low, high) == stats.FASTER


def test_round_interval_stays_honest_when_load_comes_in_bursts():
    # Same speed, but every block carries its own load burst: calls within a block are not
    # independent. Treating them as independent claims a precision the data does not have.
    base = _blocky(1.0, 40, 50, seed=3)
    same = _blocky(1.0, 40, 50, seed=4)
    _, s_low, s_high = stats.speedup_interval(np.concatenate(base), np.concatenate(same))
    r_speedup, r_low, r_high, _ = stats.process_round_interval([(base, same)])
    assert r_high - r_low > 2 * (s_high - s_low)
    assert r_low < 1.0 < r_high
    assert stats.verdict(r_speedup, r_low, r_high) == stats.NO_DIFFERENCE


def test_drift_shared_by_a_round_cancels_in_the_round_ratio():
    rng = np.random.default_rng(5)
    drift = np.linspace(1.0, 3.0, 200)  # the machine slows down threefold during the run
    base = [d * 1.5 * rng.lognormal(0, 0.01, 10) for d in drift]
    cand = [d * 1.0 * rng.lognormal(0, 0.01, 10) for d in drift]
    speedup, low, high, _ = stats.process_round_interval([(base, cand)])
    assert 1.48 < low < speedup < high < 1.52


def test_a_process_level_offset_widens_the_interval_to_cover_it():
    # Identical models, but each worker process fixes a layout that favours one of them by a
    # few percent (measured here: 0.94 to 1.06 for the same model). One process alone gives a
    # narrow interval that excludes 1.0; resampling processes covers the spread.
    base_fast = _blocky(1.0, 200, 10, seed=6, burst=0.02)
    cand_fast = _blocky(1.04, 200, 10, seed=7, burst=0.02)
    base_slow = _blocky(1.0, 200, 10, seed=8, burst=0.02)
    cand_slow = _blocky(0.96, 200, 10, seed=9, burst=0.02)
    _, low, high, _ = stats.process_round_interval([(base_fast, cand_fast)])
    assert high < 0.98  # one process: "significant", and wrong
    speedup, low, high, rounds = stats.process_round_interval([(base_fast, cand_fast), (base_slow, cand_slow)])
    assert rounds == 400
    assert low < 0.965 and high > 1.035 and low < speedup < high
    assert stats.verdict(speedup, low, high) == stats.NO_DIFFERENCE


def test_processes_keep_a_real_two_fold_shift_faster():
    pairs = [(_blocky(2.0, 100, 10, seed=s, burst=0.05), _blocky(1.0 * f, 100, 10, seed=s + 50, burst=0.05))
             for s, f in ((10, 1.03), (11, 0.97), (12, 1.0))]
    speedup, low, high, rounds = stats.process_round_interval(pairs)
    assert rounds == 300
    assert 1.85 < low < speedup < high < 2.15
    assert stats.verdict(speedup, low, high) == stats.FASTER


def test_blocks_split_samples_and_must_add_up():
    blocks = stats.split_blocks([1, 2, 3, 4, 5], [2, 3])
    assert [list(b) for b in blocks] == [[1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="add up"):
        stats.split_blocks([1, 2, 3], [2, 2])
