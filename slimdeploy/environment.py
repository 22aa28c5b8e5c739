"""What machine and which libraries produced a result: recorded in every output."""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable

LIBRARIES = (
    "slimdeploy", "tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx",
    "onnxruntime", "openvino", "numpy", "scipy", "tensorrt",
)

# The instruction-set features that decide which kernels a runtime picks: wide float kernels
# (avx2, avx512f, neon) and int8 dot products (avx512_vnni, amx). ``cpu.isa`` lists those present.
ISA_FEATURES = ("amx", "avx2", "avx512_vnni", "avx512f", "neon")
# Linux /proc/cpuinfo names -> ISA_FEATURES names (x86 "flags", arm64 "Features": asimd is NEON).
CPUINFO_NAMES = {
    "avx2": "avx2", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni",
    "amx_tile": "amx", "amx_int8": "amx", "amx_bf16": "amx", "asimd": "neon",
}
# macOS sysctl keys (Intel Macs report avx*; Apple silicon reports neon) -> ISA_FEATURES names.
SYSCTL_NAMES = {
    "hw.optional.avx2_0": "avx2", "hw.optional.avx512f": "avx512f",
    "hw.optional.avx512vnni": "avx512_vnni", "hw.optional.neon": "neon",
}
# Windows IsProcessorFeaturePresent codes (winnt.h); it has none for VNNI or AMX.
WINDOWS_FEATURES = {"avx2": 40, "avx512f": 41, "neon": 19}
WINDOWS_NOTE = "Windows: avx512_vnni and amx are not detected (IsProcessorFeaturePresent has no flag for them)"
ARM64 = ("arm64", "aarch64")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    info = {"model": "", "flags": [], "logical_cores": os.cpu_count(), "arch": platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = None
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip() and not info["model"]:
            info["model"] = value.strip()
        elif key == "flags" and not info["flags"]:
            # Keep the flags that decide which kernels a runtime can use.
            wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile", "avx_vnni")
            present = set(value.split())
            info["flags"] = [flag for flag in wanted if flag in present]
    # platform.processor() says "arm" on Apple silicon and "Intel64 Family 6 ..." on Windows:
    # each OS's own brand string first, it only where none answers.
    info["model"] = info["model"] or brand_string(platform.system()) or platform.processor() or platform.machine()
    isa, note = isa_features(platform.system(), info["arch"], text)
    info["isa"] = isa
    if note:
        info["isa_note"] = note
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        info["usable_cores"] = os.cpu_count()
    return info


def brand_string(system: str) -> str:
    """The CPU's marketing name where /proc/cpuinfo has no "model name" ('' when nothing answers):
    sysctl on macOS, the registry on Windows, lscpu on Linux arm64 (it names the core, e.g.
    Neoverse-N1, from the CPU part number). Nothing here raises."""
    if system == "Darwin":
        return _command_output(["sysctl", "-n", "machdep.cpu.brand_string"])
    if system == "Windows":
        return windows_brand_string()
    if system == "Linux":
        return lscpu_model_name(_command_output(["lscpu"], env={**os.environ, "LC_ALL": "C"}))
    return ""


def _command_output(argv: list[str], env: dict | None = None) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, env=env)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def lscpu_model_name(text: str) -> str:
    """lscpu's first "Model name" ('' when absent or "-", as some arm64 builds print)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip() not in ("", "-"):
            return value.strip()
    return ""


def windows_brand_string() -> str:
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
            return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
    except (ImportError, OSError):
        return ""


def isa_features(system: str, arch: str, cpuinfo: str | None,
                 os_answer: set[str] | None = None) -> tuple[list[str], str | None]:
    """The ISA_FEATURES this CPU has, sorted, and a note when the list may be incomplete.

    ``cpuinfo`` is /proc/cpuinfo's text (Linux; None elsewhere or when unreadable). Each OS is
    asked the cheapest way it answers (sysctl, IsProcessorFeaturePresent); ``os_answer`` is that
    answer given instead (tests of another OS's rules). Nothing here raises."""
    if cpuinfo is not None:
        found = cpuinfo_isa(cpuinfo)
        return (found, None) if found is not None else ([], "/proc/cpuinfo has no flags or Features line")
    if system == "Darwin":
        found = set(sysctl_isa() if os_answer is None else os_answer)
        if arch.lower() in ARM64:
            found.add("neon")  # every Apple silicon CPU has it, whatever sysctl says
        return sorted(found), None
    if system == "Windows":
        return sorted(windows_isa() if os_answer is None else os_answer), WINDOWS_NOTE
    return [], f"{system or 'this OS'}: no source of CPU features read"


def cpuinfo_isa(text: str) -> list[str] | None:
    """ISA_FEATURES from /proc/cpuinfo's first ``flags`` (x86) or ``Features`` (arm64) line
    (None: it has neither)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return sorted({CPUINFO_NAMES[word] for word in value.split() if word in CPUINFO_NAMES})
    return None


def sysctl_isa() -> set[str]:
    try:
        # The whole hw.optional node: one "key: value" line per feature this kernel knows, so a key
        # missing on this CPU (avx2_0 on Apple silicon) is simply absent.
        out = subprocess.run(["sysctl", "hw.optional"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    found = set()
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in SYSCTL_NAMES and value.strip() == "1":
            found.add(SYSCTL_NAMES[key.strip()])
    return found


def windows_isa() -> set[str]:
    try:
        import ctypes

        present = ctypes.windll.kernel32.IsProcessorFeaturePresent
        return {name for name, code in WINDOWS_FEATURES.items() if present(code)}
    except (AttributeError, OSError):
        return set()


@functools.lru_cache(maxsize=None)
def openvino_device(device: str = "CPU") -> dict | None:
    """OpenVINO's own view of ``device`` (None: openvino is not installed). Any failure is recorded
    as {"error": ...}, never raised: a result is worth more than this description of it."""
    if importlib.util.find_spec("openvino") is None:
        return None
    try:
        import openvino as ov

        core = ov.Core()
        return {"FULL_DEVICE_NAME": str(core.get_property(device, "FULL_DEVICE_NAME")),
                "OPTIMIZATION_CAPABILITIES": [str(c) for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES")]}
    except Exception as exc:  # noqa: BLE001 - a broken install must not cost the measurements
        # One line, bounded: OpenVINO's C++ errors carry a multi-line trace.
        return {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}


def devices(runtimes: Iterable[str] | None = None) -> dict:
    """Each runtime's own description of the device it runs on, for ``runtimes`` (None: every
    installed runtime that can give one)."""
    wanted = None if runtimes is None else set(runtimes)
    found = {}
    if wanted is None or "openvino" in wanted:
        device = openvino_device()
        if device is not None:
            found["openvino"] = device
    return found


def git_commit(start: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=start or Path.cwd(), capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def describe(runtimes: Iterable[str] | None = None) -> dict:
    """The machine and libraries; ``devices`` holds the runtimes' own view of the device, for
    ``runtimes`` (the ones a result measured; None: every installed one)."""
    return {
        "cpu": cpu_info(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "git_commit": git_commit(),
        "devices": devices(runtimes),
    }
