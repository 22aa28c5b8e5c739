"""One runtime's worker process: ``python -m slimdeploy.bench.worker`` reads a JSON job on
stdin and writes JSON lines (events) on stdout.

Running each runtime in its own process keeps thread pools from competing and confines a
crash: the parent records the cells this worker did not finish as errors and goes on.
Library chatter is moved to stderr so stdout carries only events.

Events: ready, group_start, model_loading, model_info, measuring, cell, done, fatal.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback

import numpy as np

from slimdeploy import interrupts
from slimdeploy.bench.crosscheck import crosscheck_session
from slimdeploy.bench.harness import MeasureParams, measure_alone, measure_interleaved, warm_up
from slimdeploy.bench.inputs import group_range, make_input
from slimdeploy.onnxsafety import CHECKED_OPTION
from slimdeploy.quiet import quiet_environment
from slimdeploy.runtimes.registry import can_crosscheck, open_session, plugin
from slimdeploy.runtimes.session import INPUT_DIMS


class Emitter:
    def __init__(self, stream):
        self.stream = stream

    def __call__(self, event: str, **fields) -> None:
        self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}" if text else type(exc).__name__


def run_job(job: dict, emit) -> None:
    runtime, threads, mode = job["runtime"], int(job["threads"]), job["mode"]
    options = job.get("options", {})
    if job.get("input_dims"):  # how to run an artifact with dynamic dims; not a cell setting
        options = {**options, INPUT_DIMS: job["input_dims"]}
    params = MeasureParams.from_dict({**job["measure"], "mode": mode})
    described = set()
    for group_index, group in enumerate(job["groups"]):
        batch = int(group["batch"])
        emit("group_start", group=group_index, batch=batch)
        rng = np.random.default_rng(job.get("seed", 0) + batch)
        ranges = job.get("input_ranges") or {}
        value_range = group_range([ranges.get(cell["model"]) for cell in group["cells"]])
        data = drawn = None
        sessions, records = {}, {}
        for cell in group["cells"]:
            emit("model_loading", group=group_index, id=cell["id"], model=cell["model"])
            record = {"id": cell["id"], "status": "ok", "error": None, "artifact": cell["artifact"]}
            cell_options = {**options, **cell.get("session_options", {})}  # the model's own on top of the group's
            # The parent checked every artifact in full before starting this worker (bench.artifacts
            # inspect_artifact): the timed load and its memory are the runtime's alone, as before those checks.
            cell_options[CHECKED_OPTION] = True
            try:
                peak_before = peak_rss_mb()
                start = time.perf_counter()
                session = open_session(runtime, cell["artifact"], batch, threads, cell_options, mode)
                record["load_seconds"] = time.perf_counter() - start
                shape, dtype = tuple(session.input_shape()), session.input_dtype()
                if data is None or data.shape != shape or data.dtype != dtype:
                    # The same input for every model of the group, in the range all of them take.
                    data, drawn = make_input(rng, shape, dtype, value_range, job.get("input_range_from", "model"))
                record["input"] = drawn
                session.set_input(data)
                start = time.perf_counter()
                output = np.asarray(session.run_parallel() if mode == "throughput" else session.run())
                record["first_inference_seconds"] = time.perf_counter() - start
                record["output_shape"] = list(output.shape) if output.ndim else None
                record["applied_settings"] = session.applied_settings()
                if hasattr(session, "describe_model") and cell["model"] not in described:
                    emit("model_info", model=cell["model"], info=session.describe_model())
                    described.add(cell["model"])
                pool = [session]
                # More instances of the same model, rotated per round (see harness).
                for _ in range(params.instances - 1):
                    extra = open_session(runtime, cell["artifact"], batch, threads, cell_options, mode)
                    extra.set_input(data)
                    pool.append(extra)
                record["instances"] = len(pool)
                # The earlier models stay loaded, so the new peak is roughly this model's footprint.
                peak_after = peak_rss_mb()
                if peak_before is not None and peak_after is not None:  # None: no memory source (Windows)
                    record["load_rss_growth_mb"] = round(peak_after - peak_before, 3)
                sessions[cell["model"]] = pool
            except Exception as exc:  # a model that cannot load is an error cell, not a lost group
                interrupts.reraise_if_interrupted(exc)
                record.update(status="error", error=f"could not load or run: {_one_line(exc)}")
                emit("cell", group=group_index, cell=record)
                continue
            records[cell["model"]] = record
        try:
            emit("measuring", group=group_index, models=list(sessions))
            for pool in sessions.values():
                for session in pool:
                    warm_up(session, params)
            wall = time.perf_counter()
            measured = measure_interleaved(sessions, params)
            wall = time.perf_counter() - wall
        except Exception as exc:
            interrupts.reraise_if_interrupted(exc)
            for name, record in records.items():
                record.update(status="error", error=f"failed while measuring: {_one_line(exc)}")
                emit("cell", group=group_index, cell=record)
            measured = None
        if measured is not None:
            # Before the profiled copies open: the peak of loading and measuring this group.
            peak = peak_rss_mb()
            profiled = {cell["model"]: cell["profile"] for cell in group["cells"] if cell.get("profile")}
            for name, record in records.items():
                result = measured[name]
                if name in profiled:  # after measuring, so the measured sessions stay unprofiled
                    _add_profile(record, plugin(runtime), sessions[name][0], layers=profiled[name] == "layers")
                if job.get("crosscheck") and can_crosscheck(runtime):
                    try:
                        record["crosscheck"] = crosscheck_session(
                            sessions[name], record["artifact"], threads, options.get("precision", "f32"),
                            float(job["crosscheck_time"]), measure_alone)
                    except Exception as exc:  # the cell's own numbers still stand
                        interrupts.reraise_if_interrupted(exc)
                        record["crosscheck"] = {"tool": "benchmark_app", "status": "error", "error": _one_line(exc)}
                    cross = record["crosscheck"]
                    if cross.get("median_ms") and result.engine_ms:
                        # The cell's own (interleaved) engine median against benchmark_app too.
                        cross["cell_engine_median_ms"] = float(np.median(result.engine_ms))
                        cross["cell_ratio"] = cross["cell_engine_median_ms"] / cross["median_ms"]
                record.update(
                    samples_ms=[round(ns / 1e6, 6) for ns in result.samples_ns],
                    engine_samples_ms=[round(ms, 6) for ms in result.engine_ms] or None,
                    iterations=len(result.samples_ns),
                    blocks=result.blocks,
                    seconds=result.timed_ns / 1e9,
                    group_wall_seconds=wall,
                    parallelism=result.parallelism,
                )
                if peak is not None:  # the schema wants a number or no field at all
                    record["peak_rss_mb"] = round(peak, 3)
                emit("cell", group=group_index, cell=record)
        for pool in sessions.values():
            for session in pool:
                session.close()


def _add_profile(record: dict, runtime_plugin, session, layers: bool) -> None:
    """The runtime's per-layer profile (``kernels``; with ``layers`` the time split, ``profile``)
    into the record, from its own profiled pass: never part of the cell's samples. A failed or
    missing profile is noted; the cell's numbers still stand."""
    try:
        record.update(runtime_plugin.profile(session, layers=layers) or {})
    except Exception as exc:
        interrupts.reraise_if_interrupted(exc)
        record["profile_error"] = _one_line(exc)
        return
    if layers and "profile" not in record:
        record["profile_error"] = runtime_plugin.profile_unsupported  # the runtime's own reason


