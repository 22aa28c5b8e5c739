"""What machine and which libraries produced a result (each runtime adds its own view of the device:
``runtimes.registry.describe_environment``)."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

LIBRARIES = ("slimdeploy", "tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "openvino", "numpy",
             "scipy", "tensorrt")

# The instruction-set features that decide which kernels a runtime picks (``cpu.isa``).
ISA_FEATURES = ("amx", "avx2", "avx512_vnni", "avx512f", "neon")
# Linux /proc/cpuinfo names -> ISA_FEATURES names (x86 "flags", arm64 "Features": asimd is NEON).
CPUINFO_NAMES = {"avx2": "avx2", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni", "amx_tile": "amx", "amx_int8": "amx",
                 "amx_bf16": "amx", "asimd": "neon"}
# macOS sysctl keys (Intel Macs report avx*; Apple silicon reports neon) -> ISA_FEATURES names.
SYSCTL_NAMES = {"hw.optional.avx2_0": "avx2", "hw.optional.avx512f": "avx512f", "hw.optional.avx512vnni": "avx512_vnni",
                "hw.optional.neon": "neon"}
# Windows IsProcessorFeaturePresent codes (winnt.h); it has none for VNNI or AMX.
WINDOWS_FEATURES = {"avx2": 40, "avx512f": 41, "neon": 19}
WINDOWS_NOTE = "Windows: avx512_vnni and amx are not detected (IsProcessorFeaturePresent has no flag for them)"
ARM64 = ("arm64", "aarch64")
# The /proc/cpuinfo flags ``cpu.flags`` keeps: those that decide which kernels a runtime can use.
KERNEL_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile",
                "avx_vnni")


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
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = None
    model, flags = "", []
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip() and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            present = set(value.split())
            flags = [flag for flag in KERNEL_FLAGS if flag in present]
    # platform.processor() says "arm" on Apple silicon: each OS's own brand string first.
    model = model or brand_string(platform.system()) or platform.processor() or platform.machine()
    isa, note = isa_features(platform.system(), platform.machine(), text)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    return {"model": model, "flags": flags, "logical_cores": os.cpu_count(), "arch": platform.machine(), "isa": isa,
            **({"isa_note": note} if note else {}), "usable_cores": usable}


def brand_string(system: str) -> str:
    """The CPU's marketing name where /proc/cpuinfo has no "model name" ('' when nothing answers):
    sysctl on macOS, the registry on Windows, lscpu on Linux arm64. Nothing here raises."""
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
        import winreg  # Windows only

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
            return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
    except (ImportError, OSError):
        return ""


def isa_features(system: str, arch: str, cpuinfo: str | None,
                 os_answer: set[str] | None = None) -> tuple[list[str], str | None]:
    """The ISA_FEATURES this CPU has, sorted, and a note when the list may be incomplete. ``cpuinfo``:
    /proc/cpuinfo's text (None: not Linux, or unreadable); ``os_answer``: the OS's answer given
    instead of asking it (tests of another OS's rules). Nothing here raises."""
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
    """ISA_FEATURES from /proc/cpuinfo's first ``flags`` (x86) or ``Features`` (arm64) line (None: neither)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return sorted({CPUINFO_NAMES[word] for word in value.split() if word in CPUINFO_NAMES})
    return None


def sysctl_isa() -> set[str]:
    try:
        # The whole hw.optional node: a key missing on this CPU (avx2_0 on Apple silicon) is absent.
        out = subprocess.run(["sysctl", "hw.optional"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    pairs = (line.partition(":") for line in out.splitlines())
    return {SYSCTL_NAMES[key.strip()] for key, _, value in pairs if key.strip() in SYSCTL_NAMES and value.strip() == "1"}


def windows_isa() -> set[str]:
    try:
        present = ctypes.windll.kernel32.IsProcessorFeaturePresent
        return {name for name, code in WINDOWS_FEATURES.items() if present(code)}
    except (AttributeError, OSError):
        return set()


def git_commit(start: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=start or Path.cwd(), capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def describe() -> dict:
    return {"cpu": cpu_info(), "os": f"{platform.system()} {platform.release()}", "python": sys.version.split()[0],
            "libraries": library_versions(), "git_commit": git_commit()}
