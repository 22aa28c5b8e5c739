"""The README's own-model lines run as written, on a small model of one's own.

The three commands of "Your own model in three commands" are read from README.md and run in a
fresh directory holding `my_model.keras` and `my_data.npz` (a tabular zoo model, trained
outside slimdeploy), then the `report` line below them. Only `bench` gets extra options, to
keep the test to seconds: one runtime, batch 1, a short measurement. Nothing else is added.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

from slimdeploy.cli import main
from zoo import trained

README = Path(__file__).resolve().parent.parent / "README.md"
QUICK_BENCH = ["--runtime", "onnxruntime", "--batch", "1", "--min-iters", "20", "--min-time", "0.1", "--warmup", "3",
               "--instances", "2", "--processes", "1"]


def own_model_commands() -> list[list[str]]:
    text = README.read_text()
    section = text[text.index("## Your own model"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    report = re.search(r"`(slimdeploy report [^`]+)`", section).group(1)
    return [*commands, shlex.split(report)]


def test_readme_lines_are_prune_export_bench_then_report():
    assert [command[:2] for command in own_model_commands()] == [
        ["slimdeploy", "prune"], ["slimdeploy", "export"], ["slimdeploy", "bench"], ["slimdeploy", "report"]]


def test_readme_own_model_lines_run_as_written(tmp_path, monkeypatch):
    model, npz = trained("tabular", tmp_path / "outside")
    shutil.copy(model, tmp_path / "my_model.keras")
    shutil.copy(npz, tmp_path / "my_data.npz")
    monkeypatch.chdir(tmp_path)
    for command in own_model_commands():
        argv = command[1:] + (QUICK_BENCH if command[1] == "bench" else []) + ["--quiet"]
        assert main(argv) == 0, command
    run = tmp_path / "runs" / "my_model"
    lottery = json.loads((run / "structured" / "lottery.json").read_text())
    assert lottery["adopted"]["theta0"] is False and lottery["settings"]["reset"] == "trained"
    exports = json.loads((run / "exports" / "export.json").read_text())
    assert {a["target"] for a in exports["artifacts"]} >= {"onnx", "openvino"}
    assert all(a["valid"] for a in exports["artifacts"])
    bench = json.loads((run / "bench.json").read_text())
    assert [c["model"] for c in bench["comparisons"]] == ["structured"]
    assert (run / "report" / "report.md").is_file()
