"""Lottery-ticket pruning of a trained dense model (``prune_run``); TensorFlow loads only when needed.

``settings``, ``graph`` (which Dense layers may shrink), ``masks`` and ``neurons`` (unstructured and
structured), ``schedule``, ``lottery`` (the rounds), ``ticket`` (its choice), ``record`` (``lottery.json``).
"""

from slimdeploy.prune.lottery import prune_run
from slimdeploy.prune.settings import PruneSettings

__all__ = ["PruneSettings", "prune_run"]
