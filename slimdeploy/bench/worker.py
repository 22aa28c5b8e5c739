"""One runtime's worker process (thread pools do not compete, a crash is confined): ``python -m
slimdeploy.bench.worker`` reads a ``JobSpec`` (JSON) on stdin and writes JSON lines (events) on stdout:
ready, group_start, model_loading, model_info, measuring, cell (a ``CellReport``), done, fatal.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from slimdeploy import interrupts
from slimdeploy.bench.crosscheck import crosscheck_session
from slimdeploy.bench.harness import MeasureParams, measure_alone, measure_interleaved, warm_up
from slimdeploy.onnxsafety import CHECKED_OPTION
from slimdeploy.quiet import quiet_environment
from slimdeploy.records.base import ABSENT, Record
from slimdeploy.records.bench import Crosscheck, InputInfo, Kernel, Profile
from slimdeploy.runtimes.registry import can_crosscheck, open_session, plugin
from slimdeploy.runtimes.session import INPUT_DIMS


@dataclass(frozen=True, kw_only=True)
class CellSpec(Record):
    """A cell to measure: (model, runtime, batch, threads, mode, settings) and the file that model runs."""

    id: str
    model: str
    runtime: str
    batch: int
    threads: int
    mode: str
    settings: dict
    artifact: str
    artifact_shown: str  # as bench.json names it
    # This model's own session options on top of the group's (not part of the cell id), e.g. a sparse int8 rate.
    session_options: dict = field(default_factory=dict)
    # What to ask the runtime after measuring, from a profiled copy: "layers" (--profile: the time per
    # node and the kernels), "kernels" (int8 models: which kernel each weight layer ran), or None.
    profile: str | None = None


@dataclass(frozen=True, kw_only=True)
class GroupSpec(Record):
    """The cells of all models at one batch (and its job's runtime, threads, mode, settings): measured interleaved."""

    batch: int
    cells: list[CellSpec] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class JobSpec(Record):
    """One worker's job (sent as JSON on its stdin): its groups, and what every group is measured with."""

    runtime: str
    threads: int
    mode: str
    settings: dict  # the runtime's cell settings
    measure: MeasureParams
    groups: list[GroupSpec] = field(default_factory=list)
    seed: int = 0
    input_ranges: dict = field(default_factory=dict)  # model -> [low, high) or None
    input_range_from: str = "model"
    crosscheck: bool = False
    crosscheck_time: float = 1.0
    input_dims: list | None = None  # how to run an artifact with dynamic dims; not a cell setting


@dataclass(frozen=True, kw_only=True)
class CellReport(Record):
    """What a worker measured of one cell; ``results.finish_cell`` makes its bench.json cell."""

    id: str = ""
    status: str = "error"
    error: str | None = None
    load_seconds: float = ABSENT
    input: InputInfo = ABSENT
    first_inference_seconds: float = ABSENT
    output_shape: list | None = ABSENT
    applied_settings: dict = ABSENT
    instances: int = ABSENT
    load_rss_growth_mb: float = ABSENT
    kernels: list[Kernel] = ABSENT
    profile: Profile = ABSENT
    profile_error: str = ABSENT
    crosscheck: Crosscheck | None = ABSENT
    samples_ms: list | None = ABSENT
    engine_samples_ms: list | None = ABSENT
    iterations: int = ABSENT
    blocks: list | None = ABSENT
    seconds: float = ABSENT
    group_wall_seconds: float = ABSENT
    parallelism: int = ABSENT
    peak_rss_mb: float = ABSENT
    processes: list = ABSENT  # blocks per worker process (``results.merge_records``)


# The inputs fed: the model's own dtype, floats uniform in [0, 1) (timing does not depend on their values),
# integer token ids below the size of the embedding table they index (or the runtime fails or reads one
# row only): ``--input-range``, else the model's (``bench.artifacts``), else ``DEFAULT_INTEGER_RANGE``.
FLOAT_RANGE = (0.0, 1.0)
DEFAULT_INTEGER_RANGE = (0, 128)


def group_range(ranges: list) -> tuple | None:
    """The range every model of a group can take: the intersection of the known ones."""
    known = [r for r in ranges if r is not None]
    return (max(r[0] for r in known), min(r[1] for r in known)) if known else None


def make_input(rng: np.random.Generator, shape: tuple, dtype, value_range: tuple | None,
               range_from: str = "model") -> tuple[np.ndarray, InputInfo]:
    """An array of ``shape`` and ``dtype``, values in [low, high), and how it was drawn (recorded in each cell)."""
    dtype = np.dtype(dtype)
    if value_range is None:
        range_from = "default"
    if np.issubdtype(dtype, np.integer):
        low, high = value_range or DEFAULT_INTEGER_RANGE
        low, high = int(np.ceil(low)), int(np.ceil(high))
        array = rng.integers(low, max(high, low + 1), size=shape, dtype=dtype)
    else:
        low, high = value_range or FLOAT_RANGE
        low, high = float(low), float(high)
        array = (low + (high - low) * rng.random(shape, dtype=np.float64)).astype(dtype)
    return array, InputInfo(dtype=dtype.name, low=low, high=high, range_from=range_from)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}" if text else type(exc).__name__


