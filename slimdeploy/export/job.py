"""One export run's work once its inputs are checked: every model to every target, each artifact
recorded in ``export.partial.json`` as it finishes (``export.api.export_source`` writes export.json)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimdeploy import fsutil, interrupts
from slimdeploy.errors import SlimdeployError
from slimdeploy.export.onnx import keras_to_onnx
from slimdeploy.export.quantize import calibration_images
from slimdeploy.export.settings import ExportSettings
from slimdeploy.export.sources import ModelSource, SourcePlan
from slimdeploy.export.target import INPUT_NAME, OUTPUT_NAME, Tolerance
from slimdeploy.export.verify import keras_reference, verify
from slimdeploy.models import (count_flops, count_nonzero_params, count_params, dense_widths, integer_input_range,
                               model_input_dtype)
from slimdeploy.records.export import SCHEMA_VERSION, Artifact, ExportManifest, ModelFacts, artifact_fields

FAILED_SUFFIX = ".failed"
FIELDS = frozenset(artifact_fields())


@dataclass
class Kept:
    """What an interrupted export verified that is still intact: used as it is."""

    artifacts: dict[tuple[str, str], Artifact] = field(default_factory=dict)  # (model, target) ->
    facts: dict[str, ModelFacts] = field(default_factory=dict)  # model ->


@dataclass
class OnnxSource:
    """The fp32 ONNX file every target of one model is made from (or why it could not be made)."""

    path: Path
    error: str | None
    seconds: float


@dataclass
class ExportJob:
    settings: ExportSettings
    plan: SourcePlan
    targets: list  # export.target.Target
    dataset: Any  # slimdeploy.data.Dataset: the verification images
    sources_sha256: dict[str, str]  # model -> sha256 of its .keras file
    kept: Kept = field(default_factory=Kept)
    progress: Any = None
    # Filled in as the job runs.
    model_facts: dict[str, ModelFacts] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    staging: Path | None = None
    notices: list[str] = field(default_factory=list)  # said once each, and kept in export.json
    on_notice: Any = None  # called with each notice as it happens (the CLI prints it)
    _task: Any = None

    @property
    def out_dir(self) -> Path:
        return self.plan.out_dir

    def run(self, models: dict, created_out_dir: bool) -> None:
        """Every model (name -> loaded Keras model) to every target, in a staging directory inside
        the output directory (removed at the end)."""
        self.staging = Path(tempfile.mkdtemp(prefix=f".export{fsutil.TMP_MARK}", dir=self.out_dir))
        if self.progress is not None:
            self._task = self.progress.add_task("export", total=len(self.plan.models) * len(self.steps()), info="")
        finished = False
        try:
            for m in self.plan.models:
                self.export_model(m, models[m.name])
            finished = True
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            if not finished and created_out_dir and not any(self.out_dir.iterdir()):
                with contextlib.suppress(OSError):
                    self.out_dir.rmdir()  # interrupted before any artifact: leave nothing behind

    def partial(self) -> ExportManifest:
        return ExportManifest(schema_version=SCHEMA_VERSION, source=str(self.plan.source),
                              settings=self.settings.to_dict(), sources_sha256=self.sources_sha256,
                              models=self.model_facts, artifacts=self.artifacts)

    def record(self, artifact: Artifact) -> None:
        self.artifacts.append(artifact)
        self.partial().save(self.plan.partial_manifest)  # what --resume keeps if the run stops here

    def steps(self) -> list[tuple[str, str, Any]]:
        """(variant name suffix, precision, target) of each model's artifacts, in the order they are
        made; a target without an INT8 quantizer makes only the float model (``skipped`` says so)."""
        return [(suffix, precision, target) for suffix, precision in self.settings.variant_suffixes()
                for target in self.targets if precision != "int8" or target.int8_unavailable is None]

    def export_model(self, m: ModelSource, model) -> None:
        planned = [(m.name + suffix, precision, target) for suffix, precision, target in self.steps()]
        kept = {(v, t.name): self.kept.artifacts[v, t.name] for v, _, t in planned if (v, t.name) in self.kept.artifacts}
        if len(kept) == len(planned):  # nothing left to do for this model
            self.model_facts[m.name] = self.kept.facts[m.name]
            for variant, _, target in planned:
                self.record(kept[variant, target.name])
            self._advance(len(planned))
            return
        settings = self.settings
        reference = keras_reference(model, self.dataset, limit=settings.verify_limit, batch=settings.verify_batch)
        # The facts go in first: the partial record must never hold an artifact without its model's facts.
        self.model_facts[m.name] = facts = model_facts(m, model, reference, self.sources_sha256[m.name])
        base = Artifact(model=m.name, source=m.label, precision=settings.float_precision, input_name=INPUT_NAME,
                        input_dtype=model_input_dtype(model), input_range=integer_input_range(model),
                        output_name=OUTPUT_NAME, input_shape=[settings.static_batch, *model.input_shape[1:]],
                        batch=settings.batch, params=facts.params, nonzero_params=facts.nonzero_params,
                        flops=facts.flops, widths=facts.widths)
        onnx = self._onnx_source(m, model) if any(target.from_onnx for _, _, target in planned) else None
        calibration = self._calibration(model) if settings.int8 else None
        for variant, precision, target in planned:
            if self.progress is not None:
                self.progress.update(self._task, info=f"{variant} → {target.name}")
            if (variant, target.name) in kept:
                self.record(kept[variant, target.name])
            else:
                artifact = base.replace(model=variant, precision=precision, target=target.name,
                                        extra={"variant_of": m.name} if precision == "int8" else {})
                self.record(self._export_target(target, artifact, onnx, model, reference, calibration))
            self._advance()
        if onnx is not None:
            onnx.path.unlink(missing_ok=True)

    def _calibration(self, model):
        """The INT8 calibration images (once per model: each model's own input dtype)."""
        calibration, notice = calibration_images(self.dataset, model, self.settings)
        if notice and notice not in self.notices:
            self.notices.append(notice)
            if self.on_notice is not None:
                self.on_notice(notice)
        return calibration

    def _onnx_source(self, m: ModelSource, model) -> OnnxSource:
        started = time.perf_counter()
        path = self.staging / f"{m.name}.source.onnx"
        error = None
        try:
            keras_to_onnx(model, path, opset=self.settings.opset, static_batch=self.settings.static_batch)
        except SlimdeployError as exc:
            error = str(exc)
        return OnnxSource(path, error, time.perf_counter() - started)

    def _export_target(self, target, artifact: Artifact, onnx: OnnxSource | None, model, reference,
                       calibration) -> Artifact:
        """Convert (from ``onnx`` for a target ``from_onnx``, else from the Keras ``model``) or quantize, verify,
        then move the files to their final names (or NAME.failed)."""
        if target.from_onnx and onnx.error:  # never made
            artifact = artifact.replace(files=[], valid=False, error=onnx.error, seconds=0.0)
        else:
            started = time.perf_counter()
            artifact, exported = self._convert_and_verify(target, artifact, onnx.path if target.from_onnx else None,
                                                          reference, started, calibration, model)
            staged = [p for p in (exported.files if exported else []) if p.is_file()]
            artifact = with_facts(artifact.replace(seconds=round(time.perf_counter() - started, 3)), file_facts(staged))
            artifact = self._place(target, artifact, staged)
            if target.includes_onnx_conversion:
                artifact = artifact.replace(seconds=round(artifact.seconds + onnx.seconds, 3))
        return with_facts(artifact, {"onnx_conversion_seconds": round(onnx.seconds, 3)}) if target.from_onnx else artifact

    def _convert_and_verify(self, target, artifact: Artifact, onnx_source: Path | None, reference, started: float,
                            calibration, model) -> tuple[Artifact, Any]:
        """``calibration``: make the INT8 variant (judged by the task's ``Tolerance.int8``), else the float one."""
        settings, name = self.settings, artifact.model
        artifact = artifact.replace(runtime=target.runtime, versions=target.versions())
        calibration = calibration if artifact.precision == "int8" else None
        exported = None
        try:
            if calibration is not None:
                exported = target.quantize(onnx_source, self.staging, name, settings, calibration)
            elif target.from_onnx:
                exported = target.export(onnx_source, self.staging, name, settings)
            else:
                exported = target.export_keras(model, self.staging, name, settings)
            artifact = with_facts(artifact.replace(converter=exported.converter), exported.details)
            convert_done = time.perf_counter()
            runner = target.open(exported.files[0], settings, input_dims=reference.x.shape[1:])
            try:
                tolerance = Tolerance.int8(reference.task) if calibration is not None else target.tolerance(settings, runner.inference_precision)
                artifact = artifact.replace(inference_precision=runner.inference_precision)
                artifact = with_facts(artifact, verify(runner, reference, tolerance, settings.verify_batch))
            finally:
                runner.close()
            artifact = with_facts(artifact, {"convert_seconds": round(convert_done - started, 3),
                                             "verify_seconds": round(time.perf_counter() - convert_done, 3)})
        except Exception as exc:  # a converter or runtime crash fails this artifact, not the others
            interrupts.reraise_if_interrupted(exc)
            message = str(exc) if isinstance(exc, SlimdeployError) else f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            artifact = artifact.replace(valid=False, error=message)
        return artifact, exported

    def _place(self, target, artifact: Artifact, staged: list[Path]) -> Artifact:
        """Move the staged files to their final names (a failed artifact's to NAME.failed)."""
        finals = target.files(self.out_dir, artifact.model)
        if artifact.valid:
            for path in finals:  # what an earlier failed export (--force) left for inspection
                path.with_name(path.name + FAILED_SUFFIX).unlink(missing_ok=True)
            _promote(staged, [self.out_dir / p.name for p in staged])
            return artifact.replace(path=finals[0].name, files=[p.name for p in finals])
        # A replaced (--force) artifact must not survive under its final name beside a failure.
        for path in finals:
            path.unlink(missing_ok=True)
        kept = [self.out_dir / f"{p.name}{FAILED_SUFFIX}" for p in staged]
        _promote(staged, kept)
        return artifact.replace(path=kept[0].name if kept else None, files=[p.name for p in kept], valid=False)

    def _advance(self, steps: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self._task, steps)


def with_facts(artifact: Artifact, facts: dict) -> Artifact:
    """``artifact`` with ``facts``: its documented fields set, any other (target-specific) key added to ``extra``."""
    return artifact.replace(**{k: v for k, v in facts.items() if k in FIELDS},
                            extra={**artifact.extra, **{k: v for k, v in facts.items() if k not in FIELDS}})


def model_facts(m: ModelSource, model, reference, source_sha256: str) -> ModelFacts:
    return ModelFacts(source=m.label, source_sha256=source_sha256, params=count_params(model),
                      nonzero_params=count_nonzero_params(model), flops=count_flops(model),
                      nonzero_flops=count_flops(model, nonzero_only=True), widths=dense_widths(model),
                      keras_test_accuracy=reference.keras_test_accuracy)


def _promote(staged: list[Path], finals: list[Path]) -> None:
    # Primary file (.xml) last: it never appears without the files it refers to (.bin).
    for src, dst in reversed(list(zip(staged, finals))):
        os.replace(src, dst)


def file_facts(files: list[Path]) -> dict:
    """bytes and gzip bytes summed over an artifact's files; sha256 of the primary file, and of each file."""
    total = zipped = 0
    hashes = {}
    for path in files:
        data = path.read_bytes()
        total += len(data)
        zipped += len(gzip.compress(data, compresslevel=9, mtime=0))
        hashes[path.name] = hashlib.sha256(data).hexdigest()
    return {"bytes": total, "gzip_bytes": zipped, "sha256": next(iter(hashes.values()), None), "file_sha256": hashes}
