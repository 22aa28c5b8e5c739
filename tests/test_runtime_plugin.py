"""Adding a runtime is one module: a fake runtime registered here, from the test, is listed,
benched and reported like the built-in ones.

"fakert" is ONNX Runtime's session under another name, so it needs nothing installed. It
reaches the bench workers (separate processes) the way any outside plug-in does: its module
is named in SLIMDEPLOY_RUNTIME_PLUGINS and importable from PYTHONPATH.
"""

from __future__ import annotations

import json

import pytest

from conftest import forget_plugin_module, install_plugin_module, run_cli_here
from slimdeploy.runtimes import registry
from test_bench_artifacts import onnx_mlp, random_layers

PLUGIN_MODULE = "fake_runtime_plugin"
PLUGIN_SOURCE = '''
from dataclasses import replace

from slimdeploy.runtimes import onnxruntime, registry

PLUGIN = registry.register(replace(onnxruntime.PLUGIN, name="fakert", display_name="Fake RT",
                                   short_name="FRT", module=__name__))
'''


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch):
    install_plugin_module(tmp_path, monkeypatch, PLUGIN_MODULE, PLUGIN_SOURCE, (registry.PLUGINS_ENV,))
    try:
        yield registry.plugin("fakert")  # first use imports the module named in the variable
    finally:
        registry.RUNTIMES.pop("fakert", None)
        forget_plugin_module(PLUGIN_MODULE)


def test_a_registered_plugin_answers_every_registry_question(fake_runtime):
    from slimdeploy.bench.settings import BenchSettings

    assert registry.names()[-1] == "fakert"
    assert registry.display_name("fakert") == "Fake RT" and registry.short_name("fakert") == "FRT"
    assert registry.sort_key("fakert") == len(registry.RUNTIMES) - 1 < registry.sort_key("unknown")
    assert registry.runtime_options("fakert", BenchSettings()) == {"graph_optimization": "all"}
    assert not registry.accepts_reshape("fakert") and not registry.can_crosscheck("fakert")
    assert registry.all_availability()["fakert"]["available"] is True
    assert fake_runtime.profile(None) is None  # no profile hook yet


def test_a_fake_runtime_is_listed_benched_and_reported(fake_runtime, tmp_path):
    models = [onnx_mlp(tmp_path / "models" / f"{name}.onnx", random_layers(widths))
              for name, widths in (("wide", (64, 10)), ("narrow", (16, 10)))]
    out = tmp_path / "bench.json"
    bench = run_cli_here("bench", *map(str, models), "--runtime", "fakert,onnxruntime", "--batch", "1",
                         "--min-iters", "20", "--min-time", "0.05", "--warmup", "2", "--instances", "1",
                         "--processes", "1", "--out", str(out))
    assert bench.returncode == 0, bench.stderr
    results = json.loads(out.read_text())
    assert results["runtimes"]["fakert"]["available"] is True  # listed
    cells = [c for c in results["cells"] if c["runtime"] == "fakert"]
    assert len(cells) == 2 and all(c["status"] == "ok" for c in cells), cells  # benched

    report = run_cli_here("report", str(out), "--out", str(tmp_path / "report"),
                          "--format", "md", "--no-step-summary")
    assert report.returncode == 0, report.stderr
    assert "Fake RT" in (tmp_path / "report" / "report.md").read_text()  # reported


def test_a_plugin_with_its_own_file_type_needs_no_reader_elsewhere(tmp_path):
    from dataclasses import replace

    from slimdeploy.bench.artifacts import inspect_artifact, known_suffixes
    from slimdeploy.errors import ModelFileError
    from slimdeploy.runtimes import onnxruntime

    artifact = tmp_path / "model.fake"
    artifact.write_bytes(b"only the fake runtime reads this")
    with pytest.raises(ModelFileError, match="unsupported file type"):
        inspect_artifact(artifact)
    registry.register(replace(onnxruntime.PLUGIN, name="fakefile", suffixes=(".fake",), module=__name__))
    try:
        assert known_suffixes()[-1] == ".fake"
        assert inspect_artifact(artifact).path == artifact  # its runtime checks it when it opens it
    finally:
        registry.RUNTIMES.pop("fakefile", None)
    assert ".fake" not in known_suffixes()
