"""`slimdeploy run`: the whole job on a tiny real workload, --print-config, resume after
being killed at many moments, and bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli

TINY = REPO / "tests" / "configs" / "tiny_run.toml"


def deterministic_results(run_dir: Path) -> dict:
    """What must not depend on interruptions: accuracies, shapes, verified exports, cells."""
    dense = json.loads((run_dir / "dense" / "metrics.json").read_text())
    result = {"dense": (dense["test_accuracy"], dense["val_accuracy"], dense["params"])}
    for mode in ("structured", "unstructured"):
        lottery = json.loads((run_dir / mode / "lottery.json").read_text())
        result[mode] = [(r["round"], r["params"], r["widths"], r["weights_remaining"], r["val_accuracy"], r["test_accuracy"])
                        for r in lottery["rounds"]]
    manifest = json.loads((run_dir / "exports" / "export.json").read_text())
    result["exports"] = sorted((a["model"], a["target"], a["valid"], a["test_accuracy"], a["params"]) for a in manifest["artifacts"])
    bench = json.loads((run_dir / "bench.json").read_text())
    result["cells"] = sorted((c["model"], c["runtime"], c["batch"], c["status"]) for c in bench["cells"])
    result["comparisons"] = sorted((c["model"], c["runtime"], c["batch"]) for c in bench["comparisons"])
    return result


def assert_int8_and_profiles(run_dir: Path) -> None:
    """tiny_run.toml leaves run's defaults on: INT8 variants of every model, and profiled cells."""
    manifest = json.loads((run_dir / "exports" / "export.json").read_text())
    int8 = [a for a in manifest["artifacts"] if a["precision"] == "int8"]
    assert {a["target"] for a in int8} == {"onnx", "openvino"}, manifest["artifacts"]
    cells = [c for c in json.loads((run_dir / "bench.json").read_text())["cells"] if c["status"] == "ok"]
    benched_int8 = {(a["model"], a["target"]) for a in int8 if a["valid"]}
    assert not benched_int8 or any(c["model"].endswith("-int8") for c in cells), cells
    assert cells and all("profile" in c for c in cells), [c["id"] for c in cells if "profile" not in c]


