"""`slimdeploy report A.json B.json`: one report from benchmarks made on several machines.

One bench.json is made here by a real `slimdeploy bench` of tiny_run's dense model exported to
ONNX beside a narrower ONNX MLP (what a pruned model is to the bench, without a retraining),
on ONNX Runtime at batches 1 and 8; the other is that file with its environment block as an
arm64 Neoverse machine would write it, its speedups doubled (so a swapped column shows) and
batch 8 left out (so "not measured" shows).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import shutil
from types import SimpleNamespace

import pytest

from conftest import run_cli_here
from errors_doc import check
from test_bench_artifacts import NARROW_WIDTHS, onnx_mlp, random_layers

from slimdeploy.records.environment import Environment
from slimdeploy.report import merge
from slimdeploy.report.merge import numbered

QUICK_BENCH = ("--runtime", "onnxruntime", "--batch", "1,8", "--min-iters", "20", "--min-time", "0.05", "--warmup", "3",
               "--instances", "1", "--processes", "1", "--quiet")
ARM_NAME = "Neoverse-N1 · 4 cores · neon"


def arm_environment(here: dict) -> dict:
    """What bench.json's environment says on a 4-core arm64 Linux server (libraries as here)."""
    return {"cpu": {"model": "Neoverse-N1", "arch": "aarch64", "flags": [], "isa": ["neon"], "logical_cores": 4,
                    "usable_cores": 4},
            "os": "Linux 6.1.0-28-cloud-arm64", "python": here.get("python", "3.11.2"),
            "libraries": here.get("libraries", {}), "git_commit": here.get("git_commit"),
            "devices": {"openvino": {"FULL_DEVICE_NAME": "ARM CPU", "OPTIMIZATION_CAPABILITIES": ["FP32", "FP16"]}}}


def machine_name(environment: dict) -> str:
    """``merge.machine_name`` of an environment as bench.json records it."""
    return merge.machine_name(Environment.from_json(environment))


