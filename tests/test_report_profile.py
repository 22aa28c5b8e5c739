"""The report's time split from a real profiled bench (tests/test_bench_profile.py's run)."""

from __future__ import annotations

import base64
import json
import re

import pytest

from slimdeploy.runtimes.session import is_matmul
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


def dense_matmul_kernels(results: dict, runtime: str, batch: int) -> list[str]:
    """The matmul kernels the bench's profile recorded for dense, as the report sorts them."""
    cell = next(c for c in results["cells"] if (c["model"], c["runtime"], c["batch"]) == ("dense", runtime, batch))
    return sorted({layer["kernel"] for layer in cell["profile"]["layers"] if is_matmul(layer["op_type"])})


def assert_kernels_fit_the_cpu(kernels: list[str], isa: list[str]) -> None:
    """A kernel named for an ISA runs only where the bench recorded that ISA (AVX-512 kernels on an
    AVX2-only CPU would mean the profile or cpu.isa is wrong); ONEDNN_MAX_CPU_ISA may only lower it."""
    for kernel in kernels:
        if "avx512" in kernel:
            assert "avx512f" in isa, (kernel, isa)
        if "amx" in kernel:
            assert "amx" in isa, (kernel, isa)
        if "avx2" in kernel:
            assert "avx2" in isa, (kernel, isa)


def test_markdown_has_the_time_split_table_sentences_and_picture(profiled_report, profiled_bench):  # noqa: F811
    _, bench_json = profiled_bench
    text = (profiled_report / "report.md").read_text()
    assert "## Where the time goes" in text
    assert "Share outside the matmuls" in text and "Matmul kernels" in text
    for runtime in ("OpenVINO", "ONNX Runtime"):
        for batch in (1, 32):
            line = next(line for line in text.splitlines() if line.startswith(f"- {runtime}, batch {batch}: "))
            assert "outside its matmuls" in line
            assert re.search(r"structured: .*measured [0-9.]+× of the [0-9.]+× FLOP ideal, (below|above) the [0-9.]+×", line)
    results = json.loads(bench_json.read_text())
    for batch in (1, 32):
        ov = next(line for line in text.splitlines() if line.startswith(f"- OpenVINO, batch {batch}: "))
        # The kernels are the CPU's choice (brgemm_avx2_f32 on one machine, brgemm_avx512_f32 on the next):
        # the sentence must name the ones the profile recorded for dense, whatever they are.
        kernels = dense_matmul_kernels(results, "openvino", batch)
        assert kernels and f"({', '.join(kernels)})" in ov
        assert "unstructured: the same matmul kernels as dense" in ov
        assert_kernels_fit_the_cpu(kernels, results["environment"]["cpu"]["isa"])
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
