"""The parent side of a worker: start it, feed it a job, read its events, survive its death.

A worker that dies (a signal, a non-zero exit, silence past ``stall_timeout``) loses only what it
was doing: the cells of the model it was loading, or of the group it was measuring, become error
cells, and the rest of the job runs in a fresh worker (without a model that crashed it).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from slimdeploy.bench.worker import CellReport, JobSpec
from slimdeploy.quiet import quiet_environment


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


def run_worker(job: JobSpec, on_event, stall_timeout: float) -> str | None:
    """Run one worker to the end; ``on_event(dict)`` sees each event as it arrives. Returns why the
    worker did not end cleanly (None: it did)."""
    threads = str(job.threads)  # libraries that read these get the same thread count as the runtime
    env = {**quiet_environment(dict(os.environ)), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile(mode="w+b") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "slimdeploy.bench.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr, env=env)
        stalled = fatal = None
        done = False
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(json.dumps(job.to_json()).encode())
            proc.stdin.close()
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
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue  # a blank line, or not ours (the protocol stream is private, so this is rare)
                    done = done or event.get("event") == "done"
                    fatal = event.get("error") if event.get("event") == "fatal" else fatal
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
            return None
        stderr.seek(0)
        tail = stderr.read()[-4000:].decode("utf-8", "replace")
        return f"{job.runtime} worker failed: {fatal}" if fatal else _describe_exit(job.runtime, code, tail, stalled)


@dataclass
class WorkerWatch:
    """Called with each event of one worker: the group it is in, the cell it is loading (None once it
    measures), the cells it reported."""

    job: JobSpec
    on_cell: Callable[[str, CellReport], None]
    on_event: Callable[[dict], None] | None = None
    group: int | None = None
    loading: str | None = None
    reported: set = field(default_factory=set)

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "group_start":
            self.group = event["group"]
            self.loading = None
        elif kind == "model_loading":
            self.loading = event["id"]
        elif kind == "measuring":
            self.loading = None
        elif kind == "cell":
            report = CellReport.from_json(event["cell"])
            self.reported.add(report.id)
            self.loading = None
            self.on_cell(report.id, report)
        if self.on_event is not None:
            self.on_event({**event, "runtime": self.job.runtime, "threads": self.job.threads})

    def unreported(self, cells) -> list:
        return [c for c in cells if c.id not in self.reported]


def run_job(job: JobSpec, on_cell, on_event=None, stall_timeout: float = 300.0) -> None:
    """Measure every group of ``job``; ``on_cell(cell_id, report)`` gets each finished cell, error
    cells included. Returns when every cell has been reported."""
    groups = list(job.groups)
    broken: dict[str, str] = {}  # model -> why it is not run again
    while groups:
        groups = _without_broken_models(groups, broken, on_cell)
        if not groups:
            return
        watch = WorkerWatch(job, on_cell, on_event)
        failure = run_worker(job.replace(groups=groups), watch, stall_timeout)
        if failure is None:
            for cell in watch.unreported(c for g in groups for c in g.cells):  # should not happen; never leave one
                on_cell(cell.id, CellReport(error=f"{job.runtime} worker did not report this cell"))
            return
        groups = _after_crash(job, groups, watch, failure, broken, on_cell)


def _without_broken_models(groups: list, broken: dict, on_cell) -> list:
    """Models that crashed a worker while loading are not tried again: their cells are errors."""
    for cell in (c for group in groups for c in group.cells if c.model in broken):
        on_cell(cell.id, CellReport(error=broken[cell.model]))
    groups = [group.replace(cells=[c for c in group.cells if c.model not in broken]) for group in groups]
    return [g for g in groups if g.cells]


def _after_crash(job: JobSpec, groups: list, watch: WorkerWatch, message: str, broken: dict, on_cell) -> list:
    """The groups left to run after a worker died: a model it died loading is marked broken and its
    cell an error; cells of a group it died measuring are errors."""
    current = watch.group if watch.group is not None else 0
    group = groups[current]
    if watch.loading is None:
        for cell in watch.unreported(group.cells):
            on_cell(cell.id, CellReport(error=f"{message} (while measuring batch {group.batch})"))
        return groups[current + 1:]
    culprit = next(c for c in group.cells if c.id == watch.loading)
    on_cell(culprit.id, CellReport(error=f"{message} (while loading {culprit.artifact_shown} at batch {culprit.batch})"))
    broken[culprit.model] = f"not run: {culprit.artifact_shown} crashed the {job.runtime} worker earlier ({message})"
    # Retry this group (without the culprit) and the rest in a fresh worker.
    return [group.replace(cells=[c for c in watch.unreported(group.cells) if c.id != culprit.id])] + groups[current + 1:]
