"""`slimdeploy bench` through the real CLI: one-line errors for bad input, JSON for scripts."""

from __future__ import annotations

import json


from conftest import run_cli
from slimdeploy.bench.results import validate
from test_bench_artifacts import onnx_mlp, onnx_models, openvino_ir, random_layers  # noqa: F401

QUICK = ("--min-iters", "20", "--min-time", "0.1", "--warmup", "3", "--instances", "2")


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_batch_zero_is_refused(onnx_models):  # noqa: F811
    assert_one_line_error(run_cli("bench", str(onnx_models["dense"]), "--batch", "1,0"), "--batch", "positive")


def test_an_unknown_runtime_is_refused(onnx_models):  # noqa: F811
    assert_one_line_error(run_cli("bench", str(onnx_models["dense"]), "--runtime", "onnxruntime,pytorch"),
                          "unknown runtime 'pytorch'", "onnxruntime")


def test_a_missing_source_is_refused(tmp_path):
    assert_one_line_error(run_cli("bench", str(tmp_path / "nowhere.onnx")), "does not exist")


def test_an_artifact_whose_input_does_not_fit_the_model_is_refused(onnx_models):  # noqa: F811
    assert_one_line_error(run_cli("bench", str(onnx_models["dense"]), "--input-shape", "32,32"),
                          "dense.onnx takes input [?,28,28]", "does not fit the model input [N,32,32]")


def test_an_ir_with_a_static_incompatible_shape_is_refused(onnx_models, tmp_path):  # noqa: F811
    small = onnx_mlp(tmp_path / "small.onnx", random_layers((20, 10), inputs=32 * 32), input_dims=(1, 32, 32))
    xml = openvino_ir(small, tmp_path / "small.xml")
    small.unlink()
    assert_one_line_error(run_cli("bench", str(onnx_models["dense"]), str(xml), "--baseline-model", "dense"),
                          "small.xml takes input [1,32,32]", "[N,28,28]")


def test_a_static_batch_that_cannot_run_the_requested_batch_is_refused(tmp_path):
    static = onnx_mlp(tmp_path / "static.onnx", random_layers((20, 10)), input_dims=(1, 28, 28))
    assert_one_line_error(run_cli("bench", str(static), "--runtime", "onnxruntime", "--batch", "1,64"),
                          "static batch size of 1", "--batch 64")


def test_an_unknown_baseline_model_is_refused(onnx_models):  # noqa: F811
    assert_one_line_error(run_cli("bench", str(onnx_models["dense"]), str(onnx_models["structured"]),
                                  "--baseline-model", "full"), "--baseline-model", "'full'")


def test_help_explains_the_options():
    result = run_cli("bench", "--help")
    assert result.returncode == 0
    for option in ("--runtime", "--batch", "--threads", "--mode", "--min-iters", "--min-time", "--crosscheck",
                   "--ort-opt", "--precision", "--baseline-model", "--resume", "--json"):
        assert option in result.stdout


def test_json_output_and_no_overwrite_without_force(onnx_models, tmp_path):  # noqa: F811
    out = tmp_path / "bench.json"
    args = ("bench", str(onnx_models["dense"]), str(onnx_models["structured"]), "--runtime", "onnxruntime",
            "--batch", "1,8", "--out", str(out), "--json", *QUICK)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    validate(printed)
    assert printed == json.loads(out.read_text())
    assert [(c["batch"], c["verdict"]) for c in printed["comparisons"]] == [(1, "faster"), (8, "faster")]
    assert "speedup" in result.stderr  # the verdict table goes to the terminal, not into the JSON
    again = run_cli(*args)
    assert_one_line_error(again, "already exists; pass --force")
    forced = run_cli(*args, "--force", "--quiet")
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr.strip() == ""


def test_inference_precision_and_its_old_spelling_set_the_same_setting(capsys):
    from slimdeploy.cli import build_parser
    from slimdeploy.commands.bench import PRECISION_NOTICE, settings_from_args

    parser = build_parser()
    new = settings_from_args(parser.parse_args(["bench", "m.onnx", "--inference-precision", "bf16"]))
    assert capsys.readouterr().err == ""
    old = settings_from_args(parser.parse_args(["bench", "m.onnx", "--precision", "bf16"]))
    assert new.openvino_precision == old.openvino_precision == "bf16"
    assert new == old
    assert capsys.readouterr().err.splitlines() == [PRECISION_NOTICE]
    assert "--precision is now --inference-precision" in PRECISION_NOTICE


def test_options_not_given_keep_the_settings_defaults():
    from slimdeploy.bench.settings import BenchSettings
    from slimdeploy.cli import build_parser
    from slimdeploy.commands.bench import settings_from_args

    parser = build_parser()
    assert settings_from_args(parser.parse_args(["bench", "m.onnx"])) == BenchSettings()
    given = settings_from_args(parser.parse_args(["bench", "m.onnx", "--min-iters", "30000", "--warmup", "3",
                                                  "--models", "a,b", "--input-range", "0,5", "--crosscheck"]))
    assert given.max_iters == 30000  # raised with --min-iters when --max-iters is not given
    assert (given.warmup_iters, given.models, given.input_range, given.crosscheck) == (3, ("a", "b"), (0, 5), True)
