"""dense/metrics.json, lottery.json and round metrics as records: files written by the previous
version read and write back unchanged (keys, values and key order)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimdeploy.errors import UserError
from slimdeploy.records.lottery import LotteryRecord, PruneStart, Round
from slimdeploy.records.run import DataInfo, DenseMetrics

PREVIOUS = Path(__file__).parent / "fixtures" / "previous_version"
MODES = ("structured", "unstructured")


def raw(relative: str) -> dict:
    return json.loads((PREVIOUS / relative).read_text())


def assert_round_trips(record_class, relative: str):
    original = raw(relative)
    record = record_class.load(PREVIOUS / relative)
    written = record.to_json()
    assert written == original
    assert json.dumps(written) == json.dumps(original)  # key order too, at every level
    return record


def test_dense_metrics_round_trip():
    metrics = assert_round_trips(DenseMetrics, "dense/metrics.json")
    assert isinstance(metrics.data, DataInfo) and metrics.data.sha256.startswith("3b54")
    assert metrics.recipe["name"] == "fashion_mlp" and metrics.seed == 0 and metrics.flops == 563400


@pytest.mark.parametrize("mode", MODES)
def test_lottery_json_round_trips(mode):
    record = assert_round_trips(LotteryRecord, f"{mode}/lottery.json")
    assert all(isinstance(entry, Round) for entry in record.rounds)
    assert [entry.round for entry in record.rounds] == [0, 1, 2]
    assert record.mode == mode and record.complete and record.ticket.path == "ticket.keras"
    assert isinstance(record.data, DataInfo) and record.data.override is False


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", (1, 2))
def test_round_metrics_round_trip(mode, k):
    entry = assert_round_trips(Round, f"{mode}/round_{k}/metrics.json")
    assert entry.round == k and entry.path == f"round_{k}/model.keras"


@pytest.mark.parametrize("mode", MODES)
def test_prune_settings_file_round_trips(mode):
    assert assert_round_trips(PruneStart, f"{mode}/settings.json").settings["mode"] == mode


def test_round_zero_keeps_its_time_before_its_path():
    dense = LotteryRecord.load(PREVIOUS / "structured" / "lottery.json").rounds[0]
    assert "train_seconds" not in dense.to_json()
    keys = list(dense.to_json())
    assert keys.index("seconds") < keys.index("path")
    built = Round(round=0, params=1, nonzero_params=1, params_fraction=1.0, flops=2, nonzero_flops=2,
                  weights_remaining=1.0, zero_weights=0, prunable_weights=1, widths=[1], val_accuracy=None,
                  test_accuracy=0.5, path="../dense/model.keras", seconds=1.0)
    assert list(built.to_json())[-2:] == ["seconds", "path"]


def test_a_newer_lottery_schema_is_refused():
    with pytest.raises(UserError, match="has schema_version 2; this slimdeploy reads version 1"):
        LotteryRecord.from_json({**raw("structured/lottery.json"), "schema_version": 2}, "lottery.json")


def test_every_prune_mode_has_a_registered_pruning_method():
    from slimdeploy.prune.methods import method_names, pruning_method
    from slimdeploy.prune.settings import MODES

    assert method_names() == MODES
    assert [pruning_method(mode).name for mode in MODES] == list(MODES)
    with pytest.raises(UserError, match="unknown pruning mode"):
        pruning_method("channels")