# The highest peak read so far in this process (see ``peak_rss_mb``).
_highest_peak_mb: float | None = None


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far, in MB (10^6 bytes): the highest reading yet.
    Linux updates its high-water mark lazily, so VmHWM can read lower after the process hands
    memory back (madvise); a full run once recorded -0.365 MB of "growth" over a TensorFlow load,
    which its own schema then refused. A peak cannot fall, so the highest reading stands."""
    global _highest_peak_mb
    reading = _read_peak_rss_mb()
    if reading is not None:
        _highest_peak_mb = reading if _highest_peak_mb is None else max(_highest_peak_mb, reading)
    return _highest_peak_mb


def _read_peak_rss_mb() -> float | None:
    """The OS's peak RSS figure: on Linux ``/proc/self/status`` VmHWM (``ru_maxrss`` survives
    exec there, so a worker started by a parent holding TensorFlow, 1.7 GB, would report the
    parent's peak); elsewhere ``ru_maxrss`` (bytes on macOS, KiB otherwise). None where neither
    exists (Windows has no ``resource`` module): a missing memory figure must not cost the cell
    its latency."""
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
    emit = Emitter(protocol)
    # Ctrl-C reaches the whole process group: this worker stops too, and does not record
    # what a library made of the interrupt as an error cell.
    interrupts.install((signal.SIGINT,))
    emit("ready", pid=os.getpid())
    try:
        job = json.loads(sys.stdin.read())
        run_job(job, emit)
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
