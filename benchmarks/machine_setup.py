#!/usr/bin/env python3
"""Set up one machine of the benchmark matrix (.github/workflows/benchmark.yml).

``install``: ``pip install -e .``; where that fails (a dependency without a wheel for this
platform), slimdeploy itself and then each dependency one by one, so one missing wheel costs
only that package. What was skipped, and pip's reason, goes to the job summary.

``runtimes``: which runtimes this machine can bench. Each installed one is imported in a fresh
process (a wheel can install and still fail to load its native library); the usable ones are
written as ``runtimes=a,b`` to $GITHUB_OUTPUT (the bench step's ``--runtime``), the others with
their reason to the job summary. Never fails the job: an empty list means "nothing to bench here".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIP = (sys.executable, "-m", "pip", "install", "--prefer-binary")


def project_dependencies() -> list[str]:
    """pyproject.toml's [project] dependencies, markers included (pip evaluates them)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


def last_error_line(text: str) -> str:
    """pip's reason in one line: its last ERROR line, else the last non-empty line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def pip_install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PIP, *args], cwd=REPO, capture_output=True, text=True)


def install() -> list[tuple[str, str]]:
    """Install slimdeploy with what this platform has; returns [(requirement, why skipped)]."""
    if pip_install("-e", ".").returncode == 0:
        return []
    itself = pip_install("--no-deps", "-e", ".")
    if itself.returncode != 0:  # slimdeploy itself must install: that is a real failure
        sys.exit(f"pip install --no-deps -e . failed: {last_error_line(itself.stderr)}")
    skipped = []
    for requirement in project_dependencies():
        # Wheels only: --prefer-binary still builds an sdist where no wheel exists, which can take an
        # hour or fail obscurely; this way pip says "no matching distribution", the reason shown.
        result = pip_install("--only-binary=:all:", requirement)
        if result.returncode != 0:
            skipped.append((requirement, last_error_line(result.stderr)))
    return skipped


def import_problem(module: str) -> str | None:
    """Why ``module`` cannot be imported here (None: it can), from a fresh process."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode == 0:
        return None
    return f"import {module} failed: {last_error_line(result.stderr)}"


def runtime_states(names: list[str] | None = None) -> dict[str, str | None]:
    """Runtime name -> None when it can bench here, else why not (slimdeploy's own availability
    first: not installed, no GPU; then a real import of the module its sessions import,
    ``RuntimePlugin.import_name``). ``names``: the runtimes to consider (None: every registered one)."""
    from slimdeploy.runtimes.registry import all_availability, plugin

    states = {}
    for name, state in all_availability(names).items():
        states[name] = import_problem(plugin(name).import_name) if state["available"] else state.get("reason", "unavailable")
    return states


def summary(machine: str, skipped: list[tuple[str, str]], states: dict[str, str | None] | None) -> str:
    lines = [f"### {machine}", ""]
    for requirement, reason in skipped:
        lines.append(f"- skipped `{requirement}`: {reason}")
    if states is not None:
        usable = [name for name, problem in states.items() if problem is None]
        lines.append(f"- benched runtimes: {', '.join(usable) or 'none (no bench on this machine)'}")
        lines += [f"- not benched: {name}: {problem}" for name, problem in states.items() if problem]
    return "\n".join(lines) + "\n"


def append_to(variable: str, text: str) -> None:
    """Append to the file a GitHub Actions variable names ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY);
    stdout when it is not set (a local try)."""
    path = os.environ.get(variable)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("install", "runtimes"))
    parser.add_argument("--machine", default=os.environ.get("RUNNER_NAME", "this machine"),
                        help="the name shown in the job summary")
    parser.add_argument("--consider", metavar="LIST", help="comma-separated runtimes to check (default: every one "
                        "slimdeploy knows)")
    args = parser.parse_args(argv)
    if args.step == "install":
        skipped = install()
        if skipped:
            append_to("GITHUB_STEP_SUMMARY", summary(args.machine, skipped, None))
        return 0
    consider = args.consider.split(",") if args.consider else None
    if consider:
        from slimdeploy.runtimes.registry import names

        unknown = sorted(set(consider) - set(names()))
        if unknown:
            parser.error(f"--consider: unknown runtime {', '.join(unknown)} (known: {', '.join(names())})")
    states = runtime_states(consider)
    usable = [name for name, problem in states.items() if problem is None]
    append_to("GITHUB_OUTPUT", f"runtimes={','.join(usable)}\n")
    append_to("GITHUB_STEP_SUMMARY", summary(args.machine, [], states))
    return 0


if __name__ == "__main__":
    sys.exit(main())
