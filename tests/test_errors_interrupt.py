"""SIGINT / SIGTERM in the middle of `prune`, `export` and `bench`, through the real CLI:
exit status 130 and one line, finished rounds / artifacts / cells kept, nothing partial under a
final name, and `--resume` (prune, export, bench) finishes the job without redoing finished work.

(`slimdeploy run` killed at ten random moments: tests/test_run_pipeline.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, run_cli
from errors_doc import check
from errors_inputs import leftovers
from test_bench_artifacts import onnx_mlp, random_layers

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "slimdeploy", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_when(process: subprocess.Popen, ready, sig: int, timeout: float = 300) -> str:
    """Send ``sig`` once ``ready()`` is true; return the process's stderr after it exits."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"ended before the moment to interrupt: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "the moment to interrupt never came"
        time.sleep(0.01)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    return stderr


def test_prune_interrupted_keeps_finished_rounds_and_resumes(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    mode_dir = run_dir / "unstructured"
    options = ["prune", str(run_dir), "--mode", "unstructured", "--rounds", "3", "--epochs", "1", "--no-controls", "--quiet"]
    process = start(*options, cwd=tmp_path)
    stderr = signal_when(process, lambda: (mode_dir / "round_1" / "metrics.json").exists(), signal.SIGINT)
    check("prune-interrupted", process.returncode, stderr)
    assert sorted(p.name for p in (mode_dir / "round_1").iterdir()) == ["metrics.json", "model.keras", "state.npz"]
    assert not (mode_dir / "ticket.keras").exists() and not leftovers(run_dir)
    if (mode_dir / "lottery.json").exists():
        assert json.loads((mode_dir / "lottery.json").read_text())["complete"] is False
    kept = (mode_dir / "round_1" / "model.keras").stat().st_mtime_ns

    again = run_cli(*options, cwd=tmp_path)
    check("prune-rerun-after-interrupt", again.returncode, again.stderr, mode_dir)
    resumed = run_cli(*options, "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads(resumed.stdout)
    assert record["complete"] is True and [r["round"] for r in record["rounds"]] == [0, 1, 2, 3]
    assert (mode_dir / "round_1" / "model.keras").stat().st_mtime_ns == kept  # not trained again
    assert (mode_dir / "ticket.keras").is_file() and not leftovers(run_dir)


def test_export_interrupted_keeps_only_complete_verified_artifacts(tiny_run, tmp_path):
    import onnx

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    out = run_dir / "exports"
    args = ["export", str(run_dir), "--target", "onnx", "--target", "openvino", "--verify-limit", "300", "--quiet"]
    process = start(*args, cwd=tmp_path)
    # The ONNX artifact is verified, renamed into place and recorded; OpenVINO is converting or verifying.
    stderr = signal_when(process, lambda: (out / "export.partial.json").exists(), signal.SIGTERM)
    check("export-interrupted", process.returncode, stderr)
    names = sorted(p.name for p in out.iterdir())
    assert "export.json" not in names and not leftovers(run_dir), names  # no manifest for a half-done export
    assert set(names) <= {"dense.onnx", "dense.bin", "dense.xml", "export.partial.json"}
    onnx.checker.check_model(onnx.load(str(out / "dense.onnx")))  # complete, not half-written
    if "dense.xml" in names:
        assert "dense.bin" in names  # the weights are renamed into place before the .xml
    recorded = {(a["model"], a["target"]) for a in json.loads((out / "export.partial.json").read_text())["artifacts"]}
    assert ("dense", "onnx") in recorded
    kept = (out / "dense.onnx").stat().st_mtime_ns

    again = run_cli(*args, cwd=tmp_path)
    check("export-rerun-after-interrupt", again.returncode, again.stderr, out)
    other = run_cli(*args, "--resume", "--opset", "16", cwd=tmp_path)
    check("export-resume-other-settings", other.returncode, other.stderr, out / "export.partial.json")
    resumed = run_cli(*args, "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads(resumed.stdout)
    assert all(a["valid"] for a in manifest["artifacts"])
    assert [(a["model"], a["target"]) for a in manifest["artifacts"]] == [("dense", "onnx"), ("dense", "openvino")]
    assert (out / "dense.onnx").stat().st_mtime_ns == kept  # verified before the interruption: not redone
    assert not (out / "export.partial.json").exists() and (out / "export.json").is_file()
    assert not leftovers(run_dir)
    # Resuming a finished export shows it as it is.
    finished = run_cli(*args, "--resume", "--json", cwd=tmp_path)
    assert finished.returncode == 0 and json.loads(finished.stdout)["created"] == manifest["created"]


def test_bench_interrupted_keeps_finished_cells_and_resumes(tmp_path):
    model = onnx_mlp(tmp_path / "mlp.onnx", random_layers((16, 10), seed=0))
    out = tmp_path / "bench.json"
    options = ["bench", str(model), "--runtime", "onnxruntime,openvino", "--batch", "1", "--min-iters", "5",
               "--min-time", "2", "--instances", "1", "--quiet", "--out", str(out)]
    process = start(*options, cwd=tmp_path)
    # bench.json is first written when the ONNX Runtime worker has finished; OpenVINO then runs.
    stderr = signal_when(process, out.exists, signal.SIGINT)
    check("bench-interrupted", process.returncode, stderr)
    partial = json.loads(out.read_text())
    status = {c["runtime"]: c["status"] for c in partial["cells"]}
    assert partial["complete"] is False and status["onnxruntime"] == "ok" and status["openvino"] == "pending"
    assert not leftovers(tmp_path)
    kept = next(c["samples_ms"] for c in partial["cells"] if c["runtime"] == "onnxruntime")

    again = run_cli(*options, cwd=tmp_path)
    check("bench-rerun-after-interrupt", again.returncode, again.stderr, out)
    resumed = run_cli(*options, "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout)
    assert final["complete"] is True and all(c["status"] == "ok" for c in final["cells"])
    assert next(c["samples_ms"] for c in final["cells"] if c["runtime"] == "onnxruntime") == kept
    assert json.loads(out.read_text())["complete"] is True and not leftovers(tmp_path)


def test_signals_are_documented_for_every_long_command():
    from errors_doc import rows

    documented = rows()
    for command in ("prune", "export", "bench"):
        assert documented[f"{command}-interrupted"].exit == 130
    assert REPO.joinpath("tests", "test_run_pipeline.py").is_file()
