"""export.json as records: the manifest (``ExportManifest``), its models' facts and its artifacts.

Field order is the order ``slimdeploy export`` writes the keys. An artifact's target-specific
facts (``opset``, ``device``, ``engine_*``...) and the timings written after them
(``convert_seconds``, ``file_sha256``, ``onnx_conversion_seconds``...) follow the documented
fields in the order they were added: they live in ``extra``, so they are written back as read.

``export.partial.json`` (what an interrupted export has done) is the same record holding only
``schema_version``, ``source``, ``settings``, ``sources_sha256``, ``models`` and ``artifacts``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slimdeploy.records.base import ABSENT, Record
from slimdeploy.records.environment import Environment
from slimdeploy.records.run import DataInfo

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelFacts(Record):
    """One exported Keras model: where it came from and what it holds."""

    WHAT = "export model facts"

    source: str | None = None  # relative to the run directory, or the path given
    source_sha256: str | None = None
    params: int | None = None
    nonzero_params: int | None = None
    flops: int | None = None
    nonzero_flops: int | None = None
    widths: list | None = None
    keras_test_accuracy: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Artifact(Record):
    """One exported file (or file set: OpenVINO's .xml + .bin) of one model for one target.

    Every field is always written (``null`` when it does not apply, e.g. ``path`` of an
    artifact whose conversion failed)."""

    WHAT = "export artifact"

    model: str | None = None
    source: str | None = None
    target: str | None = None
    path: str | None = None  # the primary file, relative to the export directory
    files: list | None = None
    precision: str | None = None  # weight precision (fp32, fp16)
    inference_precision: str | None = None  # what the runtime computed in while verifying
    input_name: str | None = None
    input_dtype: str | None = None
    input_range: list | None = None
    input_shape: list | None = None
    output_name: str | None = None
    batch: Any = None  # "dynamic" or an integer
    bytes: int | None = None
    gzip_bytes: int | None = None
    sha256: str | None = None
    params: int | None = None
    nonzero_params: int | None = None
    flops: int | None = None
    widths: list | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    top1_agreement: float | None = None
    test_accuracy: float | None = None
    keras_test_accuracy: float | None = None
    tolerance: float | None = None
    min_top1_agreement: float | None = None
    valid: bool | None = None
    error: str | None = None
    seconds: float | None = None
    converter: str | None = None
    runtime: str | None = None
    versions: dict | None = None

    @property
    def variant_of(self) -> str | None:
        """The model an INT8 variant (``dense-int8``) was quantized from; None for a float artifact."""
        return self.extra.get("variant_of")

    @property
    def file_sha256(self) -> dict:
        """File name -> sha256 of each of the artifact's files."""
        return self.extra.get("file_sha256") or {}


def artifact_fields() -> tuple[str, ...]:
    """The documented artifact keys, in the order they are written."""
    return tuple(f.name for f in dataclasses.fields(Artifact) if f.name not in ("extra", "_order"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Skipped(Record):
    """A target this machine could not build (with ``precision``: a target that makes no variant of it)."""

    WHAT = "skipped target"

    target: str = ABSENT
    precision: str = ABSENT
    reason: str = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportManifest(Record):
    """export.json (and, with fewer fields, export.partial.json)."""

    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "export manifest"

    schema_version: int = SCHEMA_VERSION
    tool: str = ABSENT
    created: str = ABSENT
    source: str | None = None  # the SOURCE given to `slimdeploy export`
    settings: dict = dataclasses.field(default_factory=dict)  # ExportSettings.to_dict()
    sources_sha256: dict = ABSENT  # export.partial.json only: model -> sha256 of its .keras file
    environment: Environment = ABSENT
    data: DataInfo = ABSENT
    models: dict[str, ModelFacts] = dataclasses.field(default_factory=dict)
    artifacts: list[Artifact] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = ABSENT
    notes: list = ABSENT  # notices the export gave (e.g. fewer calibration images than asked for)
    seconds: float = ABSENT

    @property
    def precisions(self) -> list:
        """The precisions asked for (``settings`` is ``ExportSettings.to_dict()``; older files: one precision)."""
        return self.settings.get("precisions") or [self.settings.get("precision")]

    def failed(self) -> list[Artifact]:
        return [a for a in self.artifacts if not a.valid]

    def valid_artifacts(self) -> list[Artifact]:
        return [a for a in self.artifacts if a.valid]
