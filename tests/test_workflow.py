"""The GitHub Actions workflow (.github/workflows/benchmark.yml) parses and wires its jobs
together: the regression gate, the machine matrix, the hand-off of the models built once,
and the merge of every machine's result. Plus benchmarks/machine_setup.py, which each matrix
machine runs to pick the runtimes that load there."""

from __future__ import annotations

import json
import os
import re
import shlex
import string
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from slimdeploy.cli import build_parser
from slimdeploy.commands.bench import settings_from_args
from slimdeploy.pipeline import QUICK_PROFILE
from slimdeploy.runtimes.registry import availability

WORKFLOW = REPO / ".github/workflows/benchmark.yml"
RUNNERS = {"ubuntu-latest", "ubuntu-24.04-arm", "windows-latest"}  # plus a macOS arm64 runner


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps_using(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(action + "@")]


def step_running(job: dict, fragment: str) -> dict:
    matches = [step for step in job["steps"] if fragment in step.get("run", "")]
    assert len(matches) == 1, f"{len(matches)} steps run {fragment!r}"
    return matches[0]


def env_var_for(step: dict, expression: str) -> str:
    """The name of the step's env variable that carries the ${{ }} expression to its shell."""
    names = [name for name, value in step.get("env", {}).items() if value == expression]
    assert len(names) == 1, f"{len(names)} env variables carry {expression!r}"
    return names[0]


def without_expressions(command: str) -> list[str]:
    """The command's words, each ${{ ... }} expression replaced by X."""
    return shlex.split(re.sub(r"\$\{\{[^}]*\}\}", "X", command))


