"""The Python API (``from slimdeploy import ...``): the notebook path over a user's own model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from slimdeploy.errors import UserError
from zoo import trained

QUICK_BENCH = dict(runtimes=("onnxruntime",), batches=(1,), min_iters=20, min_time=0.1, warmup_iters=3,
                   warmup_time=0.02, block_calls=3, instances=2, processes=1)


def test_importing_the_api_loads_no_tensorflow():
    code = ("import sys; from slimdeploy import prune_model, export_models, bench_models, make_report, adopt_model; "
            "print(json.dumps([m for m in ('tensorflow', 'keras', 'onnxruntime', 'openvino') if m in sys.modules]))")
    shown = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(shown.stdout) == []


def test_notebook_flow_returns_the_records_it_writes(tmp_path):
    from slimdeploy import adopt_model, bench_models, export_models, make_report, prune_model
    from slimdeploy.records.bench import BenchResults
    from slimdeploy.records.export import ExportManifest
    from slimdeploy.records.lottery import LotteryRecord

    model, npz = trained("tabular", tmp_path)
    run_dir = tmp_path / "run"
    lottery = prune_model(model, data=npz, out=run_dir, mode="structured", rounds=1, target=0.5, controls=False,
                          epochs=1, progress=None)
    assert isinstance(lottery, LotteryRecord)
    assert lottery.to_json() == json.loads((run_dir / "structured" / "lottery.json").read_text())
    assert lottery.adopted.theta0 is False
    assert lottery.settings["reset"] == "trained"  # an adopted model is fine-tuned by default

    manifest = export_models(run_dir, targets=("onnx",))
    assert isinstance(manifest, ExportManifest)
    assert {a.model for a in manifest.artifacts} == {"dense", "structured"}
    assert all(a.valid and a.max_abs_diff <= 1e-4 for a in manifest.artifacts)

    results = bench_models(run_dir, **QUICK_BENCH)
    assert isinstance(results, BenchResults)
    assert results.to_json() == json.loads((run_dir / "bench.json").read_text())
    [comparison] = [c for c in results.comparisons if c.model == "structured"]
    assert comparison.verdict in ("faster", "slower", "no significant difference")

    paths = make_report(run_dir, formats=("md",))
    assert "report.md" in [p.name for p in paths] and "report.html" not in [p.name for p in paths]
    assert all(p.is_file() for p in paths)

    # Another model adopted over it with force: nothing made from the old model may remain.
    other, _ = trained("tabular", tmp_path / "other", epochs=2)
    with pytest.raises(UserError, match="pass --force to replace it"):
        adopt_model(other, npz, out=run_dir)
    metrics = adopt_model(other, npz, out=run_dir, force=True)
    assert metrics.adopted.source == str(other.resolve())
    assert sorted(p.name for p in run_dir.iterdir()) == ["dense"]


def test_unknown_settings_are_one_line_errors(tmp_path):
    from slimdeploy import bench_models, prune_model

    with pytest.raises(UserError, match=r"prune_model: unknown setting\(s\) roundz"):
        prune_model(tmp_path, roundz=2)
    with pytest.raises(UserError, match="bench_models: give at least one"):
        bench_models()
