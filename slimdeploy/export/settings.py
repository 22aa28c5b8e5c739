"""Settings of the export stage: the fields make ``slimdeploy export``'s options and export.json's ``settings``."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from slimdeploy.errors import UserError
from slimdeploy.export.quantize import CALIBRATION_METHODS
from slimdeploy.export.registry import names
from slimdeploy.parsers import int_list, positive_int
from slimdeploy.runtimes.openvino import PRECISIONS as OPENVINO_INFERENCE_PRECISIONS
from slimdeploy.settings_base import Settings, is_int, setting

PRECISIONS = ("fp32", "fp16", "int8")
FLOAT_PRECISIONS = ("fp32", "fp16")
ALL_PRECISIONS = ("fp32", "int8")  # what --precision all means: the float model and its INT8 variant
INT8_VARIANT_SUFFIX = "-int8"  # dense -> dense-int8: the variant's model name and file stem
MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 writes opsets up to 18; 13 is the oldest with the ops we emit


def target_choices() -> tuple[str, ...]:
    """What ``--target`` takes: every registered target and "all"."""
    return (*names(), "all")


def batch_value(text: str):
    if text == "dynamic":
        return "dynamic"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'dynamic' or a positive integer, got {text!r}") from None


def _as_list(targets) -> list:
    # TOML and JSON give lists; a lone string is one target.
    return [targets] if isinstance(targets, str) else list(targets)


# --- checks: each returns the whole one-line error ---------------------------------------
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
    if len(set(names) & set(FLOAT_PRECISIONS)) > 1:  # both would be named after the model
        return "export precision: choose one of fp32 and fp16 (each float export is named after its model)"
    return None


def _check(ok, error: str):
    """A check: None where ``ok(value)``, else ``error`` formatted with the value's repr."""
    return lambda value: None if ok(value) else error.format(repr(value))


_calibration_method = _check(lambda v: v in CALIBRATION_METHODS,
                             f"calibration_method must be one of {', '.join(CALIBRATION_METHODS)}, got {{}}")
_opset = _check(lambda v: is_int(v) and MIN_OPSET <= v <= MAX_OPSET,
                f"ONNX opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {{}}")
_batch = _check(lambda v: v == "dynamic" or (is_int(v) and v > 0),
                "export batch must be 'dynamic' or a positive integer, got {}")
_openvino_precision = _check(lambda v: v in (None, *OPENVINO_INFERENCE_PRECISIONS), "openvino_inference_precision "
                             f"must be one of {', '.join(OPENVINO_INFERENCE_PRECISIONS)}, got {{}}")
_profile_batches = _check(lambda v: v and all(is_int(b) and b > 0 for b in v),
                          "profile_batches must be positive integers, got {}")
_flag = _check(lambda v: isinstance(v, bool), "sparse_weights must be true or false, got {}")


def _positive(key: str, optional: bool = False):
    return _check(lambda v: (optional and v is None) or (is_int(v) and v > 0), f"{key} must be a positive integer, got {{}}")


@dataclass(frozen=True)
class ExportSettings(Settings):
    # Registered target names, or "all" (every target this machine can build); commands/export.py adds --target.
    targets: list[str] = setting(default_factory=lambda: ["all"], check=_targets)
    precisions: list[str] = setting(
        default_factory=lambda: ["fp32"], flag="--precision", parse=precision_list,
        metavar="P1,P2", check=_precisions,
        help="what to make of each model, a comma list: fp32 or fp16 (the float model; fp16 halves the files) "
             "and int8 (a post-training static INT8 variant, <model>-int8: ONNX Runtime QDQ per-channel, "
             "NNCF for OpenVINO, calibrated on validation images), or 'all' (fp32,int8)")
    opset: int = setting(17, flag="--opset", parse=positive_int, check=_opset,
                         help=f"ONNX opset ({MIN_OPSET}-{MAX_OPSET})")
    batch: str | int = setting("dynamic", flag="--batch", parse=batch_value, check=_batch,
                               help="'dynamic' (any batch size) or a fixed batch size N (static shapes)")
    openvino_inference_precision: str | None = setting(
        None, flag="--openvino-precision", choices=OPENVINO_INFERENCE_PRECISIONS, check=_openvino_precision,
        help="precision OpenVINO computes in during verification",
        shown="f32 for fp32 exports — CPUs with bf16 would otherwise use bf16 — and f16 for fp16 exports where supported")
    profile_batches: list[int] = setting(
        default_factory=lambda: [1, 64, 256], flag="--profile-batches", parse=int_list, metavar="B1,B2,...",
        check=_profile_batches, help="TensorRT: batch sizes the optimization profile must cover")
    trt_opt_batch: int | None = setting(
        None, flag="--trt-opt-batch", parse=positive_int, metavar="N", shown="the largest profile batch",
        help="TensorRT: batch size the profile is tuned for")
    trt_workspace_mb: int = setting(1024, check=_positive("trt_workspace_mb"))
    sparse_weights: bool = setting(
        False, flag="--sparse-weights", switch=True, check=_flag,
        help="TensorRT: allow 2:4 structured-sparse kernels where weights qualify; the manifest "
             "says which layers TensorRT found eligible and which it ran sparse")
    verify_batch: int = setting(256, check=_positive("verify_batch"))
    verify_limit: int | None = setting(
        None, flag="--verify-limit", parse=positive_int, metavar="N", shown="all",
        check=_positive("verify_limit", optional=True),
        help="verify on at most N validation and N test images each")
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
        """(name suffix, precision) of what is made of each model: the float model (""), then ``-int8``."""
        made = [("", self.float_precision)] if self.float_precision else []
        return made + ([(INT8_VARIANT_SUFFIX, "int8")] if self.int8 else [])

    def variants(self, model: str) -> list[tuple[str, str]]:
        return [(model + suffix, precision) for suffix, precision in self.variant_suffixes()]

    def check_together(self) -> None:
        largest = max(self.profile_batches)
        if self.trt_opt_batch is not None and not (is_int(self.trt_opt_batch) and 1 <= self.trt_opt_batch <= largest):
            raise UserError(f"trt_opt_batch must be between 1 and the largest profile batch {largest}, got {self.trt_opt_batch!r}")

    def normalized(self) -> "ExportSettings":
        return dataclasses.replace(self, targets=_as_list(self.targets), profile_batches=list(self.profile_batches),
                                   precisions=[p for p in PRECISIONS if p in _as_list(self.precisions)])

    def validate(self) -> "ExportSettings":  # the older name of validated()
        return self.validated()

    @property
    def static_batch(self) -> int | None:
        return None if self.batch == "dynamic" else int(self.batch)

    def resolved_targets(self) -> list[str]:
        """The requested target names in registry order, "all" expanded."""
        targets = _as_list(self.targets)
        wanted = set(names()) if "all" in targets else set(targets)
        return [name for name in names() if name in wanted]