def finished_stages(run_dir: Path) -> int:
    try:
        return len(json.loads((run_dir / "run.json").read_text())["stages"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("reference")
    started = time.perf_counter()
    # Not --quiet: stderr is a pipe here, as in a CI log, and its progress lines are checked below.
    result = run_cli("run", "--config", str(TINY), "--name", "ref", cwd=workdir)
    assert result.returncode == 0, result.stderr
    (workdir / "seconds.txt").write_text(str(time.perf_counter() - started))
    (workdir / "stderr.txt").write_text(result.stderr)
    return workdir / "runs" / "ref"


def test_run_through_a_pipe_logs_whole_plain_lines(reference_run):
    import re

    log = (reference_run.parent.parent / "stderr.txt").read_text()
    assert "\x1b[" not in log and "…" not in log and "━" not in log, log[-2000:]
    lines = log.splitlines()
    epoch = re.compile(r"^dense epoch 1/1: (\d+)/\1 loss \d\.\d{4} accuracy \d\.\d{4} val_accuracy \d\.\d{4} \(done in [\d.]+ s\)$")
    assert any(epoch.match(line) for line in lines), [line for line in lines if "epoch" in line]
    assert any(line.startswith("structured rounds: ") for line in lines)
    assert any(line.startswith("slimdeploy run: 6/6") for line in lines), [l for l in lines if l.startswith("slimdeploy run")]


def test_run_produces_every_stage_and_the_report(reference_run):
    for path in ("dense/model.keras", "structured/ticket.keras", "unstructured/ticket.keras",
                 "exports/export.json", "bench.json", "report/report.md", "report/report.html", "run.json"):
        assert (reference_run / path).is_file(), path
    record = json.loads((reference_run / "run.json").read_text())
    assert all(stage["done"] for stage in record["stages"].values()) and len(record["stages"]) == 6
    first_lines = (reference_run / "report" / "report.md").read_text().splitlines()[:4]
    assert any("faster" in line or "not measurably faster" in line for line in first_lines)
    # The tickets were chosen on validation within run's 0.5-point budget, and the report names them.
    report = (reference_run / "report" / "report.md").read_text()
    for mode in ("structured", "unstructured"):
        lottery = json.loads((reference_run / mode / "lottery.json").read_text())
        assert lottery["ticket"]["max_drop"] == 0.5 and lottery["candidates"]
        assert f"{mode.capitalize()} ticket: " in report
    bench = json.loads((reference_run / "bench.json").read_text())
    aligned = json.loads((reference_run / "structured" / "lottery.json").read_text())["candidates"]
    if any(row["name"] == "aligned_r8" for row in aligned):  # unless the ticket's widths are multiples of 8 already
        pairs = {(c["model"], c["baseline"]) for c in bench["comparisons"] if c["question"] == "aligned_widths"}
        assert pairs == {("structured-r8", "structured")}
    assert any(c.get("profile") for c in bench["cells"] if c["status"] == "ok")  # run profiles its bench


def test_print_config_round_trips(tmp_path):
    result = run_cli("run", "--print-config")
    assert result.returncode == 0, result.stderr
    printed = tmp_path / "defaults.toml"
    printed.write_text(result.stdout)
    for table in ("[train]", "[prune]", "[export]", "[bench]", "[report]"):
        assert table in result.stdout
    again = run_cli("run", "--config", str(printed), "--print-config")
    assert again.returncode == 0 and again.stdout == result.stdout


def test_existing_run_needs_resume_or_force(reference_run):
    workdir = reference_run.parent.parent
    result = run_cli("run", "--config", str(TINY), "--name", "ref", "--quiet", cwd=workdir)
    assert result.returncode == 2 and "--resume" in result.stderr and "--force" in result.stderr
    both = run_cli("run", "--config", str(TINY), "--name", "ref", "--resume", "--force", cwd=workdir)
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1


def test_resume_of_a_finished_run_redoes_nothing(reference_run):
    workdir = reference_run.parent.parent
    before = (reference_run / "bench.json").stat().st_mtime_ns
    result = run_cli("run", "--config", str(TINY), "--name", "ref", "--resume", "--quiet", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (reference_run / "bench.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("content, message", [
    ("[train]\nepochs = 0\n", "epochs"),
    ("[bench]\nbatches = [0]\n", "batch"),
    ("[prune]\nrate = 1.0\n", "rate"),
    ("[nonsense]\nx = 1\n", "unknown"),
    ("[train\n", "not valid TOML"),
])
def test_bad_configs_are_one_line_errors(tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = run_cli("run", "--config", str(config), "--name", "bad", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs" / "bad").exists()


@pytest.mark.slow
def test_killed_at_ten_random_moments_resume_gives_the_same_results(reference_run, tmp_path):
    """Kill `slimdeploy run` (SIGINT, SIGTERM or SIGKILL) at >= 10 random moments, resuming
    each time; the finished run must equal the uninterrupted one (same seed), INT8 variants and
    profiles included. A SIGKILL leaves the run's lock file behind: the resume takes it over
    (with a notice), never refuses."""
    from slimdeploy.dirlock import LOCK_FILE

    rng = random.Random(20261128)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # Each attempt lives for the start-up time plus a random share of the reference run's
    # work, so kills land during start-up, training, pruning, export and benchmarking alike.
    started = time.perf_counter()
    assert run_cli("run", "--print-config", cwd=tmp_path).returncode == 0
    startup = time.perf_counter() - started
    work = max(float((reference_run.parent.parent / "seconds.txt").read_text()) - startup, 10.0)
    kills, finished_runs, stderrs, locks_left = [], [], [], 0
    while len(kills) < 10:
        # A run that finishes before ten kills is checked, and a fresh one takes the rest.
        name = f"killed{len(finished_runs)}"
        command = [sys.executable, "-m", "slimdeploy", "run", "--config", str(TINY), "--name", name, "--quiet"]
        attempts = 0
        while True:
            attempts += 1
            assert attempts < 40
            resume = ["--resume"] if attempts > 1 else []
            process = subprocess.Popen(command + resume, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            delay = rng.uniform(0.8 * startup, startup + 0.4 * work) if len(kills) < 10 else None
            try:
                _, stderr = process.communicate(timeout=delay)
            except subprocess.TimeoutExpired:
                sig = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
                process.send_signal(sig)
                stderrs.append(process.communicate(timeout=120)[1])
                kills.append((round(delay, 2), sig.name, finished_stages(tmp_path / "runs" / name)))
                # SIGINT and SIGTERM release the lock on the way out; only SIGKILL leaves its file.
                locks_left += (tmp_path / "runs" / name / LOCK_FILE).exists()
                continue
            stderrs.append(stderr)
            assert process.returncode == 0, stderr
            finished_runs.append(tmp_path / "runs" / name)
            break
    assert len(kills) >= 10, kills
    # The kills landed in different stages, not all during start-up.
    assert len({stages for _, _, stages in kills}) >= 3, kills
    # Some SIGKILL left the run's lock file behind, yet no resume was refused (each went on, see
    # the returncode above); none is left in a finished run (below).
    assert locks_left >= 1, kills
    assert not [e for e in stderrs if "is being written by" in e]
    assert_int8_and_profiles(reference_run)
    for run_dir in finished_runs:
        assert deterministic_results(run_dir) == deterministic_results(reference_run)
        leftovers = [p for p in run_dir.rglob("*") if ".tmp-" in p.name or p.name == LOCK_FILE]
        assert not leftovers, leftovers
