"""Lottery-ticket pruning of a trained dense model.

``settings`` (PruneSettings), ``graph`` (which Dense layers may shrink), ``masks``
(unstructured magnitude masks), ``neurons`` (structured unit removal and model surgery),
``schedule`` (per-round counts, solving --target), ``lottery`` (rounds, resets, controls,
seeds, resume: ``prune_run``) and ``record`` (``lottery.json``). TensorFlow is imported
only when a function needs it.
"""

from slimdeploy.prune.settings import PruneSettings

__all__ = ["PruneSettings", "prune_run"]


def __getattr__(name: str):
    # The CLI reads PruneSettings to build its options; the rounds' code (NumPy and up) loads on use.
    if name == "prune_run":
        from slimdeploy.prune.lottery import prune_run

        return prune_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