def test_triggers_and_the_regression_gate_are_kept(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == ["main"] and "pull_request" in triggers
    build = workflow["jobs"]["benchmark"]
    assert build["runs-on"] == "ubuntu-latest"
    step_running(build, "benchmarks/ci_benchmark.sh")
    gate = step_running(build, "--baseline baseline/bench.json")
    assert "pull_request" in gate["if"] and "--max-regression" in gate["run"]
    kept = [s for s in steps_using(build, "actions/upload-artifact") if s["with"]["name"] == "slimdeploy-bench-json"]
    assert kept and kept[0]["with"]["path"] == "runs/ci/bench.json" and kept[0]["if"] == "github.event_name == 'push'"
    fetch = steps_using(build, "dawidd6/action-download-artifact")[0]
    assert fetch["with"]["name"] == "slimdeploy-bench-json" and fetch["with"]["workflow"] == WORKFLOW.name


def test_matrix_covers_the_hosted_machines_without_fail_fast(workflow):
    machines = workflow["jobs"]["machines"]
    assert machines["strategy"]["fail-fast"] is False
    entries = machines["strategy"]["matrix"]["include"]
    runners = {entry["runner"] for entry in entries}
    assert RUNNERS <= runners and runners & {"macos-14", "macos-latest"}
    assert len({entry["machine"] for entry in entries}) == len(entries)  # one result file each
    assert machines["runs-on"] == "${{ matrix.runner }}"
    assert machines["defaults"]["run"]["shell"] == "bash"  # the same commands on Windows


def test_models_are_built_once_and_handed_to_every_machine(workflow):
    build, machines = workflow["jobs"]["benchmark"], workflow["jobs"]["machines"]
    upload = next(s for s in steps_using(build, "actions/upload-artifact") if s.get("id") == "upload-run")
    assert build["outputs"]["run-artifact"] == "${{ steps.upload-run.outputs.artifact-id }}"
    assert upload["with"]["path"].split()[0] == "runs/ci/"
    assert machines["needs"] == "benchmark" and "needs.benchmark.outputs.run-artifact" in machines["if"]
    assert "!cancelled()" in machines["if"]  # a failed regression gate still benches the matrix
    download = steps_using(machines, "actions/download-artifact")[0]
    assert download["with"] == {"name": upload["with"]["name"], "path": "runs/ci/"}
    # Nothing is trained or exported on the matrix machines: they bench the files they were given.
    commands = " ".join(step.get("run", "") for step in machines["steps"])
    assert "slimdeploy run" not in commands and "slimdeploy export" not in commands


def test_each_machine_benches_with_the_quick_profile_and_uploads_its_json(workflow):
    machines = workflow["jobs"]["machines"]
    runtimes = step_running(machines, "benchmarks/machine_setup.py runtimes")
    bench = step_running(machines, "slimdeploy bench")
    assert bench["if"] == f"steps.{runtimes['id']}.outputs.runtimes != ''"
    # The runtimes and the machine reach the shell through env, quoted (no template injection).
    assert "${{" not in bench["run"]
    runtimes_var = env_var_for(bench, f"${{{{ steps.{runtimes['id']}.outputs.runtimes }}}}")
    machine_var = env_var_for(bench, "${{ matrix.machine }}")
    assert f'--runtime "${runtimes_var}"' in bench["run"]
    # The step's words through slimdeploy's own parser and settings: a renamed or mistyped flag fails here.
    command = string.Template(bench["run"]).substitute({runtimes_var: "onnxruntime,openvino",
                                                        machine_var: "linux-arm64"})
    words = shlex.split(command)
    assert words[0] == "slimdeploy" and "$" not in command
    args = build_parser().parse_args(words[1:])
    assert args.command == "bench" and args.sources == ["runs/ci"] and args.quiet
    assert args.out == "bench-linux-arm64.json"
    settings, quick = settings_from_args(args), QUICK_PROFILE["bench"]
    assert list(settings.runtimes) == ["onnxruntime", "openvino"]
    assert list(settings.batches) == quick["batches"]
    assert settings.min_iters == quick["min_iters"] and settings.min_time == quick["min_time"]
    upload = steps_using(machines, "actions/upload-artifact")[0]
    assert upload["with"] == {"name": "bench-${{ matrix.machine }}", "path": "bench-${{ matrix.machine }}.json",
                              "if-no-files-found": "warn"}
    install = step_running(machines, "benchmarks/machine_setup.py install")
    assert machines["steps"].index(install) < machines["steps"].index(runtimes) < machines["steps"].index(bench)


def test_merge_job_reports_every_machine_in_one_artifact(workflow):
    merge = workflow["jobs"]["merge"]
    assert set(merge["needs"]) == {"benchmark", "machines"} and "!cancelled()" in merge["if"]
    download = steps_using(merge, "actions/download-artifact")[0]["with"]
    assert download["pattern"] == "bench-*" and download["merge-multiple"] is True
    report = step_running(merge, "slimdeploy report")["run"]
    assert f"files=({download['path']}bench-*.json)" in report
    assert '--label "${machine#bench-}"' in report and "--out merged-report" in report
    assert "GITHUB_STEP_SUMMARY" not in merge.get("env", {})  # report appends the Markdown itself
    upload = steps_using(merge, "actions/upload-artifact")[0]["with"]
    assert upload["path"] == "merged-report/"


def test_tests_job_runs_the_readme_command_on_both_linux_arches(workflow):
    tests = workflow["jobs"]["tests"]
    assert tests["strategy"]["fail-fast"] is False
    assert set(tests["strategy"]["matrix"]["runner"]) == {"ubuntu-latest", "ubuntu-24.04-arm"}
    assert tests["runs-on"] == "${{ matrix.runner }}"
    install = step_running(tests, "pip install")
    assert without_expressions(install["run"])[-2:] == ["-e", ".[dev]"]
    # The tests never download Fashion-MNIST: it must be in keras's cache (slimdeploy.data looks there) first.
    fetch = step_running(tests, "fashion_mnist.load_data()")
    run = step_running(tests, "pytest")
    assert run["run"].strip() == "python3 -m pytest -q"
    readme = (REPO / "README.md").read_text()
    assert "python3 -m pytest -q" in readme
    assert tests["steps"].index(install) < tests["steps"].index(fetch) < tests["steps"].index(run)


def test_scripts_named_by_the_workflow_exist_and_actions_are_pinned(workflow):
    text = WORKFLOW.read_text()
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                # A full commit SHA (a tag can be moved), its release named in the trailing comment.
                assert re.search(r"@[0-9a-f]{40}$", step["uses"]), step["uses"]
                assert re.search(rf"uses: {re.escape(step['uses'])} # v\d+(\.\d+)*\n", text), step["uses"]
            for script in re.findall(r"benchmarks/[\w.]+\.(?:sh|py)", step.get("run", "")):
                assert (REPO / script).is_file(), script


def test_machine_setup_reports_the_runtimes_that_load_here(tmp_path):
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    # TensorFlow left out: importing it in a fresh process costs seconds, and it is checked like the others.
    env = {**os.environ, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
    script = [sys.executable, str(REPO / "benchmarks/machine_setup.py"), "runtimes", "--machine", "here"]
    result = subprocess.run([*script, "--consider", "onnxruntime,openvino,tensorrt"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    gpu = availability("tensorrt").available  # TensorRT benches only where an NVIDIA GPU is
    expected = ["onnxruntime", "openvino", *(["tensorrt"] if gpu else [])]
    assert output.read_text() == f"runtimes={','.join(expected)}\n"
    text = summary.read_text()
    assert text.startswith("### here") and f"benched runtimes: {', '.join(expected)}" in text
    assert ("not benched: tensorrt:" in text) is not gpu
    wrong = subprocess.run([*script, "--consider", "pytorch"], capture_output=True, text=True, env=env, timeout=60)
    assert wrong.returncode == 2 and "unknown runtime pytorch" in wrong.stderr.splitlines()[-1]


def test_machine_setup_import_problem_is_one_line():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import machine_setup
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    problem = machine_setup.import_problem("slimdeploy_no_such_runtime")
    assert problem.startswith("import slimdeploy_no_such_runtime failed: ModuleNotFoundError") and "\n" not in problem
    assert machine_setup.import_problem("json") is None
    assert machine_setup.last_error_line("Collecting x\nERROR: No matching distribution found for x\n\n") == \
        "ERROR: No matching distribution found for x"


def test_merge_step_with_no_machine_result_says_so_and_passes(workflow, tmp_path):
    # Every machine may skip its bench (no runtime loads): the merge job must then pass, not fail.
    script = step_running(workflow["jobs"]["merge"], "slimdeploy report")["run"]
    (tmp_path / "benches").mkdir()
    summary = tmp_path / "summary.md"
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert summary.read_text() == "No machine produced a bench result: nothing to merge.\n"
    assert not (tmp_path / "merged-report").exists()


def run_merge_step(workflow, tmp_path, machines: list[str]) -> subprocess.CompletedProcess:
    """The merge step's bash, run with one bench JSON per machine in benches/ (the older fixture,
    each copy with its machine's name; the report needs no models, only the JSON)."""
    script = step_running(workflow["jobs"]["merge"], "slimdeploy report")["run"]
    benches = tmp_path / "benches"
    benches.mkdir()
    doc = json.loads((REPO / "tests/fixtures/previous_version/bench.json").read_text())
    for machine in machines:
        doc["environment"]["os"] = f"{machine} os"
        (benches / f"bench-{machine}.json").write_text(json.dumps(doc))
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}, timeout=120)


def test_merge_step_with_one_machine_writes_its_report(workflow, tmp_path):
    result = run_merge_step(workflow, tmp_path, ["linux-x86_64"])
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "merged-report" / "report.json").read_text())
    assert report["source"] == "benches/bench-linux-x86_64.json"  # one source: its own report, no --label
    assert "slimdeploy report" in (tmp_path / "summary.md").read_text()


def test_merge_step_labels_each_machine_by_its_matrix_name(workflow, tmp_path):
    result = run_merge_step(workflow, tmp_path, ["linux-x86_64", "linux-arm64"])
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "merged-report" / "report.json").read_text())
    # The glob's order (sorted), each column named by nothing but its machine.
    assert [m["label"] for m in report["machines"]] == ["linux-arm64", "linux-x86_64"]
    assert [m["environment"]["os"] for m in report["machines"]] == ["linux-arm64 os", "linux-x86_64 os"]
    assert "linux-arm64" in (tmp_path / "summary.md").read_text()
