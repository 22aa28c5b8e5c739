"""The report's time split from a real profiled bench (tests/test_bench_profile.py's run)."""

from __future__ import annotations

import base64
import re

import pytest

from slimdeploy.report.api import make_report
from slimdeploy.report.settings import ReportSettings
from slimdeploy.report.timesplit import amdahl_cap
from test_bench_artifacts import bench_run  # noqa: F401  (shared fixture)
from test_bench_profile import profiled_bench  # noqa: F401  (shared fixture)


@pytest.fixture(autouse=True)
def _no_real_job_summary(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="module")
def profiled_report(profiled_bench, tmp_path_factory):  # noqa: F811
    _, bench_json = profiled_bench
    out = tmp_path_factory.mktemp("profiled_report") / "report"
    make_report(bench_json, ReportSettings(formats=("md", "html")), out)
    return out


def test_markdown_has_the_time_split_table_sentences_and_picture(profiled_report):
    text = (profiled_report / "report.md").read_text()
    assert "## Where the time goes" in text
    assert "Share outside the matmuls" in text and "Matmul kernels" in text
    for runtime in ("OpenVINO", "ONNX Runtime"):
        for batch in (1, 32):
            line = next(line for line in text.splitlines() if line.startswith(f"- {runtime}, batch {batch}: "))
            assert "outside its matmuls" in line
            assert re.search(r"structured: .*measured [0-9.]+× of the [0-9.]+× FLOP ideal, (below|above) the [0-9.]+×", line)
    for batch in (1, 32):
        ov = next(line for line in text.splitlines() if line.startswith(f"- OpenVINO, batch {batch}: "))
        assert "(brgemm_avx2_f32, gemm_mlas_f32)" in ov and "unstructured: the same matmul kernels as dense" in ov
    assert "](time_split.png)" in text and (profiled_report / "time_split.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Load and compile (ms)" in text and "Worker peak RSS (MB)" in text


def test_html_embeds_the_stacked_bars(profiled_report):
    page = (profiled_report / "report.html").read_text()
    assert "Where the time goes" in page and "Stacked bar chart of time per call by op type" in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # speedup, time split, latency vs batch (a bench JSON alone: no accuracies)
    assert all(base64.b64decode(data)[:4] == b"\x89PNG" for data in images)


def test_amdahl_cap():
    assert amdahl_cap(0.0, 10.0) == pytest.approx(10.0)  # all time in matmuls: the FLOP ratio
    assert amdahl_cap(0.5, 10.0) == pytest.approx(1 / 0.55)
    assert amdahl_cap(1.0, 10.0) == pytest.approx(1.0)  # nothing pruning shrinks
