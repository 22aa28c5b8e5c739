"""One export run's work once its inputs are checked: every model to every target.

``ExportJob`` holds what travels together (settings, plan, targets, verification data, the
staging directory, progress) and what is done so far (model facts and artifacts, written to
``export.partial.json`` after each artifact). ``export.api.export_source`` checks the inputs,
runs a job and writes ``export.json`` from it.
"""

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
from slimdeploy.records.export import SCHEMA_VERSION, Artifact, ExportManifest, ModelFacts

FAILED_SUFFIX = ".failed"


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

    # --- the whole job -------------------------------------------------------------------
    def run(self, models: dict, created_out_dir: bool) -> None:
        """Every model (name -> loaded Keras model) to every target, in a staging directory
        inside the output directory (removed at the end)."""
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
        """What is done so far, as ``export.partial.json`` records it."""
        return ExportManifest(schema_version=SCHEMA_VERSION, source=str(self.plan.source),
                              settings=self.settings.to_dict(), sources_sha256=self.sources_sha256,
                              models=self.model_facts, artifacts=self.artifacts)

    def record(self, artifact: Artifact) -> None:
        self.artifacts.append(artifact)
        self.partial().save(self.plan.partial_manifest)  # what --resume keeps if the run stops here

    # --- one model -----------------------------------------------------------------------
    def steps(self) -> list[tuple[str, str, Any]]:
        """(variant name suffix, precision, target) of each model's artifacts, in the order they are
        made; a target without an INT8 quantizer makes only the float model (export.json's
        ``skipped`` says so)."""
        return [(suffix, precision, target) for suffix, precision in self.settings.variant_suffixes()
                for target in self.targets if precision != "int8" or target.int8_unavailable is None]

    def export_model(self, m: ModelSource, model) -> None:
        """All variants of one model to all targets, each recorded as it finishes."""
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
        base = self._artifact_base(m, model, facts)
        # The fp32 ONNX file, for the targets made from it (not made when none is).
        onnx = self._onnx_source(m, model) if any(target.from_onnx for _, _, target in planned) else None
        calibration = self._calibration(model) if settings.int8 else None
        for variant, precision, target in planned:
            if self.progress is not None:
                self.progress.update(self._task, info=f"{variant} → {target.name}")
            if (variant, target.name) in kept:
                self.record(kept[variant, target.name])
            else:
                entry = {**base, "model": variant, "precision": precision}
                if precision == "int8":
                    entry["variant_of"] = m.name
                self.record(self._export_target(target, entry, onnx, model, reference, calibration))
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

    def _artifact_base(self, m: ModelSource, model, facts: ModelFacts) -> dict:
        """The facts every target's artifact of this model shares."""
        return {
            "model": m.name, "source": m.label, "precision": self.settings.float_precision,
            "input_name": INPUT_NAME, "input_dtype": model_input_dtype(model), "input_range": integer_input_range(model),
            "output_name": OUTPUT_NAME,
            "input_shape": [self.settings.static_batch, *model.input_shape[1:]], "batch": self.settings.batch,
            "params": facts.params, "nonzero_params": facts.nonzero_params, "flops": facts.flops, "widths": facts.widths,
        }

    def _onnx_source(self, m: ModelSource, model) -> OnnxSource:
        """One fp32 ONNX file per model is the input of every target."""
        started = time.perf_counter()
        path = self.staging / f"{m.name}.source.onnx"
        error = None
        try:
            keras_to_onnx(model, path, opset=self.settings.opset, static_batch=self.settings.static_batch)
        except SlimdeployError as exc:
            error = str(exc)
        return OnnxSource(path, error, time.perf_counter() - started)

    def _export_target(self, target, entry: dict, onnx: OnnxSource | None, model, reference, calibration) -> Artifact:
        """``onnx``: the fp32 ONNX file a target ``from_onnx`` is made from; ``model``: the Keras
        model, which the other targets convert themselves."""
        entry = {**entry, "target": target.name}
        if target.from_onnx and onnx.error:
            entry.update(failed_facts(onnx.error))
        else:
            entry.update(self._export_one(target, entry, onnx.path if target.from_onnx else None, model, reference,
                                          calibration))
            if target.name == "onnx":
                entry["seconds"] = round(entry["seconds"] + onnx.seconds, 3)
        if target.from_onnx:
            entry["onnx_conversion_seconds"] = round(onnx.seconds, 3)
        # The documented fields first, in their fixed order; target-specific facts after them.
        return Artifact.from_json(entry)

    # --- one artifact ----------------------------------------------------------------------
    def _export_one(self, target, entry: dict, onnx_source: Path | None, model, reference, calibration) -> dict:
        """Convert (or quantize), verify, then move the files to their final names (or NAME.failed)."""
        started = time.perf_counter()
        model_name = entry["model"]
        int8 = entry["precision"] == "int8"
        facts, exported = self._convert_and_verify(target, model_name, onnx_source, reference, started,
                                                   calibration if int8 else None, model=model)
        facts.setdefault("inference_precision", None)
        facts["seconds"] = round(time.perf_counter() - started, 3)
        staged = [p for p in (exported.files if exported else []) if p.is_file()]
        facts.update(file_facts(staged))
        facts.update(self._place(target, model_name, staged, bool(facts.get("valid"))))
        return facts

    def _convert_and_verify(self, target, model_name: str, onnx_source: Path | None, reference, started: float,
                            calibration=None, model=None) -> tuple[dict, Any]:
        """``calibration``: make the INT8 variant (judged by the task's ``Tolerance.int8``), else the float
        one: from ``onnx_source`` (a target ``from_onnx``) or from the Keras ``model``."""
        settings = self.settings
        facts: dict = {"converter": None, "runtime": target.runtime, "versions": target.versions()}
        exported = None
        try:
            if calibration is not None:
                exported = target.quantize(onnx_source, self.staging, model_name, settings, calibration)
            elif target.from_onnx:
                exported = target.export(onnx_source, self.staging, model_name, settings)
            else:
                exported = target.export_keras(model, self.staging, model_name, settings)
            facts["converter"] = exported.converter
            facts.update(exported.details)
            convert_done = time.perf_counter()
            runner = target.open(exported.files[0], settings, input_dims=reference.x.shape[1:])
            try:
                tolerance = Tolerance.int8(reference.task) if calibration is not None else target.tolerance(settings, runner.inference_precision)
                facts["inference_precision"] = runner.inference_precision
                facts.update(verify(runner, reference, tolerance, settings.verify_batch))
            finally:
                runner.close()
            facts["convert_seconds"] = round(convert_done - started, 3)
            facts["verify_seconds"] = round(time.perf_counter() - convert_done, 3)
        except Exception as exc:  # a converter or runtime crash fails this artifact, not the others
            interrupts.reraise_if_interrupted(exc)
            message = str(exc) if isinstance(exc, SlimdeployError) else f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            facts.update({"valid": False, "error": message})
        return facts, exported

    def _place(self, target, model_name: str, staged: list[Path], valid: bool) -> dict:
        """Move the staged files to their final names (a failed artifact's to NAME.failed);
        return the artifact's ``path``, ``files`` and ``valid``."""
        finals = target.files(self.out_dir, model_name)
        if valid:
            for path in finals:  # what an earlier failed export (--force) left for inspection
                path.with_name(path.name + FAILED_SUFFIX).unlink(missing_ok=True)
            _promote(staged, [self.out_dir / p.name for p in staged])
            return {"path": finals[0].name, "files": [p.name for p in finals]}
        # A replaced (--force) artifact must not survive under its final name beside a failure.
        for path in finals:
            path.unlink(missing_ok=True)
        kept = [self.out_dir / f"{p.name}{FAILED_SUFFIX}" for p in staged]
        _promote(staged, kept)
        return {"path": kept[0].name if kept else None, "files": [p.name for p in kept], "valid": False}

    def _advance(self, steps: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self._task, steps)


