"""The report of a run with INT8 variants: the decision first, four plots, sizes, --max-drop.

Inputs come from tests/report_int8_inputs.py: seeded latency samples with chosen medians,
comparisons computed by slimdeploy.bench.stats; unstructured-int8 is the fastest of all but
2 points less accurate, INT8 on top of structured pruning is faster at batch 1, the same at
64 and slower at 256.
"""

from __future__ import annotations

import json
import re
from html import escape

import pytest
from conftest import run_cli
from report_int8_inputs import NO_AMX, make_int8_bench, write_int8_run
from test_report_inputs import write_json, write_run

IMAGE = '<img src="data:image/png;base64,'
ORT_DECISION = "On ONNX Runtime, the fastest model within 0.5 points of dense's accuracy is "
STACKED_ORT = ("INT8 on top of structured pruning (structured-int8 vs structured): faster at batch 1, slower at batch 256, "
               "no significant difference at batch 64 (ONNX Runtime).")


@pytest.fixture(autouse=True)
def _no_real_job_summary(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def report(run_dir, max_drop=None):
    """The real CLI, with --max-drop when given."""
    budget = [] if max_drop is None else ["--max-drop", str(max_drop)]
    result = run_cli("report", str(run_dir), "--force", "--no-step-summary", "--quiet", *budget)
    assert result.returncode == 0, result.stderr
    out = run_dir / "report"
    return {"md": (out / "report.md").read_text(), "html": (out / "report.html").read_text(),
            "json": json.loads((out / "report.json").read_text()), "out": out}


@pytest.fixture(scope="module")
def int8_report(tmp_path_factory):
    return report(write_int8_run(tmp_path_factory.mktemp("int8") / "run"))


def test_the_decision_comes_first_and_skips_the_fast_model_outside_the_budget(int8_report):
    md = int8_report["md"].splitlines()
    assert md[2].startswith("**Which model to ship:** " + ORT_DECISION)  # the first line after the title
    expected = (ORT_DECISION + "structured-int8 at batch 1 (")
    assert expected in md[2]
    assert re.search(r"and structured at batch 256 \(\d\.\d\dx dense, 86\.20% vs 86\.40%\)", md[2])
    # unstructured-int8 is the fastest at every batch, but 2 points worse: never named fastest.
    assert "is unstructured-int8" not in md[2] and "and unstructured-int8 at" not in md[2]
    assert "faster but outside the budget: unstructured-int8 (2.00 points below dense)" in md[2]
    assert "On OpenVINO, the fastest model within 0.5 points" in md[2]
    page = int8_report["html"]
    assert escape(ORT_DECISION) in page and page.index(escape(ORT_DECISION)) < page.index("<img")
    decision = int8_report["json"]["decision"]
    assert decision["max_drop"] == 0.5 and decision["fastest"][0].startswith(ORT_DECISION)
    picks = decision["fastest_within_budget"][0]["picks"]
    assert [(p["batch"], p["model"]) for p in picks] == [(1, "structured-int8"), (256, "structured")]


def test_stacking_and_sparse_lines_follow_the_seeded_verdicts(int8_report):
    bench = json.loads((int8_report["out"].parent / "bench.json").read_text())
    seeded = {c["batch"]: c["verdict"] for c in bench["comparisons"]
              if (c["model"], c["baseline"], c["runtime"]) == ("structured-int8", "structured", "onnxruntime")}
    assert seeded == {1: "faster", 64: "no significant difference", 256: "slower"}
    top = int8_report["md"].split("**In short:**")[0]
    assert STACKED_ORT in top
    assert "Structured pruning on top of INT8 (structured-int8 vs dense-int8): faster at every batch size measured (ONNX Runtime)." in top
    assert f"Sparse INT8 kernels: not applicable ({NO_AMX})." in top
    assert STACKED_ORT in int8_report["html"].split("<img")[0]
    # The old per-model sentences follow the decision.
    assert "On ONNX Runtime, the structured model is faster than dense at every batch size measured" in int8_report["md"]


def test_four_plots_and_the_sizes_of_every_variant(int8_report):
    page = int8_report["html"]
    assert page.count(IMAGE) == 4
    assert "![" in int8_report["md"] and "(accuracy_vs_latency.png)" in int8_report["md"]
    assert (int8_report["out"] / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(int8_report["json"]["plots"]) == ["accuracy_vs_latency.png", "accuracy_vs_weights.png",
                                                    "latency_vs_batch.png", "speedup.png"]
    # Models table: the INT8 row with its own per-runtime accuracy and file sizes (raw / gzip).
    row = next(line for line in int8_report["md"].splitlines() if line.startswith("| structured-int8 | "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "86.05%" in cells and "86.03%" in cells  # ONNX Runtime and OpenVINO accuracy
    assert "64.0 KiB / 51.2 KiB" in cells  # (62,067 params * 4 + 2000) / 4 + 3000 bytes; gzip 80%
    assert cells[-1] == "int8 (quantized from structured)"
    assert cells[6] == "–"  # an INT8 variant has no Keras accuracy of its own


def test_max_drop_changes_the_answer(tmp_path):
    run_dir = write_int8_run(tmp_path / "run", seed=3)
    tight = report(run_dir, 0.3)["md"].splitlines()[2]
    # structured-int8 (0.35 points below) no longer fits; structured (0.20 below) does.
    assert "within 0.3 points of dense's accuracy is structured at batch 1" in tight
    assert "structured-int8 (0.35 points below dense)" in tight
    none = report(run_dir, 0)["md"].splitlines()[2]
    assert "On ONNX Runtime, only dense qualifies: no other model stays within 0 points of dense's accuracy (86.40%)" in none
    loose = report(run_dir, 3)["md"].splitlines()[2]
    assert "within 3 points of dense's accuracy is unstructured-int8 at batch 1" in loose


def test_bad_max_drop_is_a_one_line_error(tmp_path):
    from slimdeploy.errors import UserError
    from slimdeploy.report.settings import ReportSettings

    with pytest.raises(UserError, match="--max-drop must be a number of accuracy points"):
        ReportSettings(max_drop=-1).validated()
    result = run_cli("report", str(write_run(tmp_path / "run")), "--max-drop", "-1")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "--max-drop" in result.stderr


def test_sparse_kernel_line_when_it_applies(tmp_path):
    bench = write_json(tmp_path / "bench.json", make_int8_bench(0, sparse=True))
    result = run_cli("report", str(bench), "--format", "md,json", "--no-step-summary", "--quiet")
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert ("Sparse INT8 kernel (did it make the unstructured INT8 model faster?): unstructured-int8-sparse vs "
            "unstructured-int8: no significant difference at any batch size (OpenVINO).") in md.split("**In short:**")[0]
    # Without export.json, the per-runtime accuracy comes from bench.json itself.
    assert "faster but outside the budget: unstructured-int8" in md.splitlines()[2]


def test_old_bench_files_keep_their_report_and_get_the_decision(tmp_path):
    run_dir = write_run(tmp_path / "run")
    old = report(run_dir)
    # Files from before INT8: the sentences as before (tests/test_report.py), and the accuracy-vs-latency
    # plot of the float models beside the other three.
    assert old["html"].count(IMAGE) == 4 and (old["out"] / "accuracy_vs_latency.png").is_file()
    assert "the structured model is faster than dense at every batch size measured" in old["md"]
    assert "Stacking" not in old["md"] and "Sparse INT8" not in old["md"]
    # structured costs 0.65 points: outside the default budget, so dense is the answer.
    first, across = old["md"].splitlines()[2].split(" Across runtimes ")
    assert first == (
        "**Which model to ship:** On ONNX Runtime, only dense qualifies: no model within 0.5 points of dense's accuracy "
        "is measurably faster; faster but outside the budget: structured (0.65 points below dense). On OpenVINO, "
        "only dense qualifies: no model within 0.5 points of dense's accuracy is measurably faster; faster but outside "
        "the budget: structured (0.65 points below dense).")
    # Then which runtime ran its pick fastest (here dense on both): ONNX Runtime's medians are the lower ones.
    assert "at batch 1, dense on ONNX Runtime (" in across and "at batch 256, dense on ONNX Runtime (" in across
    loose = report(run_dir, 1)["md"].splitlines()[2]
    assert "within 1 points of dense's accuracy is structured at batch 1 (" in loose and "and at batch 256 (" in loose


def test_accuracy_latency_plot_draws_float_models_alone(tmp_path):
    from slimdeploy.report import facts, plots
    from slimdeploy.report.load import load_source

    panels = facts.accuracy_latency_panels(load_source(write_run(tmp_path / "run")), 0.5)
    assert [p["runtime"] for p in panels] == ["onnxruntime", "openvino"]
    assert {p["model"] for p in panels[0]["points"]} == {"dense", "structured", "unstructured"}
    assert plots.accuracy_latency_plot(panels, 40)[:4] == b"\x89PNG"
    front = plots.pareto_front(panels[0]["points"])
    assert front[0]["model"] == "structured" and front[-1]["model"] == "dense"
