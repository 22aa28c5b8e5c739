"""Small things a new user tripped on, each through the real CLI on real runtimes."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli_here
from errors_doc import check
from test_bench_artifacts import keras_mlp, onnx_mlp, random_layers

from slimdeploy.cli import COMMANDS

QUICK = ("--runtime", "onnxruntime", "--batch", "1", "--min-iters", "20", "--min-time", "0.05", "--warmup", "3",
         "--instances", "1", "--processes", "1", "--quiet")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_reads_right(command):
    # argparse %-formats help= but not description/epilog: a doubled %% there shows as is.
    result = run_cli_here(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "%%" not in result.stdout and "usage: slimdeploy" in result.stdout
    if command == "bench":
        text = " ".join(result.stdout.split())  # argparse wraps lines
        assert "bootstrap 95% interval" in text and "several % at batch 1" in text


def test_bench_of_files_compares_with_the_first_file_given(tmp_path):
    wide = onnx_mlp(tmp_path / "wide.onnx", random_layers((300, 150, 10)))
    narrow = onnx_mlp(tmp_path / "narrow.onnx", random_layers((30, 15, 10)))
    result = run_cli_here("bench", str(wide), str(narrow), "--input-range", "0,2", "--out", str(tmp_path / "b.json"), *QUICK)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "b.json").read_text())
    assert results["config"]["baseline_model"] == "wide"
    assert results["config"]["input_range"] == [0, 2]
    assert [(c["model"], c["baseline"]) for c in results["comparisons"]] == [("narrow", "wide")]


def test_a_single_model_bench_prints_its_latency_table(tmp_path):
    only = onnx_mlp(tmp_path / "only.onnx", random_layers((30, 10)))
    result = run_cli_here("bench", str(only), "--out", str(tmp_path / "b.json"), *QUICK[:-1])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "only" in line and "ORT" in line]
    assert len(lines) == 1 and "µs" in lines[0], result.stderr


def test_lone_files_side_by_side_export_to_their_own_directories(tmp_path):
    keras_mlp(tmp_path / "a.keras", random_layers((20, 10)))
    keras_mlp(tmp_path / "b.keras", random_layers((12, 10), seed=1))
    for name in ("a", "b"):
        result = run_cli_here("export", str(tmp_path / f"{name}.keras"), "--target", "onnx", "--verify-limit", "200", "--quiet")
        assert result.returncode == 0, result.stderr
    for name in ("a", "b"):
        manifest = json.loads((tmp_path / "exports" / name / "export.json").read_text())
        assert [a["model"] for a in manifest["artifacts"]] == [name] and manifest["artifacts"][0]["valid"]
    # The export directory is a bench source of its own.
    result = run_cli_here("bench", str(tmp_path / "exports" / "a"), str(tmp_path / "exports" / "b" / "b.onnx"),
                     "--out", str(tmp_path / "ab.json"), *QUICK)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "ab.json").read_text())["config"]["baseline_model"] == "a"


@pytest.mark.parametrize("layout", ["run directory", "lone export directory"])
def test_a_failed_artifact_is_noted_once_by_model_and_target(tmp_path, layout):
    source = tmp_path / "run" if layout == "run directory" else tmp_path / "exports" / "m"
    exports = source / "exports" if layout == "run directory" else source
    exports.mkdir(parents=True)
    onnx_mlp(exports / "m.onnx", random_layers((20, 10)))
    failed = {"model": "m", "target": "openvino", "path": None, "valid": False, "error": "max abs diff 0.3"}
    artifacts = [{"model": "m", "target": "onnx", "path": "m.onnx", "valid": True},
                 {**failed, "precision": "fp32"}, {**failed, "precision": "fp16"}]
    (exports / "export.json").write_text(json.dumps({"artifacts": artifacts}))
    result = run_cli_here("bench", str(source), "--out", str(tmp_path / "b.json"), *QUICK[:-1])
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: skipped")]
    assert notes == ["note: skipped m/openvino: not valid in export.json (max abs diff 0.3)"], result.stderr


def test_no_winner_is_named_without_controls(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    result = run_cli_here("prune", str(run_dir), "--mode", "structured", "--rounds", "1", "--epochs", "1", "--no-controls")
    assert result.returncode == 0, result.stderr
    assert "final round, test accuracy by reset:" in result.stderr, result.stderr
    assert "winner by validation" not in result.stderr and "None" not in result.stderr


@pytest.mark.parametrize(("value", "case"), [("5,2", "bench-input-range-reversed"), ("0,inf", "bench-input-range-reversed"),
                                           ("0", "bench-input-range-not-numbers")])
def test_a_bad_input_range_is_refused(tmp_path, value, case):
    only = onnx_mlp(tmp_path / "only.onnx", random_layers((30, 10)))
    result = run_cli_here("bench", str(only), f"--input-range={value}", "--out", str(tmp_path / "b.json"))
    check(case, result.returncode, result.stderr, "--input-range")
    assert not (tmp_path / "b.json").exists()


def test_input_range_from_a_settings_table_is_checked_and_kept():
    from slimdeploy.bench.settings import BenchSettings
    from slimdeploy.errors import UserError

    settings = BenchSettings.from_dict({"input_range": [0, 5]})
    assert settings.input_range == (0, 5) and settings.to_dict()["input_range"] == [0, 5]
    assert BenchSettings().to_dict()["input_range"] is None
    with pytest.raises(UserError, match="--input-range: .* LOW below HIGH, got 5,5"):
        BenchSettings.from_dict({"input_range": [5, 5]})