def model_facts(m: ModelSource, model, reference, source_sha256: str) -> ModelFacts:
    return ModelFacts(
        source=m.label, source_sha256=source_sha256, params=count_params(model),
        nonzero_params=count_nonzero_params(model),
        flops=count_flops(model), nonzero_flops=count_flops(model, nonzero_only=True),
        widths=dense_widths(model), keras_test_accuracy=reference.keras_test_accuracy,
    )


def failed_facts(error: str) -> dict:
    """An artifact that was never made (its model's ONNX conversion failed)."""
    return {"path": None, "files": [], "valid": False, "error": error, "seconds": 0.0,
            "max_abs_diff": None, "mean_abs_diff": None, "top1_agreement": None, "test_accuracy": None}


def _promote(staged: list[Path], finals: list[Path]) -> None:
    # Primary file (.xml) last: it never appears without the files it refers to (.bin).
    for src, dst in reversed(list(zip(staged, finals))):
        os.replace(src, dst)


def file_facts(files: list[Path]) -> dict:
    """Sizes and hashes: bytes and gzip bytes summed over an artifact's files; sha256 of the
    primary file, and of each file in ``file_sha256``."""
    total = zipped = 0
    hashes = {}
    for path in files:
        data = path.read_bytes()
        total += len(data)
        zipped += len(gzip.compress(data, compresslevel=9, mtime=0))
        hashes[path.name] = hashlib.sha256(data).hexdigest()
    return {"bytes": total, "gzip_bytes": zipped, "sha256": next(iter(hashes.values()), None), "file_sha256": hashes}
