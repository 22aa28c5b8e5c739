"""Commands that never run TensorFlow do not import it: `run --print-config`, `report --help`,
`bench --help`. Checked in a fresh process (this one has TensorFlow loaded by other tests);
``-X importtime`` cannot show it, since TensorFlow's quieting redirects stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest

from conftest import REPO

HEAVY = ("tensorflow", "keras", "tf2onnx")

# Runs the CLI in-process, then reports what it printed and which heavy modules it loaded.
PROBE = """
import contextlib, io, json, sys
from slimdeploy import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = cli.main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy})
print(json.dumps({{"code": code, "stdout": out.getvalue(), "heavy": heavy}}))
""".format(heavy=repr(set(HEAVY)))


def cli_in_fresh_process(*args: str) -> dict:
    env = {**os.environ, "COLUMNS": "100"}
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_print_config_loads_no_tensorflow():
    probe = cli_in_fresh_process("run", "--print-config")
    assert probe["code"] == 0
    assert probe["heavy"] == []
    config = tomllib.loads(probe["stdout"])
    for table in ("train", "prune", "export", "bench", "report"):
        assert isinstance(config[table], dict), table
    assert config["name"] == "article" and config["modes"] == ["structured", "unstructured"]
    assert config["train"]["recipe"] == "fashion_mlp"
    assert config["report"] == {"formats": ["md", "html", "json", "csv", "gab"], "max_regression": 0.1,
                                "confidence": 0.95, "step_summary": True, "dpi": 110, "max_drop": 0.5}
    assert config["export"]["profile_batches"] == config["bench"]["batches"]


@pytest.mark.parametrize("command", ["report", "bench"])
def test_help_loads_no_tensorflow(command):
    probe = cli_in_fresh_process(command, "--help")
    assert probe["code"] == 0
    assert probe["heavy"] == []
    assert probe["stdout"].startswith(f"usage: slimdeploy {command}")
