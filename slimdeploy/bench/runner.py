"""The parent side of a worker: start it, feed it a job, read its events, survive its death.

A worker that dies (a signal, a non-zero exit, silence past ``stall_timeout``) loses only
what it was doing: if it died loading one model, that model's cells become error cells and
the rest of the job is retried without it in a fresh worker; if it died measuring, the
cells of that group become error cells and the remaining groups run in a fresh worker.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from slimdeploy.bench.plan import GroupSpec, JobSpec


@dataclass
class WorkerExit:
    clean: bool
    message: str | None  # why it was not clean


def _describe_exit(runtime: str, code: int | None, stderr_tail: str, stalled: float | None) -> str:
    if stalled is not None:
        why = f"{runtime} worker reported nothing for {stalled:.0f} s and was killed"
    elif code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        why = f"{runtime} worker was killed by signal {name}"
    else:
        why = f"{runtime} worker exited with status {code}"
    last = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    return f"{why}: {last[-1][:300]}" if last else why


def worker_env(threads: int) -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Belt and braces: libraries that read these get the same thread count as the runtime.
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_worker(job: dict, on_event, stall_timeout: float, threads: int) -> WorkerExit:
    """Run one worker to the end; ``on_event(dict)`` sees each event as it arrives."""
    with tempfile.TemporaryFile(mode="w+b") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slimdeploy.bench.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=worker_env(threads),
        )
        stalled = None
        fatal = None
        done = False
        try:
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            selector = selectors.DefaultSelector()
            selector.register(proc.stdout, selectors.EVENT_READ)
            buffer = b""
            last = time.monotonic()
            while True:
                if not selector.select(timeout=1.0):
                    if time.monotonic() - last > stall_timeout:
                        stalled = time.monotonic() - last
                        proc.kill()
                        break
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                last = time.monotonic()
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue  # not ours; the protocol stream is private, so this is rare
                    if event.get("event") == "done":
                        done = True
                    elif event.get("event") == "fatal":
                        fatal = event.get("error")
                    on_event(event)
            selector.close()
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        if done and code == 0:
            return WorkerExit(True, None)
        stderr.seek(0)
        tail = stderr.read()[-4000:].decode("utf-8", "replace")
        message = _describe_exit(job["runtime"], code, tail, stalled)
        if fatal:
            message = f"{job['runtime']} worker failed: {fatal}"
        return WorkerExit(False, message)


def run_job(job: JobSpec, job_fields: dict, on_cell, on_event=None, stall_timeout: float = 300.0) -> None:
    """Measure every group of ``job``; ``on_cell(cell_id, record)`` gets each finished cell,
    error cells included. Returns when every cell has been reported."""
    groups = [GroupSpec(g.runtime, g.batch, g.threads, g.mode, g.settings, list(g.cells)) for g in job.groups]
    broken: dict[str, str] = {}  # model -> why it is not run again
    while groups:
        # Models that crashed a worker while loading are not tried again.
        for group in groups:
            for cell in [c for c in group.cells if c.model in broken]:
                on_cell(cell.id, {"status": "error", "error": broken[cell.model]})
            group.cells = [c for c in group.cells if c.model not in broken]
        groups = [g for g in groups if g.cells]
        if not groups:
            return
        state = {"group": None, "loading": None, "reported": set()}

        def handle(event, groups=groups, state=state):
            kind = event.get("event")
            if kind == "group_start":
                state["group"] = event["group"]
                state["loading"] = None
            elif kind == "model_loading":
                state["loading"] = event["id"]
            elif kind == "measuring":
                state["loading"] = None
            elif kind == "cell":
                record = event["cell"]
                state["reported"].add(record["id"])
                state["loading"] = None
                on_cell(record["id"], record)
            if on_event is not None:
                on_event({**event, "runtime": job.runtime, "threads": job.threads})

        spec = {**job_fields, "runtime": job.runtime, "threads": job.threads, "mode": job.mode,
                "options": job.settings, "groups": [g.to_job() for g in groups]}
        outcome = run_worker(spec, handle, stall_timeout, job.threads)
        if outcome.clean:
            missing = [c for g in groups for c in g.cells if c.id not in state["reported"]]
            for cell in missing:  # should not happen; never leave a cell unreported
                on_cell(cell.id, {"status": "error", "error": f"{job.runtime} worker did not report this cell"})
            return
        current = state["group"] if state["group"] is not None else 0
        group = groups[current]
        loading = state["loading"]
        if loading is not None:
            culprit = next(c for c in group.cells if c.id == loading)
            message = f"{outcome.message} (while loading {culprit.artifact_shown} at batch {culprit.batch})"
            on_cell(culprit.id, {"status": "error", "error": message})
            broken[culprit.model] = f"not run: {culprit.artifact_shown} crashed the {job.runtime} worker earlier ({outcome.message})"
            # Retry this group (without the culprit) and the rest in a fresh worker.
            group.cells = [c for c in group.cells if c.id != loading and c.id not in state["reported"]]
            groups = [group] + groups[current + 1:]
        else:
            for cell in group.cells:
                if cell.id not in state["reported"]:
                    on_cell(cell.id, {"status": "error",
                                      "error": f"{outcome.message} (while measuring batch {group.batch})"})
            groups = groups[current + 1:]
