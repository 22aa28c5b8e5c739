"""Every workflow in .github/workflows/ (users copy benchmark.yml into their CI) passes zizmor's
security audits with no finding of medium severity or higher, validates against GitHub's workflow
schema, and keeps write permissions in a job that runs no code of the repository. zizmor runs
--offline (its online audits and every network access are off), as the auditor persona (every
audit, e.g. top-level write permissions of a one-job workflow, which the regular persona leaves
to the pedantic one) and with --no-ignores --no-config, so neither an inline `# zizmor: ignore`
nor a zizmor.yml can hide a finding from this test. The tools come from the dev
extra (`pip install -e ".[dev]"`; zizmor 1.25 brought --no-ignores); a missing one fails the tests,
it never skips them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, executable

WORKFLOWS = sorted(p for p in (REPO / ".github/workflows").iterdir() if p.suffix in {".yml", ".yaml"})
SEVERITIES = ["Unknown", "Informational", "Low", "Medium", "High"]
FAILING = {"Medium", "High"}

# Everything the lint must object to: a write token for every job, a tag instead of a commit SHA,
# a checkout that keeps its token, a pull request's title expanded into a shell.
BAD_WORKFLOW = """\
name: bad
on: [pull_request]
permissions:
  contents: write
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def zizmor(*paths: Path) -> list[dict]:
    """zizmor's findings (its JSON) for the workflow files, offline."""
    env = {k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN"}}
    result = subprocess.run(
        [executable("zizmor"), "--offline", "--persona", "auditor", "--no-ignores", "--no-config", "--no-exit-codes",
         "--no-progress",
         "--format", "json", *map(str, paths)],
        capture_output=True, text=True, env={**env, "ZIZMOR_OFFLINE": "true"}, timeout=120)
    assert result.returncode == 0, f"zizmor failed ({result.returncode}): {result.stderr}"
    findings = json.loads(result.stdout)
    assert all(f["determinations"]["severity"] in SEVERITIES for f in findings), findings
    return findings


def medium_or_higher(findings: list[dict]) -> list[str]:
    """One line per finding of medium or high severity: audit, severity, where and why."""
    lines = []
    for finding in findings:
        severity = finding["determinations"]["severity"]
        if severity not in FAILING:
            continue
        where = [f"{loc['symbolic']['key']['Local']['verbatim_path']}:{loc['concrete']['location']['start_point']['row'] + 1}"
                 f" {loc['concrete']['feature'].strip()!r} ({loc['symbolic']['annotation']})"
                 for loc in finding["locations"] if loc["symbolic"]["kind"] == "Primary"]
        lines.append(f"{finding['ident']} [{severity}]: {finding['desc']} at {'; '.join(where)}")
    return lines


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_there_are_workflows_to_lint():
    assert REPO / ".github/workflows/benchmark.yml" in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_zizmor_finds_nothing_of_medium_severity_or_higher(path):
    problems = medium_or_higher(zizmor(path))
    assert not problems, "zizmor --offline:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(path):
    result = check_jsonschema(path)
    assert result.returncode == 0 and "ok -- validation done" in result.stdout, result.stdout + result.stderr


def test_the_lint_fails_a_bad_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    problems = medium_or_higher(zizmor(bad))
    audits = {line.split(" ", 1)[0] for line in problems}
    assert {"excessive-permissions", "unpinned-uses", "artipacked", "template-injection"} <= audits, problems
    # The schema check fails too, on a job without runs-on.
    invalid = tmp_path / "invalid.yml"
    invalid.write_text(BAD_WORKFLOW.replace("    runs-on: ubuntu-latest\n", ""))
    result = check_jsonschema(invalid)
    assert result.returncode != 0 and "runs-on" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_only_jobs_that_run_no_repository_code_may_write(path):
    workflow = yaml.safe_load(path.read_text())
    top = workflow.get("permissions", {})
    assert top == {} or top == "read-all" or set(top.values()) <= {"read", "none"}, top  # read-only default
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} takes the default token: give it its own permissions"
        steps = job.get("steps", [])
        for step in steps:
            assert "${{" not in step.get("run", ""), f"job {name}: an expression in a shell, not through env"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"job {name} keeps its token"
        permissions = job["permissions"]
        writes = permissions == "write-all" or "write" in permissions.values()
        if writes:
            # Never for a pull request, and nothing of the checkout is executed.
            assert job.get("if") == "github.event_name == 'push'", (name, job.get("if"))
            assert not [s for s in steps if "run" in s], f"job {name} writes and runs commands"
            assert not [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")], name
            for step in steps:
                assert "ref" not in step.get("with", {}), f"job {name} checks out another ref: {step}"


def test_the_history_job_pushes_the_report_the_benchmark_job_uploaded():
    jobs = yaml.safe_load((REPO / ".github/workflows/benchmark.yml").read_text())["jobs"]
    writers = sorted(name for name, job in jobs.items() if "write" in job["permissions"].values())
    assert writers == ["history"] and jobs["history"]["permissions"] == {"contents": "write"}
    history = jobs["history"]
    assert history["needs"] == "benchmark"
    upload = next(s["with"] for s in jobs["benchmark"]["steps"] if s.get("with", {}).get("name") == "slimdeploy-report")
    download = next(s["with"] for s in history["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download == {"name": "slimdeploy-report", "path": upload["path"]}
    track = next(s["with"] for s in history["steps"] if "github-action-benchmark@" in s.get("uses", ""))
    assert track["output-file-path"] == upload["path"] + "gab.json" and track["auto-push"] is True
    assert track["tool"] == "customSmallerIsBetter" and track["comment-on-alert"] is True
    # No job asks to write to pull requests: nothing comments on them.
    assert all("pull-requests" not in job["permissions"] for job in jobs.values())
