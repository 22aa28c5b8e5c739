"""Settings of the export stage: one dataclass whose fields make ``slimdeploy export``'s
options, defaults in one place, echoed into export.json (``settings``)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from slimdeploy.errors import UserError
from slimdeploy.export.quantize import CALIBRATION_METHODS
from slimdeploy.export.registry import names
from slimdeploy.parsers import int_list, positive_int
from slimdeploy.settings_base import Settings, is_int, setting

PRECISIONS = ("fp32", "fp16", "int8")
FLOAT_PRECISIONS = ("fp32", "fp16")
ALL_PRECISIONS = ("fp32", "int8")  # what --precision all means: the float model and its INT8 variant
INT8_VARIANT_SUFFIX = "-int8"  # dense -> dense-int8: the variant's model name and file stem
OPENVINO_INFERENCE_PRECISIONS = ("f32", "f16", "bf16")
MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 writes opsets up to 18; 13 is the oldest with the ops we emit


def target_choices() -> tuple[str, ...]:
    """What ``--target`` takes: every registered target (slimdeploy.export.registry) and "all"."""
    return (*names(), "all")


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
    known = target_choices()
    names = _as_list(value)
    if not names:
        return f"export targets must name at least one of {', '.join(known)}"
    unknown = next((name for name in names if name not in known), None)
    return None if unknown is None else f"unknown export target {unknown!r}; choose from {', '.join(known)}"


def precision_list(text: str) -> list[str]:
    """``--precision``: a comma list of fp32, fp16 and int8, or ``all`` (fp32 and int8)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(ALL_PRECISIONS)
    unknown = [name for name in names if name not in PRECISIONS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(PRECISIONS)} or 'all', got {text!r}")
    return names


def _precisions(value) -> str | None:
    names = _as_list(value)
    unknown = next((name for name in names if name not in PRECISIONS), None)
    if not names or unknown is not None:
        return f"export precision must be one or more of {', '.join(PRECISIONS)}, got {value!r}"
    if len(set(names) & set(FLOAT_PRECISIONS)) > 1:
        # Both would be named after the model: one float variant per export.
        return "export precision: choose one of fp32 and fp16 (each float export is named after its model)"
    return None


def _calibration_method(value) -> str | None:
    if value in CALIBRATION_METHODS:
        return None
    return f"calibration_method must be one of {', '.join(CALIBRATION_METHODS)}, got {value!r}"


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
    # The float model (fp32, or fp16 weights: ONNX fp16 initializers cast up on load, OpenVINO
    # compress_to_fp16, TensorRT FP16 kernels) and/or its post-training static INT8 variant
    # (<model>-int8: ONNX Runtime QDQ quantization, NNCF for OpenVINO), made from the fp32 ONNX.
    # `slimdeploy export` makes fp32 unless asked; `slimdeploy run` adds INT8 (pipeline.DEFAULT_PROFILE).
    precisions: list[str] = setting(
        default_factory=lambda: ["fp32"], flag="--precision", parse=precision_list,
        metavar="P1,P2", check=_precisions,
        help="what to make of each model, a comma list: fp32 or fp16 (the float model; fp16 halves the files) "
             "and int8 (a post-training static INT8 variant, <model>-int8: ONNX Runtime QDQ per-channel, "
             "NNCF for OpenVINO, calibrated on validation images), or 'all' (fp32,int8)")
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

    # INT8 calibration: the first N validation images (fewer when the split has fewer: a notice).
    calibration_size: int = setting(
        1000, flag="--calibration-size", parse=positive_int, metavar="N", check=_positive("calibration_size"),
        help="INT8: calibrate on the first N validation images")
    calibration_method: str = setting(
        "minmax", flag="--calibration-method", choices=tuple(CALIBRATION_METHODS), check=_calibration_method,
        help="INT8 activation ranges: minmax (ONNX Runtime MinMax, NNCF MINMAX), percentile (Percentile, "
             "MEAN_QUANTILE) or entropy (Entropy, HISTOGRAM)")

    @classmethod
    def from_dict(cls, raw, source: str = "settings") -> "ExportSettings":
        # Configs written before INT8 say `precision = "fp16"`: the same as precisions = ["fp16"].
        if isinstance(raw, dict) and "precision" in raw and "precisions" not in raw:
            raw = {**{k: v for k, v in raw.items() if k != "precision"}, "precisions": _as_list(raw["precision"])}
        return super().from_dict(raw, source)

    @property
    def float_precision(self) -> str | None:
        """fp32 or fp16: the precision of the artifacts named after their model (None: INT8 only)."""
        return next((p for p in _as_list(self.precisions) if p in FLOAT_PRECISIONS), None)

    @property
    def int8(self) -> bool:
        return "int8" in _as_list(self.precisions)

    def variant_suffixes(self) -> list[tuple[str, str]]:
        """(name suffix, precision) of what is made of each model: the float model under its own
        name (suffix ""), then its INT8 variant ``<model>-int8``."""
        made = [("", self.float_precision)] if self.float_precision else []
        return made + ([(INT8_VARIANT_SUFFIX, "int8")] if self.int8 else [])

    def variants(self, model: str) -> list[tuple[str, str]]:
        """(name, precision) of what is made of ``model``."""
        return [(model + suffix, precision) for suffix, precision in self.variant_suffixes()]

    def check_together(self) -> None:
        largest = max(self.profile_batches)
        if self.trt_opt_batch is not None and not (is_int(self.trt_opt_batch) and 1 <= self.trt_opt_batch <= largest):
            raise UserError(f"trt_opt_batch must be between 1 and the largest profile batch {largest}, got {self.trt_opt_batch!r}")

    def normalized(self) -> "ExportSettings":
        return dataclasses.replace(self, targets=_as_list(self.targets), profile_batches=list(self.profile_batches),
                                   precisions=[p for p in PRECISIONS if p in _as_list(self.precisions)])

    def validate(self) -> "ExportSettings":
        """The older name of ``validated()``."""
        return self.validated()

    @property
    def static_batch(self) -> int | None:
        return None if self.batch == "dynamic" else int(self.batch)

    def resolved_targets(self) -> list[str]:
        """The requested target names in registry order, "all" expanded."""
        targets = _as_list(self.targets)
        wanted = set(names()) if "all" in targets else set(targets)
        return [name for name in names() if name in wanted]
