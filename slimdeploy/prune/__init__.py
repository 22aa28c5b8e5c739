"""Lottery-ticket pruning of a trained dense model.

``settings`` (PruneSettings), ``graph`` (which Dense layers may shrink), ``masks``
(unstructured magnitude masks), ``neurons`` (structured unit removal and model surgery),
``schedule`` (per-round counts, solving --target), ``lottery`` (rounds, resets, controls,
seeds, resume: ``prune_run``) and ``record`` (``lottery.json``). TensorFlow is imported
only when a function needs it.
"""

from slimdeploy.prune.lottery import prune_run
from slimdeploy.prune.settings import PruneSettings

__all__ = ["PruneSettings", "prune_run"]
