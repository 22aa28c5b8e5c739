"""Progress where stderr is not a terminal: whole plain lines at a modest rate, not live-table frames."""

from __future__ import annotations

import io

from rich.console import Console

from slimdeploy.progress import PlainProgress


class FakeClock:
    """A clock the test moves by hand (the interval is real code, the time is not)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain_progress(interval: float = 20.0):
    out = io.StringIO()
    clock = FakeClock()
    return PlainProgress(Console(file=out, width=40), interval=interval, clock=clock), out, clock


def test_a_task_prints_its_start_its_finish_and_at_most_one_line_per_interval():
    progress, out, clock = plain_progress(interval=20.0)
    task = progress.add_task("bench", total=100, info="")
    for step in range(1, 100):  # 99 updates over 49.5 s: two interval lines, at 20 s and 40 s
        clock.now += 0.5
        progress.update(task, completed=step, info=f"cell {step}")
    clock.now += 0.5
    progress.advance(task)
    progress.update(task, info="after the end")  # a finished task says nothing more
    lines = out.getvalue().splitlines()
    assert lines == ["bench: started, 0/100", "bench: 40/100 cell 40 (20.0 s)", "bench: 80/100 cell 80 (40.0 s)",
                     "bench: 100/100 cell 99 (done in 50.0 s)"]


def test_long_lines_are_never_wrapped_or_cut():
    progress, out, clock = plain_progress()
    info = "loss 0.1234 accuracy 0.9876 val_accuracy 0.9123 and a very long tail of figures"
    task = progress.add_task("structured seed 0 round 3 epoch 12/15", total=47, info="")
    progress.update(task, completed=47, info=info)
    assert out.getvalue().splitlines()[-1] == f"structured seed 0 round 3 epoch 12/15: 47/47 {info} (done in 0.0 s)"


def test_a_reset_task_starts_over():
    progress, out, clock = plain_progress()
    task = progress.add_task("epoch 1/2", total=2, info="")
    progress.update(task, completed=2, info="loss 1.0")
    progress.reset(task, total=2, description="epoch 2/2", info="")
    progress.update(task, completed=2, info="loss 0.5")
    progress.remove_task(task)
    assert out.getvalue().splitlines() == ["epoch 1/2: started, 0/2", "epoch 1/2: 2/2 loss 1.0 (done in 0.0 s)",
                                           "epoch 2/2: started, 0/2", "epoch 2/2: 2/2 loss 0.5 (done in 0.0 s)"]


# `slimdeploy run` through a pipe, end to end: tests/test_run_pipeline.py::test_run_through_a_pipe_logs_whole_plain_lines.
