"""Progress bars and console output (rich), on stderr so stdout stays for --json: rich's live bars on a
terminal, whole plain lines elsewhere (``PlainProgress``: a live display in a log leaves truncated frames)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)
# In a log, a summary line wrapped at 80 columns splits its figures across lines; tables keep their width.
console.soft_wrap = not console.is_terminal

PLAIN_LINE_INTERVAL = 20.0  # at most one line per task this often (seconds), besides its start and finish lines


@dataclasses.dataclass
class _PlainTask:
    description: str
    total: float | None
    fields: dict
    started: float
    completed: float = 0.0
    last_line: float = 0.0
    finished: bool = False


class PlainProgress:
    """The part of rich's ``Progress`` the code calls, printed as whole plain lines (``description:
    completed/total info (elapsed)``): when a task starts, when it finishes, and at most once per
    ``interval`` seconds in between."""

    def __init__(self, out: Console, interval: float = PLAIN_LINE_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.out, self.interval, self.clock = out, interval, clock
        self.tasks: dict[int, _PlainTask] = {}
        self._next_id = 0

    def add_task(self, description: str, total: float | None = 100.0, completed: float = 0, **fields) -> int:
        task_id, self._next_id = self._next_id, self._next_id + 1
        self.tasks[task_id] = _PlainTask(description, total, dict(fields), started=self.clock(), completed=completed)
        self._started(self.tasks[task_id])
        return task_id

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None, **fields) -> None:
        task = self.tasks[task_id]
        if total is not None:
            task.total = total
            # A task given more steps after it finished (the prune's width search) reports again.
            task.finished = task.finished and task.completed >= total
        if description is not None:
            task.description = description
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        task.fields.update(fields)
        self._report(task)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def reset(self, task_id: int, *, total: float | None = None, completed: float = 0,
              description: str | None = None, **fields) -> None:
        task = self.tasks[task_id]
        self.tasks[task_id] = _PlainTask(description or task.description, task.total if total is None else total,
                                         {**task.fields, **fields}, started=self.clock(), completed=completed)
        self._started(self.tasks[task_id])

    def remove_task(self, task_id: int) -> None:
        self.tasks.pop(task_id, None)

    def _started(self, task: _PlainTask) -> None:
        task.last_line = task.started
        self._print(f"{task.description}: started{self._step(task, ', ')}")

    def _report(self, task: _PlainTask) -> None:
        if task.finished:
            return
        now = self.clock()
        done = task.total is not None and task.completed >= task.total
        if not done and now - task.last_line < self.interval:
            return
        task.finished, task.last_line = done, now
        info = task.fields.get("info") or ""
        elapsed = f"{'done in ' if done else ''}{_seconds(now - task.started)}"
        self._print(f"{task.description}:{self._step(task, ' ')}{' ' + info if info else ''} ({elapsed})")

    @staticmethod
    def _step(task: _PlainTask, before: str) -> str:
        return "" if task.total is None else f"{before}{_count(task.completed)}/{_count(task.total)}"

    def _print(self, line: str) -> None:
        self.out.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else time.strftime("%H:%M:%S", time.gmtime(seconds))


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | PlainProgress | None]:
    if not enabled:
        yield None
        return
    if not (console.is_terminal or console.is_jupyter):
        yield PlainProgress(console)
        return
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                        transient=False)
    with progress:
        yield progress


def keras_epoch_callback(progress: Progress | PlainProgress | None, description: str, epochs: int, steps_per_epoch: int,
                         metric: str):
    """A Keras callback driving one bar per epoch and a line per finished epoch (loss and ``metric``)."""
    import keras  # lazy: heavy

    class EpochBar(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if progress is not None:
                self.task = progress.add_task(f"{description} epoch {epoch + 1}/{epochs}", total=steps_per_epoch, info="")

        def on_train_batch_end(self, batch, logs=None):
            # The last batch's update is on_epoch_end's: the epoch's plain line carries its metric.
            if progress is not None and batch + 1 < steps_per_epoch:
                info = f"loss {logs['loss']:.4f}" if logs and "loss" in logs else ""
                progress.update(self.task, completed=batch + 1, info=info)

        def on_epoch_end(self, epoch, logs=None):
            if progress is not None:
                logs = logs or {}
                info = " ".join(f"{k} {logs[k]:.4f}" for k in ("loss", metric, f"val_{metric}") if k in logs)
                progress.update(self.task, completed=steps_per_epoch, info=info)

    return EpochBar()
