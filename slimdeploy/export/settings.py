"""Settings of the export stage: one dataclass whose fields make ``slimdeploy export``'s
options, defaults in one place, echoed into export.json (``settings``)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from slimdeploy.errors import UserError
from slimdeploy.parsers import int_list, positive_int
from slimdeploy.settings_base import Settings, is_int, setting

PRECISIONS = ("fp32", "fp16")
OPENVINO_INFERENCE_PRECISIONS = ("f32", "f16", "bf16")
MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 writes opsets up to 18; 13 is the oldest with the ops we emit
# slimdeploy.export.registry's names and "all", kept import-free for --help.
TARGET_CHOICES = ("onnx", "openvino", "tensorrt", "all")


def batch_value(text: str):
    """``--batch``: "dynamic" or a positive integer."""
    if text == "dynamic":
        return "dynamic"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'dynamic' or a positive integer, got {text!r}") from None


def _as_list(targets) -> list:
    # TOML and JSON give lists; a lone string is one target.
    return [targets] if isinstance(targets, str) else list(targets)


# --- checks: each returns the whole one-line error (today's wording) -----------------------
def _targets(value) -> str | None:
    from slimdeploy.export.registry import TARGET_NAMES

    known = (*TARGET_NAMES, "all")
    names = _as_list(value)
    if not names:
        return f"export targets must name at least one of {', '.join(known)}"
    unknown = next((name for name in names if name not in known), None)
    return None if unknown is None else f"unknown export target {unknown!r}; choose from {', '.join(known)}"


def _precision(value) -> str | None:
    return None if value in PRECISIONS else f"export precision must be one of {', '.join(PRECISIONS)}, got {value!r}"


def _opset(value) -> str | None:
    if is_int(value) and MIN_OPSET <= value <= MAX_OPSET:
        return None
    return f"ONNX opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {value!r}"


def _batch(value) -> str | None:
    if value == "dynamic" or (is_int(value) and value > 0):
        return None
    return f"export batch must be 'dynamic' or a positive integer, got {value!r}"


def _openvino_precision(value) -> str | None:
    if value in (None, *OPENVINO_INFERENCE_PRECISIONS):
        return None
    return f"openvino_inference_precision must be one of {', '.join(OPENVINO_INFERENCE_PRECISIONS)}, got {value!r}"


def _profile_batches(value) -> str | None:
    if value and all(is_int(b) and b > 0 for b in value):
        return None
    return f"profile_batches must be positive integers, got {value!r}"


def _positive(key: str, optional: bool = False):
    def check(value) -> str | None:
        if (optional and value is None) or (is_int(value) and value > 0):
            return None
        return f"{key} must be a positive integer, got {value!r}"

    return check


def _flag(value) -> str | None:
    return None if isinstance(value, bool) else f"sparse_weights must be true or false, got {value!r}"


@dataclass(frozen=True)
class ExportSettings(Settings):
    # Target names from slimdeploy.export.registry, or "all" (every target this machine can build).
    # ``--target`` repeats (append), so commands/export.py adds it itself.
    targets: list[str] = setting(default_factory=lambda: ["all"], check=_targets)
    # fp32, or fp16 weights (ONNX: fp16 initializers cast up on load; OpenVINO: compress_to_fp16;
    # TensorRT: the FP16 builder flag).
    precision: str = setting(
        "fp32", flag="--precision", choices=PRECISIONS, check=_precision,
        help="weight precision: fp16 halves the files (ONNX: fp16 initializers cast up on load; "
             "OpenVINO: compress_to_fp16; TensorRT: FP16 kernels)")
    opset: int = setting(17, flag="--opset", parse=positive_int, check=_opset,
                         help=f"ONNX opset ({MIN_OPSET}-{MAX_OPSET})")
    # "dynamic" keeps the batch dimension free; an integer fixes it (static shapes can be faster).
    batch: str | int = setting("dynamic", flag="--batch", parse=batch_value, check=_batch,
                               help="'dynamic' (any batch size) or a fixed batch size N (static shapes)")
    # The precision OpenVINO computes in while verifying. None: f32 for fp32 exports (this CPU would
    # otherwise pick bf16), f16 for fp16 exports where the device supports it. Always recorded.
    openvino_inference_precision: str | None = setting(
        None, flag="--openvino-precision", choices=OPENVINO_INFERENCE_PRECISIONS, check=_openvino_precision,
        help="precision OpenVINO computes in during verification",
        shown="f32 for fp32 exports — CPUs with bf16 would otherwise use bf16 — and f16 for fp16 exports where supported")
    # TensorRT: batch sizes the optimization profile must cover (those the benchmark will run);
    # the profile spans 1..max and is tuned for trt_opt_batch (default: the largest).
    profile_batches: list[int] = setting(
        default_factory=lambda: [1, 64, 256], flag="--profile-batches", parse=int_list, metavar="B1,B2,...",
        check=_profile_batches, help="TensorRT: batch sizes the optimization profile must cover")
    trt_opt_batch: int | None = setting(
        None, flag="--trt-opt-batch", parse=positive_int, metavar="N", shown="the largest profile batch",
        help="TensorRT: batch size the profile is tuned for")
    trt_workspace_mb: int = setting(1024, check=_positive("trt_workspace_mb"))
    # TensorRT: let the builder use 2:4 structured-sparse kernels where weights qualify.
    sparse_weights: bool = setting(
        False, flag="--sparse-weights", switch=True, check=_flag,
        help="TensorRT: allow 2:4 structured-sparse kernels where weights qualify; the manifest "
             "says which layers TensorRT found eligible and which it ran sparse")
    # Verification: images per inference call, and at most this many validation and test images
    # each (None: all of them). Verification itself is never optional.
    verify_batch: int = setting(256, check=_positive("verify_batch"))
    verify_limit: int | None = setting(
        None, flag="--verify-limit", parse=positive_int, metavar="N", shown="all",
        check=_positive("verify_limit", optional=True),
        help="verify on at most N validation and N test images each")

    def check_together(self) -> None:
        largest = max(self.profile_batches)
        if self.trt_opt_batch is not None and not (is_int(self.trt_opt_batch) and 1 <= self.trt_opt_batch <= largest):
            raise UserError(f"trt_opt_batch must be between 1 and the largest profile batch {largest}, got {self.trt_opt_batch!r}")

    def normalized(self) -> "ExportSettings":
        return dataclasses.replace(self, targets=_as_list(self.targets), profile_batches=list(self.profile_batches))

    def validate(self) -> "ExportSettings":
        """The older name of ``validated()``."""
        return self.validated()

    @property
    def static_batch(self) -> int | None:
        return None if self.batch == "dynamic" else int(self.batch)

    def resolved_targets(self) -> list[str]:
        """The requested target names in registry order, "all" expanded."""
        from slimdeploy.export.registry import TARGET_NAMES

        targets = _as_list(self.targets)
        wanted = set(TARGET_NAMES) if "all" in targets else set(targets)
        return [name for name in TARGET_NAMES if name in wanted]
