"""Settings of the export stage: one dataclass, defaults in one place, echoed into export.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from slimdeploy.errors import UserError

PRECISIONS = ("fp32", "fp16")
OPENVINO_INFERENCE_PRECISIONS = ("f32", "f16", "bf16")
MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 writes opsets up to 18; 13 is the oldest with the ops we emit


@dataclass
class ExportSettings:
    # Target names from slimdeploy.export.registry, or "all" (every target this machine can build).
    targets: list[str] = field(default_factory=lambda: ["all"])
    # fp32, or fp16 weights (ONNX: fp16 initializers cast up on load; OpenVINO: compress_to_fp16;
    # TensorRT: the FP16 builder flag).
    precision: str = "fp32"
    opset: int = 17
    # "dynamic" keeps the batch dimension free; an integer fixes it (static shapes can be faster).
    batch: str | int = "dynamic"
    # The precision OpenVINO computes in while verifying. None: f32 for fp32 exports (this CPU would
    # otherwise pick bf16), f16 for fp16 exports where the device supports it. Always recorded.
    openvino_inference_precision: str | None = None
    # TensorRT: batch sizes the optimization profile must cover (those the benchmark will run);
    # the profile spans 1..max and is tuned for trt_opt_batch (default: the largest).
    profile_batches: list[int] = field(default_factory=lambda: [1, 64, 256])
    trt_opt_batch: int | None = None
    trt_workspace_mb: int = 1024
    # TensorRT: let the builder use 2:4 structured-sparse kernels where weights qualify.
    sparse_weights: bool = False
    # Verification: images per inference call, and at most this many validation and test images
    # each (None: all of them). Verification itself is never optional.
    verify_batch: int = 256
    verify_limit: int | None = None

    def __post_init__(self) -> None:
        # TOML and JSON give lists; a lone string is one target.
        if isinstance(self.targets, str):
            self.targets = [self.targets]
        self.targets = list(self.targets)
        self.profile_batches = list(self.profile_batches)

    def validate(self) -> "ExportSettings":
        from slimdeploy.export.registry import TARGET_NAMES

        known = (*TARGET_NAMES, "all")
        if not self.targets:
            raise UserError(f"export targets must name at least one of {', '.join(known)}")
        for name in self.targets:
            if name not in known:
                raise UserError(f"unknown export target {name!r}; choose from {', '.join(known)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"export precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not _int(self.opset) or not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise UserError(f"ONNX opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {self.opset!r}")
        if self.batch != "dynamic" and not (_int(self.batch) and self.batch > 0):
            raise UserError(f"export batch must be 'dynamic' or a positive integer, got {self.batch!r}")
        if self.openvino_inference_precision not in (None, *OPENVINO_INFERENCE_PRECISIONS):
            raise UserError(
                f"openvino_inference_precision must be one of {', '.join(OPENVINO_INFERENCE_PRECISIONS)}, "
                f"got {self.openvino_inference_precision!r}"
            )
        if not self.profile_batches or not all(_int(b) and b > 0 for b in self.profile_batches):
            raise UserError(f"profile_batches must be positive integers, got {self.profile_batches!r}")
        if self.trt_opt_batch is not None and not (_int(self.trt_opt_batch) and 1 <= self.trt_opt_batch <= max(self.profile_batches)):
            raise UserError(f"trt_opt_batch must be between 1 and the largest profile batch {max(self.profile_batches)}, got {self.trt_opt_batch!r}")
        for key in ("trt_workspace_mb", "verify_batch"):
            if not (_int(getattr(self, key)) and getattr(self, key) > 0):
                raise UserError(f"{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.verify_limit is not None and not (_int(self.verify_limit) and self.verify_limit > 0):
            raise UserError(f"verify_limit must be a positive integer, got {self.verify_limit!r}")
        if not isinstance(self.sparse_weights, bool):
            raise UserError(f"sparse_weights must be true or false, got {self.sparse_weights!r}")
        return self

    @property
    def static_batch(self) -> int | None:
        return None if self.batch == "dynamic" else int(self.batch)

    def resolved_targets(self) -> list[str]:
        """The requested target names in registry order, "all" expanded."""
        from slimdeploy.export.registry import TARGET_NAMES

        wanted = set(TARGET_NAMES) if "all" in self.targets else set(self.targets)
        return [name for name in TARGET_NAMES if name in wanted]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
