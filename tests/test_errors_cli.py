"""Every documented bad-input case (docs/errors.md) through the CLI: the documented exit status,
one line naming the file or option, no traceback, nothing half-written.

Starting TensorFlow costs ~5 s per process, and there are ~100 cases; so the cases run through
``slimdeploy.cli.main`` — exactly what ``python -m slimdeploy`` calls — one after another in one
child process (``run_batch``), and a sample of them through ``run_cli`` as separate processes
to show that both give the same line and status. Cases that need a process of their own (file
size limits, a worker killed, code in a model file) use ``run_cli``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from errors_doc import DOC, check, our_lines, rows
from errors_inputs import add_malformed, build, leftovers, snapshot

BENCH_QUICK = ("--batch", "1", "--min-iters", "5", "--min-time", "0", "--warmup", "1", "--instances", "1", "--quiet")


# Each case: ID in docs/errors.md -> f(inputs) -> (argv, [what the line must name], [paths that must not exist after]).
def _cases():
    out = lambda f, name: f.base / "out" / name  # noqa: E731 - a fresh output path per case
    return {
        # --- Files
        "train-recipe-missing": lambda f: (["train", "--recipe", str(f.base / "nope.toml")], ["nope.toml"], []),
        "train-recipe-empty": lambda f: (["train", "--recipe", str(f.toml_empty)], [f.toml_empty], []),
        "train-recipe-corrupt": lambda f: (["train", "--recipe", str(f.toml_corrupt)], [f.toml_corrupt], []),
        "train-data-missing": lambda f: (["train", "--data", str(f.base / "nowhere"), "--out", str(out(f, "t1"))],
                                         [f.base / "nowhere"], [out(f, "t1")]),
        "train-data-empty-dir": lambda f: (["train", "--data", str(f.data_empty_dir), "--out", str(out(f, "t2"))],
                                           [f.data_empty_dir], [out(f, "t2")]),
        "train-idx-truncated": lambda f: (["train", "--data", str(f.idx_truncated), "--out", str(out(f, "t3"))],
                                          ["train-labels-idx1-ubyte.gz"], [out(f, "t3")]),
        "train-npz-corrupt": lambda f: (["train", "--data", str(f.npz_garbage), "--out", str(out(f, "t4"))],
                                        [f.npz_garbage], [out(f, "t4")]),
        "train-npz-pickled": lambda f: (["train", "--data", str(f.npz_pickled), "--out", str(out(f, "t5"))],
                                        [f.npz_pickled], [out(f, "t5")]),
        "prune-run-missing": lambda f: (["prune", str(f.base / "no_run")], [f.base / "no_run"], []),
        "prune-run-is-file": lambda f: (["prune", str(f.onnx)], [f.onnx], []),
        "prune-keras-truncated": lambda f: (["prune", str(f.run_truncated)], [f.run_truncated / "dense" / "model.keras"],
                                            [f.run_truncated / "structured"]),
        "prune-metrics-corrupt": lambda f: (["prune", str(f.run_bad_metrics)], [f.run_bad_metrics / "dense" / "metrics.json"],
                                            [f.run_bad_metrics / "structured"]),
        "prune-resume-settings-corrupt": lambda f: (["prune", str(f.run_bad_settings), "--mode", "structured", "--resume"],
                                                    [f.run_bad_settings / "structured" / "settings.json"], []),
        "export-source-missing": lambda f: (["export", str(f.base / "nope.keras"), "--out", str(out(f, "e1"))],
                                            ["nope.keras"], [out(f, "e1")]),
        "export-keras-empty": lambda f: (["export", str(f.keras_empty), "--out", str(out(f, "e2"))], [f.keras_empty], [out(f, "e2")]),
        "export-keras-truncated": lambda f: (["export", str(f.keras_truncated), "--out", str(out(f, "e3"))],
                                             [f.keras_truncated], [out(f, "e3")]),
        "export-onnx-given": lambda f: (["export", str(f.onnx), "--out", str(out(f, "e4"))], [f.onnx], [out(f, "e4")]),
        "export-json-given": lambda f: (["export", str(f.json_not_bench), "--out", str(out(f, "e5"))],
                                        [f.json_not_bench], [out(f, "e5")]),
        "bench-onnx-empty": lambda f: (["bench", str(f.onnx_empty), "--out", str(out(f, "b1.json"))], [f.onnx_empty], [out(f, "b1.json")]),
        "bench-onnx-truncated": lambda f: (["bench", str(f.onnx_truncated), "--out", str(out(f, "b2.json"))],
                                          [f.onnx_truncated], [out(f, "b2.json")]),
        "bench-onnx-corrupt": lambda f: (["bench", str(f.onnx_garbage), "--out", str(out(f, "b3.json"))],
                                        [f.onnx_garbage], [out(f, "b3.json")]),
        "bench-xml-without-bin": lambda f: (["bench", str(f.xml_no_bin), "--out", str(out(f, "b4.json"))],
                                           [f.xml_no_bin, "mlp.bin"], [out(f, "b4.json")]),
        "bench-bin-too-short": lambda f: (["bench", str(f.xml_short_bin), "--out", str(out(f, "b5.json"))],
                                         [f.xml_short_bin, "mlp.bin"], [out(f, "b5.json")]),
        "bench-bin-too-long": lambda f: (["bench", str(f.xml_long_bin), "--out", str(out(f, "b23.json"))],
                                        [f.xml_long_bin, "mlp.bin"], [out(f, "b23.json")]),
        "bench-onnx-tensor-size": lambda f: (["bench", str(f.onnx_huge), "--out", str(out(f, "b24.json"))],
                                            [f.onnx_huge, "kernel0"], [out(f, "b24.json")]),
        "bench-onnx-external-size": lambda f: (["bench", str(f.onnx_ext_short), "--out", str(out(f, "b25.json"))],
                                              [f.onnx_ext_short, "short.bin"], [out(f, "b25.json")]),
        "bench-onnx-checker": lambda f: (["bench", str(f.onnx_unsorted), "--out", str(out(f, "b26.json"))],
                                        [f.onnx_unsorted], [out(f, "b26.json")]),
        "bench-xml-corrupt": lambda f: (["bench", str(f.xml_corrupt), "--out", str(out(f, "b6.json"))],
                                       [f.xml_corrupt], [out(f, "b6.json")]),
        "bench-keras-truncated": lambda f: (["bench", str(f.keras_truncated), "--out", str(out(f, "b7.json"))],
                                           [f.keras_truncated], [out(f, "b7.json")]),
        "bench-json-given": lambda f: (["bench", str(f.json_not_bench), "--out", str(out(f, "b8.json"))],
                                      [f.json_not_bench], [out(f, "b8.json")]),
        "bench-export-json-corrupt": lambda f: (["bench", str(f.run_bad_export), "--out", str(out(f, "b9.json"))],
                                               [f.run_bad_export / "exports" / "export.json"], [out(f, "b9.json")]),
        "bench-resume-json-corrupt": lambda f: (["bench", str(f.onnx), "--resume", "--out", str(f.json_truncated)],
                                               [f.json_truncated], []),
        "report-json-truncated": lambda f: (["report", str(f.json_truncated), "--out", str(out(f, "r1"))],
                                            [f.json_truncated], [out(f, "r1")]),
        "report-json-empty": lambda f: (["report", str(f.json_empty), "--out", str(out(f, "r2"))], [f.json_empty], [out(f, "r2")]),
        "report-json-not-bench": lambda f: (["report", str(f.json_not_bench), "--out", str(out(f, "r3"))],
                                           [f.json_not_bench], [out(f, "r3")]),
        "report-onnx-given": lambda f: (["report", str(f.onnx), "--out", str(out(f, "r4"))], [f.onnx], [out(f, "r4")]),
        "report-baseline-corrupt": lambda f: (["report", str(f.bench), "--baseline", str(f.json_truncated)],
                                             [f.json_truncated], []),
        "report-lottery-corrupt": lambda f: (["report", str(f.report_run), "--out", str(out(f, "r5"))],
                                            [f.report_run / "structured" / "lottery.json"], [out(f, "r5")]),
        "run-config-missing": lambda f: (["run", "--config", str(f.base / "nope.toml"), "--name", "c1"], ["nope.toml"],
                                         [f.base / "runs" / "c1"]),
        "run-config-empty": lambda f: (["run", "--config", str(f.toml_empty), "--name", "c2"], [f.toml_empty],
                                       [f.base / "runs" / "c2"]),
        "run-config-corrupt": lambda f: (["run", "--config", str(f.toml_corrupt), "--name", "c3"], [f.toml_corrupt],
                                         [f.base / "runs" / "c3"]),
        # --- Models
        "prune-no-dense": lambda f: (["prune", str(f.run_no_dense)], [f.run_no_dense], [f.run_no_dense / "structured"]),
        "prune-zero-units": lambda f: (["prune", str(f.run_narrow), "--mode", "structured", "--target", "0.01"],
                                       ["--target 0.01"], [f.run_narrow / "structured"]),
        "prune-nan-weights": lambda f: (["prune", str(f.run_inf)], [f.run_inf / "dense" / "model.keras"], [f.run_inf / "structured"]),
        "export-nan-weights": lambda f: (["export", str(f.keras_inf), "--out", str(out(f, "e6"))], [f.keras_inf], [out(f, "e6")]),
        "bench-keras-nan-weights": lambda f: (["bench", str(f.keras_inf), "--out", str(out(f, "b10.json"))],
                                             [f.keras_inf], [out(f, "b10.json")]),
        "bench-onnx-nan-weights": lambda f: (["bench", str(f.onnx_nan), "--out", str(out(f, "b11.json"))],
                                            [f.onnx_nan, "kernel0"], [out(f, "b11.json")]),
        "prune-input-shape": lambda f: (["prune", str(f.run_input32)], [f.run_input32], [f.run_input32 / "structured"]),
        "export-input-shape": lambda f: (["export", str(f.keras_32), "--out", str(out(f, "e7"))], [f.keras_32], [out(f, "e7")]),
        "bench-input-shape": lambda f: (["bench", str(f.onnx), "--input-shape", "32,32", "--out", str(out(f, "b12.json"))],
                                       [f.onnx, "--input-shape"], [out(f, "b12.json")]),
        "prune-several-inputs": lambda f: (["prune", str(f.run_two_inputs)], [f.run_two_inputs / "dense" / "model.keras"],
                                           [f.run_two_inputs / "structured"]),
        "export-several-outputs": lambda f: (["export", str(f.keras_multi_out), "--out", str(out(f, "e8"))],
                                            [f.keras_multi_out], [out(f, "e8")]),
        "bench-several-inputs": lambda f: (["bench", str(f.onnx_two_inputs), "--out", str(out(f, "b13.json"))],
                                          [f.onnx_two_inputs], [out(f, "b13.json")]),
        # --- Untrusted content
        "prune-lambda": lambda f: (["prune", str(f.run_lambda)], [f.run_lambda / "dense" / "model.keras"], [f.run_lambda / "structured"]),
        "export-lambda": lambda f: (["export", str(f.keras_lambda), "--out", str(out(f, "e9"))], [f.keras_lambda], [out(f, "e9")]),
        "bench-lambda": lambda f: (["bench", str(f.keras_lambda), "--runtime", "tensorflow", "--out", str(out(f, "b14.json"))],
                                  [f.keras_lambda], [out(f, "b14.json")]),
        "prune-zip-escape": lambda f: (["prune", str(f.run_escape)], [f.run_escape / "dense" / "model.keras", "../escaped.txt"],
                                       [f.run_escape / "structured"]),
        "export-zip-escape": lambda f: (["export", str(f.keras_escape), "--out", str(out(f, "e10"))],
                                       [f.keras_escape, "../escaped.txt"], [out(f, "e10")]),
        "bench-zip-escape": lambda f: (["bench", str(f.keras_escape), "--out", str(out(f, "b15.json"))],
                                      [f.keras_escape, "../escaped.txt"], [out(f, "b15.json")]),
        "bench-onnx-external-parent": lambda f: (["bench", str(f.onnx_ext_up), "--out", str(out(f, "b16.json"))],
                                                [f.onnx_ext_up, "../secret.bin"], [out(f, "b16.json")]),
        "bench-onnx-external-absolute": lambda f: (["bench", str(f.onnx_ext_abs), "--out", str(out(f, "b17.json"))],
                                                  [f.onnx_ext_abs], [out(f, "b17.json")]),
        "bench-onnx-external-link": lambda f: (["bench", str(f.onnx_ext_link), "--out", str(out(f, "b18.json"))],
                                              [f.onnx_ext_link, "link.bin"], [out(f, "b18.json")]),
        "bench-xml-doctype": lambda f: (["bench", str(f.xml_doctype), "--out", str(out(f, "b27.json"))],
                                       [f.xml_doctype], [out(f, "b27.json")]),
        # --- Options
        "prune-rate-range": lambda f: (["prune", str(f.run), "--rate", "1.0"], ["--rate"], []),
        "prune-target-range": lambda f: (["prune", str(f.run), "--target", "0"], ["--target"], []),
        "prune-rounds-range": lambda f: (["prune", str(f.run), "--rounds", "0"], ["--rounds"], []),
        "prune-epochs-range": lambda f: (["prune", str(f.run), "--epochs", "-1"], ["--epochs"], []),
        "prune-mode-unknown": lambda f: (["prune", str(f.run), "--mode", "random"], ["--mode", "random"], []),
        "prune-reset-unknown": lambda f: (["prune", str(f.run), "--reset", "rewind:x"], ["--reset", "rewind:x"],
                                          [f.run / "structured"]),
        "prune-rate-and-target": lambda f: (["prune", str(f.run), "--rate", "0.2", "--target", "0.1"], ["--target", "--rate"], []),
        "prune-resume-and-force": lambda f: (["prune", str(f.run), "--resume", "--force"], ["--force", "--resume"], []),
        "prune-scope-structured": lambda f: (["prune", str(f.run), "--mode", "structured", "--scope", "global"],
                                             ["--scope global"], [f.run / "structured"]),
        "export-resume-and-force": lambda f: (["export", str(f.keras), "--resume", "--force", "--out", str(out(f, "e16"))],
                                             ["--force", "--resume"], [out(f, "e16")]),
        "export-target-unknown": lambda f: (["export", str(f.keras), "--target", "tflite", "--out", str(out(f, "e11"))],
                                           ["--target", "tflite"], [out(f, "e11")]),
        "export-batch-range": lambda f: (["export", str(f.keras), "--batch", "0", "--out", str(out(f, "e12"))],
                                        ["--batch"], [out(f, "e12")]),
        "export-opset-range": lambda f: (["export", str(f.keras), "--opset", "9", "--out", str(out(f, "e13"))],
                                        ["opset"], [out(f, "e13")]),
        "export-verify-limit-range": lambda f: (["export", str(f.keras), "--verify-limit", "0", "--out", str(out(f, "e14"))],
                                               ["--verify-limit"], [out(f, "e14")]),
        # INT8 calibration size: checked by argparse before any data or model is read.
        "export-calibration-size-zero": lambda f: _calibration_case(f, "0", out(f, "e17")),
        "export-calibration-size-negative": lambda f: _calibration_case(f, "-5", out(f, "e18")),
        "export-calibration-size-not-integer": lambda f: _calibration_case(f, "2.5", out(f, "e19")),
        "bench-batch-range": lambda f: (["bench", str(f.onnx), "--batch", "1,0"], ["--batch"], []),
        "bench-threads-range": lambda f: (["bench", str(f.onnx), "--threads", "0"], ["--threads"], []),
        "bench-runtime-unknown": lambda f: (["bench", str(f.onnx), "--runtime", "onnxruntime,pytorch", "--out", str(out(f, "b19.json"))],
                                           ["--runtime", "pytorch"], [out(f, "b19.json")]),
        "bench-mode-unknown": lambda f: (["bench", str(f.onnx), "--mode", "fast"], ["--mode", "fast"], []),
        "bench-min-iters-range": lambda f: (["bench", str(f.onnx), "--min-iters", "0"], ["--min-iters"], []),
        "bench-max-below-min": lambda f: (["bench", str(f.onnx), "--min-iters", "100", "--max-iters", "10",
                                           "--out", str(out(f, "b20.json"))], ["--max-iters"], [out(f, "b20.json")]),
        "bench-resume-and-force": lambda f: (["bench", str(f.onnx), "--resume", "--force", "--out", str(out(f, "b21.json"))],
                                            ["--force", "--resume"], [out(f, "b21.json")]),
        "train-epochs-range": lambda f: (["train", "--epochs", "0"], ["--epochs"], []),
        "train-limit-range": lambda f: (["train", "--limit", "1", "--out", str(out(f, "t6"))], ["--limit"], [out(f, "t6")]),
        "train-recipe-unknown": lambda f: (["train", "--recipe", "resnet"], ["resnet"], []),
        "report-format-unknown": lambda f: (["report", str(f.bench), "--format", "md,pdf"], ["pdf"], []),
        "report-threshold-range": lambda f: (["report", str(f.bench), "--max-regression", "0%"], ["--max-regression"], []),
        "run-resume-and-force": lambda f: (["run", "--resume", "--force", "--name", "c4"], ["--resume", "--force"],
                                           [f.base / "runs" / "c4"]),
        # --- Environment
        "train-out-unwritable": lambda f: (["train", "--limit", "200", "--epochs", "1", "--out", str(f.a_file / "run")],
                                           [f.a_file / "run"], []),
        "export-out-unwritable": lambda f: (["export", str(f.keras), "--target", "onnx", "--out", str(f.a_file / "exports")],
                                            [f.a_file / "exports"], []),
        "bench-out-unwritable": lambda f: (["bench", str(f.onnx), "--runtime", "onnxruntime", *BENCH_QUICK[:-1],
                                            "--out", str(f.a_file / "b" / "bench.json")], [f.a_file / "b"], []),
        "bench-out-proc": lambda f: (["bench", str(f.onnx), "--runtime", "onnxruntime", *BENCH_QUICK[:-1],
                                      "--out", "/proc/slimdeploy-test/bench.json"], ["/proc/slimdeploy-test"], []),
        "report-out-unwritable": lambda f: (["report", str(f.bench), "--out", str(f.a_file / "report")],
                                            [f.a_file / "report"], []),
        "prune-data-missing": lambda f: (["prune", str(f.run), "--data", str(f.data_empty_dir)], [f.data_empty_dir],
                                         [f.run / "structured"]),
        "export-runtime-absent": lambda f: (["export", str(f.keras), "--target", "tensorrt", "--out", str(out(f, "e15"))],
                                           ["--target tensorrt"], [out(f, "e15")]),
        "bench-runtime-absent": lambda f: (["bench", str(f.engine), "--runtime", "tensorrt", "--out", str(out(f, "b22.json"))],
                                          ["tensorrt"], []),
    }


def _calibration_case(f, size: str, out: Path):
    return (["export", str(f.keras), "--precision", "int8", "--calibration-size", size, "--out", str(out)],
            ["--calibration-size", size], [out])


CASES = _cases()
# Run as separate `python -m slimdeploy` processes too: one or more per command and kind.
SAMPLED = ("train-recipe-corrupt", "prune-run-is-file", "export-onnx-given", "bench-onnx-tensor-size",
           "report-json-truncated", "run-config-corrupt", "bench-onnx-external-parent", "prune-rate-and-target")

DRIVER = r"""
import contextlib, io, json, os, sys, traceback
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from slimdeploy import cli
results = {}
for case_id, argv in json.load(open(sys.argv[1])).items():
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = None
    results[case_id] = {"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()}
json.dump(results, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def inputs(tiny_run, tmp_path_factory):
    return add_malformed(build(tmp_path_factory.mktemp("hostile"), tiny_run))


@pytest.fixture(scope="module")
def batch(inputs):
    """Every case through ``cli.main`` in one child process (cwd: a scratch directory)."""
    plans = {case_id: make(inputs) for case_id, make in CASES.items()}
    argvs = {case_id: [*argv, "--quiet"] if argv[0] != "run" else argv for case_id, (argv, _, _) in plans.items()}
    before = snapshot(inputs.base)
    todo, done = inputs.base / "cases.json", inputs.base / "results.json"
    todo.write_text(json.dumps(argvs))
    cwd = inputs.base / "cwd"
    cwd.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(todo), str(done)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(done.read_text())
    todo.unlink()
    done.unlink()
    return {"plans": plans, "argvs": argvs, "results": results, "before": before, "cwd": cwd}


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_case_gives_the_documented_line_and_status(batch, inputs, case_id):
    if case_id.endswith("runtime-absent") and _tensorrt_here():
        pytest.skip("TensorRT and a GPU are present: the runtime is not absent here")
    argv, named, absent = batch["plans"][case_id]
    result = batch["results"][case_id]
    check(case_id, result["code"], result["stderr"], *named)
    assert result["stdout"] == ""
    for path in absent:
        assert not Path(path).exists(), f"{case_id} left {path}"


def _tensorrt_here() -> bool:
    from slimdeploy.export.tensorrt import missing_requirements

    return not missing_requirements()


def test_nothing_half_written_and_no_input_changed(batch, inputs):
    assert not leftovers(inputs.base)
    after = snapshot(inputs.base)
    changed = sorted(p for p in batch["before"] if after.get(p) != batch["before"][p])
    assert not changed, changed
    assert not inputs.marker.exists(), "code from a model file ran"
    assert not (inputs.base / "runs" / "escaped.txt").exists() and not (inputs.base / "escaped.txt").exists()
    assert not any(batch["cwd"].iterdir()), list(batch["cwd"].iterdir())  # no default runs/ or bench.json


@pytest.mark.parametrize("case_id", SAMPLED)
def test_a_separate_process_prints_the_same(batch, inputs, case_id):
    argv = batch["argvs"][case_id]
    result = run_cli(*argv, cwd=batch["cwd"])
    line = check(case_id, result.returncode, result.stderr)
    assert line == our_lines(batch["results"][case_id]["stderr"])[0]


def test_every_documented_case_is_tested():
    here = Path(__file__).parent
    sources = "".join(p.read_text() for p in here.glob("test_errors_*.py"))
    documented = rows()
    untested = []
    for case_id, row in documented.items():
        cited = re.search(r"tests/(test_\w+\.py)::(test_\w+)", row.case)  # a case another test file covers
        if cited:
            assert f"def {cited.group(2)}(" in (here / cited.group(1)).read_text(), row.case
        elif f'"{case_id}"' not in sources:
            untested.append(case_id)
    assert not untested, untested
    undocumented = [case_id for case_id in CASES if case_id not in documented]
    assert not undocumented, undocumented
    # Exit statuses follow the convention: 2 the user's input, 1 the work, 130 interrupted.
    assert {row.exit for row in documented.values()} <= {0, 1, 2, 130}


def test_debug_shows_the_traceback(inputs, tmp_path):
    result = run_cli("bench", str(inputs.onnx_empty), "--debug", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr and "ModelFileError: artifact" in result.stderr


# --- Untrusted code: the payload is real, and no command runs it ------------------------------

def test_the_lambda_payload_would_run_if_loaded_unsafely(inputs, tmp_path):
    """The control: without safe mode, loading the file runs its code (so the CLI cases above
    would fail if any command loaded models unsafely)."""
    marker = tmp_path / "control.txt"
    model = tmp_path / "control.keras"
    load_unsafely = (
        "import sys, keras\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from errors_inputs import lambda_model\n"
        "from pathlib import Path\n"
        "lambda_model(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "assert not Path(sys.argv[2]).exists()\n"
        "keras.config.enable_unsafe_deserialization()\n"
        "keras.saving.load_model(sys.argv[1], safe_mode=False)(__import__('numpy').zeros((1, 28, 28)))\n"
    )
    subprocess.run([sys.executable, "-c", load_unsafely, str(model), str(marker), str(Path(__file__).parent)],
                   check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert marker.read_text() == "code in the model file ran"


def test_onnx_runtimes_refuse_external_data_outside_the_model_directory(inputs):
    """Every place that opens an ONNX file checks it itself too: the bench's runtime sessions
    (used by library callers without the bench's inspection) and export verification."""
    from slimdeploy.errors import ModelFileError
    from slimdeploy.export.onnx import OnnxTarget
    from slimdeploy.export.settings import ExportSettings
    from slimdeploy.runtimes.onnxruntime import OnnxRuntimeSession
    from slimdeploy.runtimes.openvino import OpenVinoSession

    openers = (lambda p: OnnxRuntimeSession(p, 1, 1), lambda p: OpenVinoSession(p, 1, 1),
               lambda p: OnnxTarget().open(p, ExportSettings()))
    for open_onnx in openers:
        for path in (inputs.onnx_ext_up, inputs.onnx_ext_abs, inputs.onnx_ext_link):
            with pytest.raises(ModelFileError, match="refused: tensor 'kernel0' keeps its data in"):
                open_onnx(path)
        open_onnx(inputs.onnx)  # a file without external data still opens


def test_runtime_sessions_refuse_malformed_files(inputs):
    """The sessions repeat the bench's length checks (library callers and export verification
    open files without the bench's inspection)."""
    from slimdeploy.errors import ModelFileError
    from slimdeploy.runtimes.onnxruntime import OnnxRuntimeSession
    from slimdeploy.runtimes.openvino import OpenVinoSession

    for open_onnx in (lambda p: OnnxRuntimeSession(p, 1, 1), lambda p: OpenVinoSession(p, 1, 1)):
        with pytest.raises(ModelFileError, match="is malformed: tensor 'kernel0' declares 60000x60000 FLOAT values"):
            open_onnx(inputs.onnx_huge)
    for xml, problem in ((inputs.xml_long_bin, "16 bytes too many"), (inputs.xml_short_bin, r"\(truncated\)")):
        with pytest.raises(ModelFileError, match=problem):
            OpenVinoSession(xml, 1, 1)
    OpenVinoSession(inputs.xml, 1, 1)  # the IR they were cut from opens


# --- Environment: full disk, a runtime crashing -----------------------------------------------

def _run_with_file_size_limit(limit_bytes: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI with RLIMIT_FSIZE: a write past the limit fails with EFBIG (Python ignores
    SIGXFSZ), the same OSError path as ENOSPC on a full disk, without filling a disk."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "slimdeploy", *args], cwd=cwd, preexec_fn=limit, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)


def test_train_on_a_full_disk_leaves_nothing(inputs, tmp_path):
    out = tmp_path / "run"
    result = _run_with_file_size_limit(64 * 1024, "train", "--limit", "200", "--epochs", "1", "--out", str(out),
                                       "--quiet", cwd=tmp_path)
    check("train-disk-full", result.returncode, result.stderr, out / "dense")
    assert not out.exists() and not leftovers(tmp_path)


def test_bench_on_a_full_disk_keeps_no_partial_file(inputs, tmp_path):
    out = tmp_path / "bench.json"
    result = _run_with_file_size_limit(4 * 1024, "bench", str(inputs.onnx), "--runtime", "onnxruntime", *BENCH_QUICK,
                                       "--out", str(out), cwd=tmp_path)
    check("bench-disk-full", result.returncode, result.stderr, out)
    assert not out.exists() and not leftovers(tmp_path)


def _workers(pid: int) -> list[int]:
    """The bench worker processes of ``pid`` (not its other children, such as `git` or `lscpu`)."""
    try:
        children = [int(part) for part in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    workers = []
    for child in children:
        try:
            if b"slimdeploy.bench.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
        except OSError:
            pass
    return workers


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs: an exited child its parent has not reaped yet (state Z) takes a
    signal without complaint, so ``os.kill`` succeeding says nothing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _bench_killing_first_worker(model: Path, runtimes: str, out: Path, cwd: Path):
    """Run the bench CLI and SIGKILL its first worker while it works; return (process, stderr, killed)."""
    args = [sys.executable, "-m", "slimdeploy", "bench", str(model), "--runtime", runtimes,
            "--batch", "1", "--min-iters", "5", "--min-time", "3", "--max-iters", "0", "--instances", "1",
            # One worker per runtime measures all 3 s: with several, each measures its share and
            # the first can be gone (a zombie that still takes the signal) before the kill below.
            "--processes", "1", "--quiet", "--out", str(out)]
    process = subprocess.Popen(args, cwd=cwd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = []

    def kill_first_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            workers = _workers(process.pid)
            if workers:
                time.sleep(1.5)  # loaded and measuring (min-time is 3 s)
                if not _alive(workers[0]):
                    return  # it finished first: the caller's assertion says so
                try:
                    os.kill(workers[0], signal.SIGKILL)
                except ProcessLookupError:
                    return
                killed.append(workers[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    _, stderr = process.communicate(timeout=300)
    killer.join()
    return process, stderr, killed


def test_a_runtime_crashing_mid_benchmark_loses_only_its_cells(inputs, tmp_path):
    """Kill the first (ONNX Runtime) worker while it measures: its cell is an error naming the
    signal, OpenVINO's cell is measured, the exit status is 0 and bench.json is complete."""
    out = tmp_path / "bench.json"
    process, stderr, killed = _bench_killing_first_worker(inputs.onnx, "onnxruntime,openvino", out, tmp_path)
    assert killed and process.returncode == 0, stderr
    assert our_lines(stderr) == [] and "Traceback" not in stderr
    results = json.loads(out.read_text())
    cells = {c["runtime"]: c for c in results["cells"]}
    assert cells["openvino"]["status"] == "ok"
    row = rows()["bench-runtime-crash"]
    assert cells["onnxruntime"]["status"] == "error"
    assert row.pattern().fullmatch(cells["onnxruntime"]["error"]), cells["onnxruntime"]["error"]
    assert results["complete"] is True and not leftovers(tmp_path)


def test_a_runtime_crashing_on_every_cell_is_a_failure_of_the_work(inputs, tmp_path):
    out = tmp_path / "bench.json"
    process, stderr, killed = _bench_killing_first_worker(inputs.onnx, "onnxruntime", out, tmp_path)
    assert killed, stderr
    check("bench-all-cells-crashed", process.returncode, stderr)
    assert json.loads(out.read_text())["cells"][0]["status"] == "error"  # the record says why
    assert not leftovers(tmp_path)


def test_readme_exit_status_section_matches_the_table():
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^## Exit status\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert section, "README.md has no '## Exit status' section"
    text = section.group(1)
    assert "docs/errors.md" in text
    for code in ("0", "1", "2", "130"):
        assert re.search(rf"`{code}`", text), code
    assert DOC.is_file()
