"""Cells, the groups a worker measures together (interleaved), and one job per worker.

A cell is (model, runtime, batch, threads, mode, settings). The cells of all models at
one (runtime, batch, threads, mode, settings) form a group: measured in one worker, in
interleaved blocks, baseline first. Each (runtime, threads) gets its own worker process
(TensorFlow's thread count is fixed per process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from slimdeploy.bench.cellkey import CellKey
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.bench.sources import Sources, check_fit, expected_input_shape
from slimdeploy.bench.worker import CellJob, GroupJob
from slimdeploy.errors import UserError
from slimdeploy.runtimes.registry import RUNTIMES, accepts_reshape, pick_artifact, runtime_options


def cell_id(model: str, runtime: str, batch: int, threads: int, mode: str, settings: dict) -> str:
    """'dense|onnxruntime|b64|t1|latency|opt=all' (see ``CellKey.id``)."""
    return CellKey.from_parts(model, runtime, batch, threads, mode, settings).id


@dataclass
class CellSpec:
    id: str
    model: str
    runtime: str
    batch: int
    threads: int
    mode: str
    settings: dict
    artifact: Path
    artifact_shown: str
    # This model's own session options on top of the group's (not part of the cell id: the
    # model name tells the cells apart), e.g. OpenVINO's sparse int8 weights rate.
    session_options: dict = field(default_factory=dict)
    # What to ask the runtime after measuring, from a profiled copy: "layers" (--profile: the
    # time per node and the kernels), "kernels" (which kernel each weight layer ran: int8
    # models), or None.
    profile: str | None = None

    def to_job(self) -> CellJob:
        return CellJob(id=self.id, model=self.model, artifact=str(self.artifact),
                       session_options=dict(self.session_options), profile=self.profile)


@dataclass
class GroupSpec:
    runtime: str
    batch: int
    threads: int
    mode: str
    settings: dict
    cells: list = field(default_factory=list)

    def to_job(self) -> GroupJob:
        return GroupJob(batch=self.batch, cells=[c.to_job() for c in self.cells])


@dataclass
class JobSpec:
    runtime: str
    threads: int
    mode: str
    settings: dict
    groups: list = field(default_factory=list)


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


def _profile_request(settings: BenchSettings, info: dict) -> str | None:
    if settings.profile:
        return "layers"
    return "kernels" if info.get("precision") == "int8" else None


def make_plan(sources: Sources, settings: BenchSettings, availability: dict) -> Plan:
    names = sorted(sources.models, key=lambda n: (n != settings.baseline_model, n))
    if len(names) > 1 and settings.baseline_model not in sources.models:
        raise UserError(f"--baseline-model: no model named {settings.baseline_model!r} in the sources "
                        f"(found: {', '.join(names)})")
    expected, origin = expected_input_shape(sources, settings.input_shape, settings.baseline_model)
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
            job = JobSpec(runtime, threads, settings.mode, options)
            for batch in settings.batches:
                group = GroupSpec(runtime, batch, threads, settings.mode, options)
                for name, artifact in chosen.items():
                    model = sources.models[name]
                    key = CellKey.from_parts(name, runtime, batch, threads, settings.mode, options)
                    group.cells.append(CellSpec(key.id, name, runtime, batch, threads, settings.mode, options,
                                                artifact, shown_path(artifact, sources.run_dir),
                                                session_options=dict(model.session_options),
                                                profile=_profile_request(settings, model.info)))
                job.groups.append(group)
            if runtime in availability and availability[runtime].available:
                jobs.append(job)
            else:
                unavailable += [c for g in job.groups for c in g.cells]
    if not jobs and not unavailable:
        wanted = ", ".join(settings.runtimes)
        raise UserError(f"nothing to benchmark: no artifact in the sources runs on {wanted} "
                        f"(runtimes read: " + "; ".join(f"{r} {'/'.join(RUNTIMES[r].suffixes)}" for r in settings.runtimes) + ")")
    return Plan(jobs=jobs, unavailable=unavailable, input_dims=expected)
