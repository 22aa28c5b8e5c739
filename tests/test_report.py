"""`slimdeploy report`: the answer at the top, four plots, CI formats, and one-line errors.

Inputs are schema-conforming run files written by tests/test_report_inputs.py (seeded
latency samples; the structured model truly ~2.4-4x faster, the unstructured one not).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import struct
import zlib

import pytest
from conftest import run_cli
from test_report_inputs import make_bench, write_json, write_run

@pytest.fixture(autouse=True)
def _no_real_job_summary(monkeypatch):
    # Under GitHub Actions these tests must not write into the real job summary.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STRUCTURED_ORT = "On ONNX Runtime, the structured model is faster than dense at every batch size measured: "
UNSTRUCTURED_ORT = "On ONNX Runtime, the unstructured model is not measurably faster than dense (no significant difference at any batch size)"


def png_info(data: bytes) -> dict:
    """Parse a PNG's chunks (checking every CRC): size and text metadata."""
    assert data[:8] == PNG_MAGIC, "not a PNG"
    offset, info, chunks = 8, {"text": {}}, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append(kind)
        if kind == b"IHDR":
            info["width"], info["height"] = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            info["text"][key.decode()] = value.decode("latin-1")
        offset += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    return info


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One full report through the real CLI, with GITHUB_STEP_SUMMARY pointing at a temp file."""
    base = tmp_path_factory.mktemp("report")
    run_dir = write_run(base / "run")
    summary = base / "step_summary.md"
    result = run_cli("report", str(run_dir), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stderr
    return {"run": run_dir, "out": run_dir / "report", "stdout": result.stdout, "summary": summary}


def test_markdown_starts_with_the_answer(report):
    lines = (report["out"] / "report.md").read_text().splitlines()
    top = "\n".join(lines[:8])
    assert lines[0].startswith("# ")
    assert "**In short:** The structured model is faster than dense on every runtime measured" in top
    assert STRUCTURED_ORT in top
    assert UNSTRUCTURED_ORT in top
    # The accuracy cost comes from export.json (per runtime) and the interval from bench.json.
    sentence = next(line for line in lines[:8] if STRUCTURED_ORT in line)
    assert "it costs 0.65 points of test accuracy (85.75% vs 86.40% for dense)" in sentence
    assert re.search(r"at batch 1 \(95% interval \d\.\d\d–\d\.\d\dx\)", sentence)
    # The same sentence is printed by the command.
    assert STRUCTURED_ORT in report["stdout"]


def test_markdown_references_four_valid_pngs_made_by_matplotlib(report):
    text = (report["out"] / "report.md").read_text()
    names = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", text)
    assert sorted(names) == ["accuracy_vs_latency.png", "accuracy_vs_weights.png", "latency_vs_batch.png", "speedup.png"]
    for name in names:
        info = png_info((report["out"] / name).read_bytes())
        assert info["width"] >= 500 and info["height"] >= 300
        assert "matplotlib" in info["text"].get("Software", "")


def test_html_is_self_contained_with_four_plots_and_the_verdict(report):
    page = (report["out"] / "report.html").read_text()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    assert page.count('<img src="data:image/png;base64,') == 4
    for data in images:
        png_info(base64.b64decode(data))
    assert STRUCTURED_ORT in page and UNSTRUCTURED_ORT in page
    assert page.index(STRUCTURED_ORT) < page.index("<img")  # the answer comes before any picture
    # Nothing to fetch: no external scripts, styles, fonts or images.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page


def test_tables_cover_models_latency_comparisons_and_environment(report):
    text = (report["out"] / "report.md").read_text()
    for heading in ("## Speedup of pruned models over dense", "## Models", "## Exported files",
                    "## Latency and throughput", "## Accuracy of the pruning rounds", "## Environment"):
        assert heading in text
    assert "| structured | 62,067 | 62,067 | 123,890 | 75/37/10 | 22.00% | 85.75% | -0.65 |" in text
    assert "TensorRT was not measured: tensorrt is not installed" in text
    # The lottery: per-round table, and which reset wins across seeds (mean ± std).
    assert "**structured pruning: which reset wins (2 seeds)**" in text
    assert re.search(r"\| fine-tune \(control\) \| [\d.]+% \| [\d.]+% ± 0\.20 \|", text)
    assert "Best way to train the pruned network, by validation accuracy: finetune." in text
    bench = json.loads((report["run"] / "bench.json").read_text())
    p50 = next(c["stats"]["p50_ms"] for c in bench["cells"] if (c["model"], c["runtime"], c["batch"]) == ("dense", "openvino", 64))
    assert f"| OpenVINO | 64 | dense | {p50:.3g} |" in text


def test_gab_json_has_one_entry_per_ok_cell_with_required_keys(report):
    entries = json.loads((report["out"] / "gab.json").read_text())
    bench = json.loads((report["run"] / "bench.json").read_text())
    ok = [c for c in bench["cells"] if c["status"] == "ok"]
    assert len(entries) == len(ok) == 18
    assert len({e["name"] for e in entries}) == len(entries)
    for entry, cell in zip(entries, ok):
        assert {"name", "unit", "value", "range", "extra"} <= set(entry)
        assert entry["unit"] == "ms" and isinstance(entry["value"], float)
        assert entry["value"] == pytest.approx(cell["stats"]["p50_ms"])
        assert entry["range"].startswith("± ")


def test_csv_and_json_views(report):
    rows = list(csv.DictReader(io.StringIO((report["out"] / "report.csv").read_text())))
    assert len(rows) == 18
    structured = [r for r in rows if r["model"] == "structured"]
    assert all(r["verdict"] == "faster" and float(r["speedup"]) > 2 for r in structured)
    doc = json.loads((report["out"] / "report.json").read_text())
    assert doc["schema_version"] == 1
    assert any(a["sentence"].startswith(STRUCTURED_ORT) for a in doc["answers"])
    assert sorted(doc["plots"]) == ["accuracy_vs_latency.png", "accuracy_vs_weights.png", "latency_vs_batch.png", "speedup.png"]
    assert doc["settings"]["formats"] == ["md", "html", "json", "csv", "gab"] and "numpy" in doc["versions"]


def test_step_summary_gets_the_answer_with_details_folded(report):
    text = report["summary"].read_text()
    assert STRUCTURED_ORT in text
    assert "<details>" in text and "</details>" in text
    assert "![" not in text  # no image files to point at in a job summary
    assert len(text.encode()) < 1024 * 1024


def test_step_summary_stays_under_one_mib_when_already_nearly_full(tmp_path):
    from slimdeploy.report import ci
    from slimdeploy.report.api import build
    from slimdeploy.report.load import load_source
    from slimdeploy.report.settings import ReportSettings

    summary = tmp_path / "summary.md"
    summary.write_text("x" * (1024 * 1024 - 12_000))  # earlier steps used almost all of it
    huge = make_bench(0, batches=tuple(2 ** k for k in range(10)), runtimes=("onnxruntime", "openvino"), n=30)
    doc, _ = build(load_source(write_json(tmp_path / "bench.json", huge)), ReportSettings(dpi=40).validated())
    assert len(ci.summary_markdown(doc, 10**9).encode()) > 12_000  # it would not fit whole
    assert ci.append_step_summary(doc, summary) == summary
    data = summary.read_bytes()
    assert len(data) <= 1024 * 1024
    assert b"The structured model is faster than dense" in data[1024 * 1024 - 12_000:]


def test_bench_json_alone_reports_beside_it(tmp_path):
    bench = write_json(tmp_path / "results" / "new.json", make_bench(1))
    result = run_cli("report", str(bench), "--format", "md,html", "--no-step-summary", "--quiet")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "results" / "report"
    assert sorted(p.name for p in out.iterdir()) == ["accuracy_vs_latency.png", "latency_vs_batch.png", "report.html",
                                                     "report.md", "speedup.png"]
    page = (out / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 3  # no lottery.json: no accuracy-vs-weights curve
    assert "Made from a bench JSON alone" in page
    assert STRUCTURED_ORT in (out / "report.md").read_text()


def test_run_without_lottery_omits_the_accuracy_plot_with_a_note(tmp_path):
    run_dir = write_run(tmp_path / "run", lottery=False)
    result = run_cli("report", str(run_dir), "--format", "html", "--no-step-summary", "--quiet")
    assert result.returncode == 0, result.stderr
    page = (run_dir / "report" / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 3
    assert "No pruning rounds" in page and "accuracy-vs-weights plot is left out" in page


def test_run_without_bench_says_so(tmp_path):
    run_dir = write_run(tmp_path / "run", bench=False)
    result = run_cli("report", str(run_dir), "--format", "md", "--no-step-summary", "--quiet")
    assert result.returncode == 0, result.stderr
    text = (run_dir / "report" / "report.md").read_text()
    assert "**In short:** Speed is not known because there are no benchmark results" in text
    assert "No benchmark results" in text and (run_dir / "report" / "accuracy_vs_weights.png").is_file()


def test_existing_report_needs_force_and_force_never_wipes_other_files(report, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(report["run"], run_dir)
    again = run_cli("report", str(run_dir), "--no-step-summary")
    assert again.returncode == 2 and "--force" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    before = (run_dir / "report" / "report.md").stat().st_mtime_ns
    forced = run_cli("report", str(run_dir), "--force", "--format", "md", "--no-step-summary", "--quiet")
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in (run_dir / "report").iterdir()) == [
        "accuracy_vs_latency.png", "accuracy_vs_weights.png", "latency_vs_batch.png", "report.md", "speedup.png"]
    assert (run_dir / "report" / "report.md").stat().st_mtime_ns != before
    (run_dir / "notes.txt").write_text("mine")
    wipe = run_cli("report", str(run_dir), "--out", str(run_dir), "--force", "--no-step-summary")
    assert wipe.returncode == 2 and "holds files a report does not write" in wipe.stderr
    assert (run_dir / "notes.txt").read_text() == "mine" and (run_dir / "bench.json").is_file()


def _one_line_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slimdeploy report: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_unknown_schema_version_is_a_one_line_error(tmp_path):
    doc = make_bench(0, runtimes=("onnxruntime",), batches=(1,), n=20)
    doc["schema_version"] = 99
    bench = write_json(tmp_path / "bench.json", doc)
    _one_line_error(run_cli("report", str(bench)), "schema_version 99", str(bench))
    assert not (tmp_path / "report").exists()


def test_corrupt_json_is_a_one_line_error(tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(make_bench(0, runtimes=("onnxruntime",), batches=(1,), n=20))[:500])
    _one_line_error(run_cli("report", str(bench)), "not valid JSON", str(bench))
    run_dir = write_run(tmp_path / "run")
    (run_dir / "structured" / "lottery.json").write_text("{not json")
    _one_line_error(run_cli("report", str(run_dir)), "lottery file", "not valid JSON")


def test_unwritable_output_directory_is_a_one_line_error(tmp_path):
    bench = write_json(tmp_path / "bench.json", make_bench(0, runtimes=("onnxruntime",), batches=(1,), n=20))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    _one_line_error(run_cli("report", str(bench), "--out", str(blocker / "report")), "cannot write the report")
    # /proc refuses new directories even to root.
    _one_line_error(run_cli("report", str(bench), "--out", "/proc/slimdeploy-report"), "/proc")


def test_nothing_to_report_and_bad_options(tmp_path):
    (tmp_path / "empty").mkdir()
    _one_line_error(run_cli("report", str(tmp_path / "empty")), "nothing to report")
    _one_line_error(run_cli("report", str(tmp_path / "missing")), "does not exist")
    bench = write_json(tmp_path / "bench.json", make_bench(0, runtimes=("onnxruntime",), batches=(1,), n=20))
    _one_line_error(run_cli("report", str(bench), "--format", "md,pdf"), "pdf")
    _one_line_error(run_cli("report", str(bench), "--baseline", str(bench), "--max-regression", "10"), "ambiguous")


def test_mixed_verdicts_read_as_one_sentence():
    from slimdeploy.records.bench import Comparison
    from slimdeploy.report.answer import interval_clause, speed_clause

    comps = [Comparison.from_json({"model": "structured", "baseline": "dense", "runtime": "onnxruntime", "threads": 1,
                                   "mode": "latency", **c}) for c in (
        {"batch": 1, "verdict": "no significant difference", "speedup": 1.01, "ci_low": 0.97, "ci_high": 1.04},
        {"batch": 64, "verdict": "faster", "speedup": 3.8, "ci_low": 3.7, "ci_high": 3.9},
        {"batch": 256, "verdict": "faster", "speedup": 4.0, "ci_low": 3.9, "ci_high": 4.1})]
    assert speed_clause(comps, "dense", False, False) == \
        "is faster than dense at batch 64 and 256, with no significant difference at batch 1"
    assert interval_clause(comps, 0.95, False, False) == \
        "1.01x at batch 1 (95% interval 0.97–1.04x), 3.80x at batch 64 (3.70–3.90x), 4.00x at batch 256 (3.90–4.10x)"
    comps[0] = comps[0].replace(verdict="slower")
    assert speed_clause(comps, "dense", False, False) == "is faster than dense at batch 64 and 256, slower at batch 1"
