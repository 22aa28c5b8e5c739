"""Progress bars and console output (rich), on stderr so stdout stays for --json."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        yield progress


def keras_epoch_callback(progress: Progress | None, description: str, epochs: int, steps_per_epoch: int):
    """A Keras callback that drives one bar per epoch (batches) and a line per finished epoch."""
    import keras

    class EpochBar(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if progress is not None:
                self.task = progress.add_task(f"{description} epoch {epoch + 1}/{epochs}", total=steps_per_epoch, info="")

        def on_train_batch_end(self, batch, logs=None):
            if progress is not None:
                info = f"loss {logs['loss']:.4f}" if logs and "loss" in logs else ""
                progress.update(self.task, completed=batch + 1, info=info)

        def on_epoch_end(self, epoch, logs=None):
            if progress is not None:
                logs = logs or {}
                info = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy"))
                progress.update(self.task, completed=steps_per_epoch, info=info)

    return EpochBar()
