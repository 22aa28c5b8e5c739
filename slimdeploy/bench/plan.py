"""The plan of a bench: the cells of every model, runtime, batch and threads, in groups measured
interleaved (baseline first), one job per worker process for each (runtime, threads) (TensorFlow's
thread count is fixed per process). ``CellSpec``, ``GroupSpec`` and ``JobSpec``: ``bench.worker``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from slimdeploy.bench.cellkey import CellKey
from slimdeploy.bench.harness import MeasureParams
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.bench.sources import Sources, check_fit, expected_input_shape
from slimdeploy.bench.worker import CellSpec, GroupSpec, JobSpec
from slimdeploy.errors import UserError
from slimdeploy.records.bench import BenchModel
from slimdeploy.runtimes.registry import RUNTIMES, accepts_reshape, pick_artifact, runtime_options


def cell_id(model: str, runtime: str, batch: int, threads: int, mode: str, settings: dict) -> str:
    """'dense|onnxruntime|b64|t1|latency|opt=all' (see ``CellKey.id``)."""
    return CellKey.from_parts(model, runtime, batch, threads, mode, settings).id


@dataclass
class Plan:
    jobs: list  # JobSpec for available runtimes
    unavailable: list  # CellSpec of runtimes that cannot run here
    input_dims: tuple | None

    @property
    def cells(self) -> list:
        runnable = [c for job in self.jobs for g in job.groups for c in g.cells]
        return runnable + list(self.unavailable)


def shown_path(path: Path, run_dir: Path | None) -> str:
    if run_dir is not None:
        try:
            return os.path.relpath(path, run_dir)
        except ValueError:  # another drive (Windows)
            pass
    return str(path)


def _profile_request(settings: BenchSettings, facts: BenchModel) -> str | None:
    if settings.profile:
        return "layers"
    return "kernels" if facts.precision == "int8" else None


def make_plan(sources: Sources, settings: BenchSettings, availability: dict) -> Plan:
    names = sorted(sources.models, key=lambda n: (n != settings.baseline_model, n))
    if len(names) > 1 and settings.baseline_model not in sources.models:
        raise UserError(f"--baseline-model: no model named {settings.baseline_model!r} in the sources "
                        f"(found: {', '.join(names)})")
    expected, origin = expected_input_shape(sources, settings.input_shape, settings.baseline_model)
    # --input-range for every model, else what each model says its integer inputs index.
    input_ranges = {name: list(settings.input_range) if settings.input_range else model.info.get("input_range")
                    for name, model in sources.models.items()}
    job_fields = dict(measure=MeasureParams.from_settings(settings), seed=settings.seed, input_ranges=input_ranges,
                      input_range_from="--input-range" if settings.input_range else "model",
                      crosscheck=settings.crosscheck, crosscheck_time=settings.crosscheck_time,
                      input_dims=list(expected) if expected else None)
    jobs: list[JobSpec] = []
    unavailable: list[CellSpec] = []
    for runtime in settings.runtimes:
        options = runtime_options(runtime, settings)
        chosen = {}
        for name in names:
            model = sources.models[name]
            if model.runtimes is not None and runtime not in model.runtimes:
                continue
            artifact = pick_artifact(runtime, model.artifacts.values())
            if artifact is None:
                continue
            check_fit(model.inspected[artifact.suffix], expected, origin, settings.batches,
                      allow_reshape=accepts_reshape(runtime))
            chosen[name] = artifact
        if not chosen:
            continue
        for threads in settings.threads:
            groups = []
            for batch in settings.batches:
                cells = [CellSpec(id=cell_id(name, runtime, batch, threads, settings.mode, options), model=name,
                                  runtime=runtime, batch=batch, threads=threads, mode=settings.mode, settings=options,
                                  artifact=str(artifact), artifact_shown=shown_path(artifact, sources.run_dir),
                                  session_options=dict(sources.models[name].session_options),
                                  profile=_profile_request(settings, sources.models[name].facts))
                         for name, artifact in chosen.items()]
                groups.append(GroupSpec(batch=batch, cells=cells))
            if runtime in availability and availability[runtime].available:
                jobs.append(JobSpec(runtime=runtime, threads=threads, mode=settings.mode, settings=options, groups=groups,
                                    **job_fields))
            else:
                unavailable += [c for g in groups for c in g.cells]
    if not jobs and not unavailable:
        wanted = ", ".join(settings.runtimes)
        raise UserError(f"nothing to benchmark: no artifact in the sources runs on {wanted} "
                        f"(runtimes read: " + "; ".join(f"{r} {'/'.join(RUNTIMES[r].suffixes)}" for r in settings.runtimes) + ")")
    return Plan(jobs=jobs, unavailable=unavailable, input_dims=expected)
