"""Adding a backend is its modules plus their registration: a fake backend from outside the
package, one module written here, goes through export verification, bench and report like the
built-in ones, with nothing else in slimdeploy told about it.

"mirror" is ONNX Runtime under other names: its target writes the fp32 ONNX file under the
suffix ``.monnx``, its runtime ("mirrort", shown "Mirror RT" / "MRT") opens that file with ONNX
Runtime's session. The module registers both when imported; it is named in
SLIMDEPLOY_RUNTIME_PLUGINS and SLIMDEPLOY_EXPORT_PLUGINS and importable from PYTHONPATH, so the
bench workers (separate processes) load it as any outside plug-in.
"""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import forget_plugin_module, install_plugin_module, run_cli_here
from test_export import add_tickets

from slimdeploy.export import registry as targets
from slimdeploy.runtimes import registry as runtimes

PLUGIN_MODULE = "fake_backend_plugin"
PLUGIN_SOURCE = '''
import shutil
from dataclasses import replace

from slimdeploy.export import registry as targets
from slimdeploy.export.target import Exported, Target
from slimdeploy.runtimes import onnxruntime, registry as runtimes

PLUGIN = runtimes.register(replace(onnxruntime.PLUGIN, name="mirrort", display_name="Mirror RT", short_name="MRT",
                                   suffixes=(".monnx",), targets=("mirror",), module=__name__))


class MirrorTarget(Target):
    name = "mirror"
    display_name = "Mirror copy"
    suffixes = (".monnx",)
    runtime = "mirrort"

    def export(self, onnx_path, staging, model_name, settings):
        target = self.files(staging, model_name)[0]
        shutil.copyfile(onnx_path, target)
        return Exported(files=[target], converter="a copy of the ONNX file", details={"mirrored": True})


TARGET = targets.register(MirrorTarget())
'''


@pytest.fixture
def fake_backend(tmp_path, monkeypatch):
    install_plugin_module(tmp_path, monkeypatch, PLUGIN_MODULE, PLUGIN_SOURCE, (runtimes.PLUGINS_ENV, targets.PLUGINS_ENV))
    try:
        yield targets.get_target("mirror")  # first use imports the module named in the variables
    finally:
        runtimes.RUNTIMES.pop("mirrort", None)
        targets.TARGETS.pop("mirror", None)
        forget_plugin_module(PLUGIN_MODULE)


def test_the_fake_backend_answers_every_registry_question(fake_backend):
    from slimdeploy.export.settings import ExportSettings, target_choices

    assert targets.names()[-1] == "mirror" and runtimes.names()[-1] == "mirrort"
    assert "mirror" in target_choices() and ExportSettings().resolved_targets()[-1] == "mirror"  # "all" takes it
    assert ExportSettings(targets=["mirror"]).validated().resolved_targets() == ["mirror"]
    assert targets.display_name("mirror") == "Mirror copy" and runtimes.display_name("mirrort") == "Mirror RT"
    assert targets.verifying_runtime("mirror") == "mirrort"
    assert fake_backend.unavailable_reason() is None and fake_backend.from_onnx


def test_a_fake_backend_is_exported_verified_benched_and_reported(fake_backend, tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    add_tickets(run_dir)

    # Export: the plug-in's target is a --target choice, verified in its own runtime like ONNX.
    export = run_cli_here("export", str(run_dir), "--target", "onnx", "--target", "mirror", "--verify-limit", "500",
                          "--quiet")
    assert export.returncode == 0, export.stderr
    manifest = json.loads((run_dir / "exports" / "export.json").read_text())
    mirrored = {a["model"]: a for a in manifest["artifacts"] if a["target"] == "mirror"}
    assert sorted(mirrored) == ["dense", "structured", "unstructured"]
    for model, a in mirrored.items():
        assert a["valid"] and a["path"] == f"{model}.monnx" and (run_dir / "exports" / a["path"]).is_file(), a
        assert a["runtime"] == "mirrort" and a["mirrored"] and a["converter"] == "a copy of the ONNX file"
        assert a["tolerance"] == 1e-4 and a["max_abs_diff"] <= 1e-4 and a["top1_agreement"] >= 0.999
        onnx = next(o for o in manifest["artifacts"] if o["model"] == model and o["target"] == "onnx")
        assert a["sha256"] == onnx["sha256"] and a["test_accuracy"] == onnx["test_accuracy"]

    # Bench: its runtime runs its files, in worker processes that load the plug-in themselves.
    bench = run_cli_here("bench", str(run_dir), "--runtime", "onnxruntime,mirrort", "--batch", "1", "--min-iters", "20",
                         "--min-time", "0.05", "--warmup", "2", "--instances", "1", "--processes", "1")
    assert bench.returncode == 0, bench.stderr
    assert "\n MRT " in bench.stderr  # its short name in the verdict table
    results = json.loads((run_dir / "bench.json").read_text())
    cells = [c for c in results["cells"] if c["runtime"] == "mirrort"]
    assert len(cells) == 3 and all(c["status"] == "ok" and c["artifact"].endswith(".monnx") for c in cells), cells
    assert {c["model"] for c in results["comparisons"] if c["runtime"] == "mirrort"} == {"structured", "unstructured"}
    # export.json's accuracy of each file is credited to the runtime that verified it (the export registry says which).
    assert results["models"]["dense"]["runtime_test_accuracy"]["mirrort"] == mirrored["dense"]["test_accuracy"]

    # Report: named as the plug-in names itself, in every table.
    report = run_cli_here("report", str(run_dir), "--out", str(tmp_path / "report"), "--format", "md",
                          "--no-step-summary")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "**Which model to ship:**" in text and "On Mirror RT," in text and "On ONNX Runtime," in text
    assert "| Mirror RT |" in text and "Accuracy, Mirror RT" in text
    assert "Mirror copy file (raw / gzip)" in text and "| Mirror copy | dense.monnx |" in text