def run_job(job: JobSpec, emit) -> None:
    options = {**job.settings, INPUT_DIMS: job.input_dims} if job.input_dims else job.settings
    params = job.measure
    described = set()
    for index, group in enumerate(job.groups):
        emit("group_start", group=index, batch=group.batch)
        rng = np.random.default_rng(job.seed + group.batch)
        value_range = group_range([job.input_ranges.get(cell.model) for cell in group.cells])
        data = drawn = None
        sessions, reports = {}, {}
        for cell in group.cells:
            emit("model_loading", group=index, id=cell.id, model=cell.model)
            report = CellReport(id=cell.id, status="ok")
            # The parent checked every artifact in full (bench.artifacts): the timed load is the runtime's alone.
            cell_options = {**options, **cell.session_options, CHECKED_OPTION: True}
            try:
                peak_before = peak_rss_mb()
                start = time.perf_counter()
                session = open_session(job.runtime, cell.artifact, group.batch, job.threads, cell_options, job.mode)
                report = report.replace(load_seconds=time.perf_counter() - start)
                shape, dtype = tuple(session.input_shape()), session.input_dtype()
                if data is None or data.shape != shape or data.dtype != dtype:
                    # The same input for every model of the group, in the range all of them take.
                    data, drawn = make_input(rng, shape, dtype, value_range, job.input_range_from)
                report = report.replace(input=drawn)
                session.set_input(data)
                start = time.perf_counter()
                output = np.asarray(session.run_parallel() if job.mode == "throughput" else session.run())
                report = report.replace(first_inference_seconds=time.perf_counter() - start,
                                        output_shape=list(output.shape) if output.ndim else None)
                report = report.replace(applied_settings=session.applied_settings())
                if cell.model not in described and (info := session.describe_model()) is not None:
                    emit("model_info", model=cell.model, info=info)
                    described.add(cell.model)
                pool = [session]
                for _ in range(params.instances - 1):  # rotated per round (see harness)
                    extra = open_session(job.runtime, cell.artifact, group.batch, job.threads, cell_options, job.mode)
                    extra.set_input(data)
                    pool.append(extra)
                report = report.replace(instances=len(pool))
                # The earlier models stay loaded, so the new peak is roughly this model's footprint.
                peak_after = peak_rss_mb()
                if peak_before is not None and peak_after is not None:  # None: no memory source (Windows)
                    report = report.replace(load_rss_growth_mb=round(peak_after - peak_before, 3))
                sessions[cell.model] = pool
            except Exception as exc:  # a model that cannot load is an error cell, not a lost group
                interrupts.reraise_if_interrupted(exc)
                failed = report.replace(status="error", error=f"could not load or run: {_one_line(exc)}")
                emit("cell", group=index, cell=failed.to_json())
                continue
            reports[cell.model] = report
        try:
            emit("measuring", group=index, models=list(sessions))
            for session in (s for pool in sessions.values() for s in pool):
                warm_up(session, params)
            wall = time.perf_counter()
            measured = measure_interleaved(sessions, params)
            wall = time.perf_counter() - wall
        except Exception as exc:
            interrupts.reraise_if_interrupted(exc)
            for report in reports.values():
                failed = report.replace(status="error", error=f"failed while measuring: {_one_line(exc)}")
                emit("cell", group=index, cell=failed.to_json())
            measured = None
        if measured is not None:
            peak = peak_rss_mb()  # before the profiled copies open: the peak of loading and measuring this group
            for cell in (c for c in group.cells if c.model in reports):
                report, result = reports[cell.model], measured[cell.model]
                if cell.profile:  # after measuring, so the measured sessions stay unprofiled
                    report = _add_profile(report, plugin(job.runtime), sessions[cell.model][0],
                                          layers=cell.profile == "layers")
                if job.crosscheck and can_crosscheck(job.runtime):
                    report = report.replace(crosscheck=_crosscheck(sessions[cell.model], cell.artifact, job, options,
                                                                   result.engine_ms))
                report = report.replace(
                    samples_ms=[round(ns / 1e6, 6) for ns in result.samples_ns],
                    engine_samples_ms=[round(ms, 6) for ms in result.engine_ms] or None,
                    iterations=len(result.samples_ns), blocks=result.blocks, seconds=result.timed_ns / 1e9,
                    group_wall_seconds=wall, parallelism=result.parallelism,
                    peak_rss_mb=round(peak, 3) if peak is not None else ABSENT)  # a number or no field at all
                emit("cell", group=index, cell=report.to_json())
        for session in (s for pool in sessions.values() for s in pool):
            session.close()