def write_json(path, doc):
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def benches(tiny_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("merge")
    run_dir = base / "run"
    shutil.copytree(tiny_run, run_dir)
    narrow = onnx_mlp(base / "narrow.onnx", random_layers(NARROW_WIDTHS))
    for argv in (("export", str(run_dir), "--target", "onnx", "--verify-limit", "500", "--quiet"),
                 ("bench", str(run_dir), str(narrow), *QUICK_BENCH)):
        result = run_cli_here(*argv)
        assert result.returncode == 0, (argv[0], result.stderr)
    here = run_dir / "bench.json"
    return SimpleNamespace(run=run_dir, here=here, arm=write_json(base / "arm.json", arm_copy(json.loads(here.read_text()))),
                           doc=json.loads(here.read_text()))


ARM_SCALE = 2.0  # the arm copy's speedups and intervals: its own figures, unlike this machine's


def arm_copy(doc: dict) -> dict:
    """``doc`` as the arm machine: its environment, each speedup and interval doubled, batch 8 not run."""
    arm = copy.deepcopy(doc)
    arm["environment"] = arm_environment(arm["environment"])
    arm["cells"] = [c for c in arm["cells"] if c["batch"] == 1]
    arm["comparisons"] = [c for c in arm["comparisons"] if c["batch"] == 1]
    for c in arm["comparisons"]:
        for key in ("speedup", "ci_low", "ci_high"):
            c[key] *= ARM_SCALE
    return arm


def failed_copy(doc: dict) -> dict:
    """``doc`` as if narrow's batch-8 cell had errored on that machine."""
    failed = copy.deepcopy(doc)
    for cell in failed["cells"]:
        if (cell["model"], cell["batch"]) == ("narrow", 8):
            cell.update(status="error", error="could not load or run: RuntimeError: out of memory")
    failed["comparisons"] = [c for c in failed["comparisons"] if c["batch"] != 8]
    return failed


def md_table(markdown: str, first: str) -> list[list[str]]:
    """The rows (header first) of the Markdown table whose caption or header line starts with ``first``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    while not lines[start].startswith("|"):
        start += 1
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            table.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return table


def test_bench_json_records_the_sha256_of_each_measured_artifact(benches):
    from slimdeploy.fsutil import file_sha256

    models = benches.doc["models"]
    exported = json.loads((benches.run / "exports" / "export.json").read_text())
    dense_onnx = next(a for a in exported["artifacts"] if (a["model"], a["target"]) == ("dense", "onnx"))
    assert models["dense"]["artifact_sha256"]["onnxruntime"] == dense_onnx["file_sha256"]["dense.onnx"] == file_sha256(
        benches.run / "exports" / "dense.onnx")
    # Only the runtimes benched (ONNX Runtime here): OpenVINO could read narrow.onnx but did not run it.
    assert models["narrow"]["artifact_sha256"] == {"onnxruntime": file_sha256(benches.run.parent / "narrow.onnx")}


def speedup_text(c: dict, scale: float = 1.0) -> str:
    words = f"{c['speedup'] * scale:.2f}x ({c['ci_low'] * scale:.2f}–{c['ci_high'] * scale:.2f}) {c['verdict']}"
    return words + (" (unstable cell)" if c.get("unstable") else "")


def test_two_machines_make_one_report_with_a_column_each(benches, tmp_path):
    out = tmp_path / "merged"
    failing = write_json(tmp_path / "failing.json", failed_copy(benches.doc))
    # Options between the SOURCEs too (intermixed parsing).
    result = run_cli_here("report", str(benches.here), str(benches.arm), "--out", str(out), str(failing),
                          "--no-step-summary", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    here_name = machine_name(benches.doc["environment"])
    failing_name = f"{here_name} #2"  # the same machine twice: a column each
    assert [m["label"] for m in printed["machines"]] == [here_name, ARM_NAME, failing_name]
    assert sorted(printed["files"]) == sorted(str(out / name) for name in ("report.md", "report.html", "report.json",
                                                                         "speedup_by_machine.png"))
    assert "sha256" in printed["same_models"] and not printed["differences"]

    # The decision per machine comes first, each machine's own sentence.
    md = (out / "report.md").read_text()
    for machine in printed["machines"]:
        assert machine["decision"] and machine["decision"][0].startswith("On ONNX Runtime")
        assert f"**{machine['label']}:** {' '.join(machine['decision'])}" in md
    # Real benches: their speedups are the paired estimates, and the report says how they were made.
    assert "Speedup is the median over interleaved rounds" in md

    # One row per runtime and batch, one column per machine, each machine's own numbers: the arm
    # machine's doubled figures in its column, "not measured" where it did not run batch 8, and
    # "failed" where the third machine's narrow cell errored.
    comparisons = benches.doc["comparisons"]
    assert [(c["model"], c["runtime"], c["batch"]) for c in comparisons] == [("narrow", "onnxruntime", 1),
                                                                              ("narrow", "onnxruntime", 8)]
    b1, b8 = comparisons
    table = md_table(md, "**narrow vs dense")
    assert table[0] == ["Runtime", "Batch", here_name, ARM_NAME, failing_name, "Ideal (FLOP ratio)"]  # no Settings column
    assert table[1] == ["ONNX Runtime", "1", speedup_text(b1), speedup_text(b1, ARM_SCALE), speedup_text(b1),
                        f"{b1['ideal_speedup']:.2f}x"]
    assert table[2] == ["ONNX Runtime", "8", speedup_text(b8), "not measured", "failed", f"{b8['ideal_speedup']:.2f}x"]
    machines = md_table(md, "| Machine |")
    assert [row[0] for row in machines] == ["Machine", here_name, ARM_NAME, failing_name]
    assert machines[2][1:8] == [str(benches.arm), "Neoverse-N1", "aarch64", "4 / 4", "neon", "ARM CPU", "Linux 6.1.0-28-cloud-arm64"]

    # Never averaged: the JSON keeps one speedup per machine for the same comparison.
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "merged" and report["sources"] == [str(benches.here), str(benches.arm), str(failing)]
    assert [(s["machine"], s["batch"], s.get("speedup"), s.get("status")) for s in report["speedups"]] == [
        (here_name, 1, b1["speedup"], None), (ARM_NAME, 1, b1["speedup"] * ARM_SCALE, None), (failing_name, 1, b1["speedup"], None),
        (here_name, 8, b8["speedup"], None), (failing_name, 8, None, "failed")]
    assert "out of memory" in report["speedups"][-1]["error"]

    # The plot is a real PNG, and the page embeds exactly it.
    from PIL import Image

    png = (out / "speedup_by_machine.png").read_bytes()
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert image.format == "PNG" and image.width > 300 and image.height > 200
    page = (out / "report.html").read_text()
    embedded = [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]
    assert embedded == [png]
    assert f"<td>{ARM_NAME}</td>" in page and "Neoverse-N1" in page


def test_machines_are_named_from_their_environment():
    intel = {"cpu": {"model": "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", "logical_cores": 16, "usable_cores": 8,
                     "flags": ["avx", "avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_tile"]}}
    assert machine_name(intel) == "Intel Xeon Platinum 8480+ · 8 cores · avx512f+avx512_vnni+amx"  # an older file: from flags
    amd = {"cpu": {"model": "AMD EPYC 7B13 64-Core Processor", "logical_cores": 2, "usable_cores": 2, "isa": ["avx2"]}}
    assert machine_name(amd) == "AMD EPYC 7B13 · 2 cores · avx2"
    # Where the OS gave only the architecture, OpenVINO's name for the device.
    bare = {"cpu": {"model": "aarch64", "arch": "aarch64", "usable_cores": 1, "flags": []},
            "devices": {"openvino": {"FULL_DEVICE_NAME": "ARM CPU"}}}
    assert machine_name(bare) == "ARM · 1 core · neon"
    assert machine_name({"cpu": {"model": "Vendor Name Hyperscale Compute Engine Model X9000 Revision B2"}}) == (
        "Vendor Name Hyperscale Compute Engine…")
    assert numbered(["a", "b", "a", "a"]) == ["a", "b", "a #2", "a #3"]
    assert numbered(["a #2", "a", "a"]) == ["a #2", "a", "a #3"]  # a label that looks numbered keeps its own
    # platform.processor()'s answers on Apple silicon and 32-bit Linux are no CPU's name.
    for bare_name in ("arm", "i386", ""):
        assert machine_name({"cpu": {"model": bare_name, "arch": "arm64", "isa": ["neon"], "usable_cores": 8},
                             "devices": {"openvino": {"FULL_DEVICE_NAME": "Apple M2"}}}) == "Apple M2 · 8 cores · neon"


def test_an_older_bench_json_merges_with_a_new_one_on_what_it_holds(tmp_path):
    from conftest import REPO

    older_path = REPO / "tests/fixtures/previous_version/bench.json"
    newer = json.loads(older_path.read_text())
    newer["environment"] = arm_environment(newer["environment"])
    for info in newer["models"].values():  # the new field; the older file has none to compare it with
        info["artifact_sha256"] = {"onnxruntime": "1" * 64}
    out = tmp_path / "merged"
    result = run_cli_here("report", str(older_path), str(write_json(tmp_path / "new.json", newer)), "--out", str(out),
                          "--format", "json,md", "--no-step-summary", "--quiet")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert "records no artifact sha256" in report["same_models"]["compared"]
    older_name = "AMD EPYC · 2 cores · avx2"  # named from the older file's flags
    assert report["machines"][0]["label"] == older_name
    assert {s["machine"] for s in report["speedups"]} == {older_name, ARM_NAME}
    # Two runtimes always differ in settings (graph_optimization vs precision): not a Settings
    # column, since within each runtime the settings are one.
    table = md_table((out / "report.md").read_text(), "**structured vs dense")
    assert table[0] == ["Runtime", "Batch", older_name, ARM_NAME, "Ideal (FLOP ratio)"]
    assert [row[0] for row in table[1:]] == ["ONNX Runtime", "OpenVINO"]


def test_ideal_differs_per_machine_is_shown_per_machine():
    from slimdeploy.records.bench import Comparison
    from slimdeploy.report.merge import Failed, ideal_words

    def c(ideal):
        return Comparison(model="m", baseline="dense", runtime="onnxruntime", batch=1, threads=1, mode="latency",
                          ideal_speedup=ideal)

    assert ideal_words({"a": c(1.5), "b": c(1.5)}, ["a", "b"]) == "1.50x"
    assert ideal_words({"a": c(1.5), "b": c(2.0)}, ["a", "b"]) == "differs: a 1.50x; b 2.00x"
    assert ideal_words({"b": Failed("x")}, ["a", "b"]) == "–"


def test_a_merge_of_different_models_is_refused(benches, tmp_path):
    here, out = str(benches.here), tmp_path / "merged"
    other = json.loads(benches.arm.read_text())
    other["models"]["narrow"]["artifact_sha256"]["onnxruntime"] = "0" * 64  # another model's file
    changed = write_json(tmp_path / "other.json", other)
    result = run_cli_here("report", here, str(changed), "--out", str(out), "--no-step-summary")
    line = check("report-merge-different-models", result.returncode, result.stderr, here, changed, "--allow-different-models")
    assert "narrow's ONNX Runtime artifact has sha256" in line and "0" * 12 in line
    assert not out.exists()

    # A bench.json from before the sha256 was recorded: the counts are compared, and the refusal says so.
    older = copy.deepcopy(json.loads(benches.arm.read_text()))
    for info in older["models"].values():
        del info["artifact_sha256"]
    older["models"]["narrow"]["params"] += 1
    older_path = write_json(tmp_path / "older.json", older)
    result = run_cli_here("report", here, str(older_path), "--out", str(out), "--no-step-summary")
    line = check("report-merge-different-models", result.returncode, result.stderr, older_path)
    assert "narrow has parameter counts" in line and "records no artifact sha256" in line
    assert not out.exists()

    # Asked for anyway: merged, and the report says what differs.
    result = run_cli_here("report", here, str(changed), "--out", str(out), "--format", "md", "--no-step-summary",
                          "--allow-different-models", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Merged although the models differ (--allow-different-models)" in (out / "report.md").read_text()


def test_merge_options_are_checked_before_anything_is_written(benches, tmp_path):
    here, arm, out = str(benches.here), str(benches.arm), tmp_path / "merged"
    result = run_cli_here("report", here, arm, "--label", "laptop", "--out", str(out))
    check("report-merge-label-count", result.returncode, result.stderr, "--label")
    result = run_cli_here("report", here, arm, "--baseline", here, "--out", str(out))
    check("report-merge-baseline", result.returncode, result.stderr, "--baseline")
    result = run_cli_here("report", here, arm, "--format", "md,csv", "--out", str(out))
    check("report-merge-format", result.returncode, result.stderr, "--format csv")
    unbenched = tmp_path / "unbenched"  # exported, never benched
    (unbenched / "exports").mkdir(parents=True)
    shutil.copy(benches.run / "exports" / "export.json", unbenched / "exports")
    result = run_cli_here("report", here, str(unbenched), "--out", str(out))
    check("report-merge-no-bench", result.returncode, result.stderr, unbenched)
    result = run_cli_here("report", here, "--label", "laptop", "--out", str(out))
    check("report-label-one-source", result.returncode, result.stderr, "--label")
    assert not out.exists()
    # The default directory, refused once it exists unless --force; labels name the columns.
    labels = ("--label", "x86 dev box", "--label", "Graviton")
    result = run_cli_here("report", here, arm, *labels, "--format", "md", "--no-step-summary", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert md_table((tmp_path / "merged-report" / "report.md").read_text(), "**narrow vs dense")[0][2:4] == [
        "x86 dev box", "Graviton"]
    result = run_cli_here("report", here, arm, "--format", "md", "--no-step-summary", cwd=tmp_path)
    assert result.returncode == 2 and "already exists; pass --force" in result.stderr, result.stderr
    result = run_cli_here("report", here, arm, "--format", "md", "--no-step-summary", "--force", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_help_shows_the_multi_machine_use():
    result = run_cli_here("report", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "slimdeploy report laptop/bench.json ci-x86/bench.json graviton/bench.json --out merged-report" in text
    for option in ("--label NAME", "--allow-different-models", "SOURCE [SOURCE ...]"):
        assert option in text, option


def test_an_openvino_ir_hash_covers_its_weights(tmp_path):
    from slimdeploy.bench.sources import artifact_sha256

    xml, bin_file = tmp_path / "m.xml", tmp_path / "m.bin"
    xml.write_text("<net/>")
    bin_file.write_bytes(b"\x00" * 16)
    before = artifact_sha256(xml)
    bin_file.write_bytes(b"\x01" * 16)  # other weights, the same graph
    assert artifact_sha256(xml) != before and len(before) == 64


def test_artifact_hashes_come_from_the_files_measured_and_cover_only_the_runtimes_benched(benches, tmp_path):
    from slimdeploy.bench.sources import resolve_sources
    from slimdeploy.fsutil import file_sha256

    run = tmp_path / "run"
    shutil.copytree(benches.run, run, ignore=shutil.ignore_patterns("report", "bench.json"))
    manifest = run / "exports" / "export.json"
    exported = json.loads(manifest.read_text())
    for entry in exported["artifacts"]:
        entry["file_sha256"] = {name: "e" * 64 for name in entry.get("file_sha256") or {}}
    manifest.write_text(json.dumps(exported))
    # export.json's record is not trusted: a file replaced after export must not pass for the model exported.
    dense = resolve_sources([run]).models["dense"].info["artifact_sha256"]
    assert dense["onnxruntime"] == file_sha256(run / "exports" / "dense.onnx") and len(dense) > 1
    only = resolve_sources([run], runtimes=("onnxruntime",)).models["dense"].info["artifact_sha256"]
    assert list(only) == ["onnxruntime"]
