"""What bench.json's ``environment`` says about the machine: the architecture, the ISA features
that decide a runtime's kernels, and OpenVINO's own view of the CPU (slimdeploy.environment)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO, run_cli_here
from test_bench_artifacts import onnx_mlp, random_layers

from slimdeploy import environment
from slimdeploy.bench.results import schema
from slimdeploy.runtimes.openvino import device_facts
from slimdeploy.runtimes.registry import describe_environment

# Excerpts of real /proc/cpuinfo files: an AWS Graviton2 (Neoverse N1) and a Sapphire Rapids Xeon.
ARM64_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd0c
"""
SAPPHIRE_RAPIDS_FLAGS = ("flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512dq avx512cd "
                         "avx512bw avx512vl avx512_bf16 avx512_vnni avx512_fp16 amx_bf16 amx_tile amx_int8\n")


def environment_schema() -> dict:
    return schema()["properties"]["environment"]


def test_this_machine_arch_and_isa_match_proc_cpuinfo():
    cpu = environment.cpu_info()
    assert cpu["arch"] == platform.machine()
    assert cpu["isa"] == sorted(set(cpu["isa"])) and set(cpu["isa"]) <= set(environment.ISA_FEATURES)
    proc = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not proc.exists():
        pytest.skip("the flag check below reads an x86-64 /proc/cpuinfo")
    flags = next(line for line in proc.read_text().splitlines() if line.startswith("flags")).split(":")[1].split()
    for feature in ("avx2", "avx512f", "avx512_vnni"):
        assert (feature in cpu["isa"]) == (feature in flags), feature
    assert ("amx" in cpu["isa"]) == any(f in flags for f in ("amx_tile", "amx_int8", "amx_bf16"))
    assert "neon" not in cpu["isa"] and "isa_note" not in cpu
    assert cpu["flags"] == [f for f in cpu["flags"] if f in flags]  # the older field is unchanged


def test_isa_features_per_os():
    assert environment.isa_features("Linux", "aarch64", ARM64_CPUINFO) == (["neon"], None)
    assert environment.isa_features("Linux", "x86_64", SAPPHIRE_RAPIDS_FLAGS) == (
        ["amx", "avx2", "avx512_vnni", "avx512f"], None)
    assert environment.isa_features("Linux", "x86_64", "processor\t: 0\n") == (
        [], "/proc/cpuinfo has no flags or Features line")
    # The OS's answer is passed in, so these rules are checked whatever OS runs the test.
    # Apple silicon always has NEON, whatever sysctl answers (here: no hw.optional keys at all).
    assert environment.isa_features("Darwin", "arm64", None, os_answer=set()) == (["neon"], None)
    assert environment.isa_features("Darwin", "x86_64", None, os_answer={"avx2", "avx512f"}) == (["avx2", "avx512f"], None)
    # Windows: what IsProcessorFeaturePresent found, and the note says what it never finds.
    assert environment.isa_features("Windows", "AMD64", None, os_answer={"avx2"}) == (["avx2"], environment.WINDOWS_NOTE)
    assert environment.isa_features("Windows", "AMD64", None, os_answer=set()) == ([], environment.WINDOWS_NOTE)


def test_the_os_probes_answer_without_raising_where_their_os_is_absent():
    if platform.system() != "Windows":  # no kernel32: nothing found, nothing raised
        assert environment.windows_isa() == set() and environment.windows_brand_string() == ""
    if platform.system() != "Darwin":  # sysctl absent, or without hw.optional / machdep (Linux)
        assert environment.sysctl_isa() == set()
        assert environment.brand_string("Darwin") == ""
    assert environment.brand_string("Plan9") == ""


def test_the_cpu_is_named_by_its_brand_string_not_the_arch():
    # lscpu on an arm64 Linux server (no "model name" in its /proc/cpuinfo), and on a build that prints "-".
    graviton = "Architecture:            aarch64\nVendor ID:               ARM\nModel name:              Neoverse-N1\n"
    assert environment.lscpu_model_name(graviton) == "Neoverse-N1"
    assert environment.lscpu_model_name("Architecture: aarch64\nModel name: -\n") == ""
    model = environment.cpu_info()["model"]
    assert model.strip() and model.lower() not in ("arm", "i386")  # platform.processor()'s non-names
    proc = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in proc.read_text().splitlines()
             if line.startswith("model name")] if proc.exists() else []
    if names:  # Linux x86: /proc/cpuinfo's name, first
        assert model == names[0]


def test_openvino_reports_the_device_and_a_failure_is_recorded_not_raised():
    device = device_facts()
    assert isinstance(device["FULL_DEVICE_NAME"], str) and device["FULL_DEVICE_NAME"].strip()
    assert "FP32" in device["OPTIMIZATION_CAPABILITIES"]
    failed = device_facts("NO_SUCH_DEVICE")
    assert list(failed) == ["error"] and "NO_SUCH_DEVICE" in failed["error"] and "\n" not in failed["error"]
    jsonschema.validate({**describe_environment(), "devices": {"openvino": failed}}, environment_schema())


def test_describe_records_devices_only_for_the_runtimes_measured():
    assert describe_environment(["onnxruntime"])["devices"] == {}
    described = describe_environment(["onnxruntime", "openvino"])
    assert described["devices"]["openvino"] == device_facts()
    assert describe_environment()["devices"] == described["devices"]  # None: every installed runtime
    jsonschema.validate(described, environment_schema())


def test_schema_takes_older_files_and_refuses_an_unknown_isa_name():
    older = json.loads((REPO / "tests/fixtures/previous_version/bench.json").read_text())["environment"]
    assert "isa" not in older["cpu"] and "devices" not in older
    jsonschema.validate(older, environment_schema())
    wrong = describe_environment(["onnxruntime"])
    wrong = {**wrong, "cpu": {**wrong["cpu"], "isa": ["sse2"]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, environment_schema())


def test_bench_writes_the_new_environment_fields(tmp_path):
    model = onnx_mlp(tmp_path / "tiny.onnx", random_layers((16, 10), seed=0))
    out = tmp_path / "bench.json"
    result = run_cli_here("bench", str(model), "--runtime", "openvino", "--batch", "1", "--processes", "1",
                          "--min-iters", "5", "--min-time", "0", "--warmup", "1", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())["environment"]
    assert written["cpu"]["arch"] == platform.machine() and written["cpu"]["isa"] == environment.cpu_info()["isa"]
    assert written["devices"]["openvino"]["FULL_DEVICE_NAME"] == device_facts()["FULL_DEVICE_NAME"]