def _crosscheck(pool: list, artifact: str, job: JobSpec, options: dict, engine_ms: list) -> Crosscheck:
    try:
        cross = crosscheck_session(pool, artifact, job.threads, options.get("precision", "f32"),
                                   float(job.crosscheck_time), measure_alone)
    except Exception as exc:  # the cell's own numbers still stand
        interrupts.reraise_if_interrupted(exc)
        return Crosscheck(tool="benchmark_app", status="error", error=_one_line(exc))
    if cross.median_ms and engine_ms:  # the cell's own (interleaved) engine median against benchmark_app too
        engine = float(np.median(engine_ms))
        cross = cross.replace(cell_engine_median_ms=engine, cell_ratio=engine / cross.median_ms)
    return cross


def _add_profile(report: CellReport, runtime_plugin, session, layers: bool) -> CellReport:
    """The runtime's per-layer profile (``kernels``; with ``layers`` the time split, ``profile``),
    from its own profiled pass: never part of the cell's samples. A failed or missing profile is
    noted; the cell's numbers still stand."""
    try:
        found = CellReport.from_json(runtime_plugin.profile(session, layers=layers) or {})
    except Exception as exc:
        interrupts.reraise_if_interrupted(exc)
        return report.replace(profile_error=_one_line(exc))
    report = report.replace(kernels=found.kernels, profile=found.profile, profile_error=found.profile_error)
    if layers and found.profile is ABSENT:
        report = report.replace(profile_error=runtime_plugin.profile_unsupported)  # the runtime's own reason
    return report


_highest_peak_mb: float | None = None


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far, in MB (10^6 bytes): the highest reading yet, as
    Linux updates VmHWM lazily and it can read lower after memory is handed back (madvise)."""
    global _highest_peak_mb
    reading = _read_peak_rss_mb()
    if reading is not None:
        _highest_peak_mb = reading if _highest_peak_mb is None else max(_highest_peak_mb, reading)
    return _highest_peak_mb


def _read_peak_rss_mb() -> float | None:
    """Linux: ``/proc/self/status`` VmHWM (``ru_maxrss`` survives exec there, so it would report the
    parent's peak); elsewhere ``ru_maxrss`` (bytes on macOS, KiB otherwise); None on Windows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def main() -> int:
    quiet_environment()
    # Events go to a private copy of stdout; whatever the libraries print goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event: str, **fields) -> None:
        protocol.write(json.dumps({"event": event, **fields}) + "\n")
        protocol.flush()

    # Ctrl-C reaches the whole process group: this worker stops too, without recording error cells.
    interrupts.install((signal.SIGINT,))
    emit("ready", pid=os.getpid())
    try:
        run_job(JobSpec.from_json(json.loads(sys.stdin.read())), emit)
    except KeyboardInterrupt:
        return 130  # the parent, interrupted too, says so
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        emit("fatal", error=_one_line(exc))
        return 1
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
