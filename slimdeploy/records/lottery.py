"""``lottery.json`` and its rounds as records (written by ``slimdeploy prune``).

``Round`` is one entry of ``rounds`` and also the file ``<mode>/round_K/metrics.json``; a
control (``controls/NAME/metrics.json``) is a ``Round`` without a round number. Entries
averaged over several seeds carry ``*_std`` and ``seeds``. Field order is the order prune
writes the keys.
"""

from __future__ import annotations

import dataclasses

from slimdeploy.records.base import ABSENT, Record
from slimdeploy.records.run import DataInfo

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class Round(Record):
    """One pruning round's model measured (round 0 is the dense model)."""

    WHAT = "round metrics"

    round: int = ABSENT
    params: int
    nonzero_params: int
    params_fraction: float
    flops: int
    nonzero_flops: int
    weights_remaining: float
    zero_weights: int
    prunable_weights: int
    widths: list
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    train_seconds: float = ABSENT        # the rounds prune trained (not round 0)
    path: str = ABSENT                   # relative to the mode directory
    seconds: float | None = ABSENT
    controls: dict[str, Round] = ABSENT  # the final round only
    val_accuracy_std: float = ABSENT     # averaged over seeds only
    test_accuracy_std: float = ABSENT
    seeds: int = ABSENT
    test_drop_points: float | None = ABSENT  # in lottery.json only
    candidate: str = ABSENT              # search and aligned entries: their candidate name (search_K, aligned_rN)
    reset: str = ABSENT                  # search and aligned entries: how they were trained ("finetune")

    def to_json(self) -> dict:
        out = super().to_json()
        if self.train_seconds is ABSENT and "path" in out and "seconds" in out:
            # The dense entry (round 0) has always been written with its time before its path.
            out = _move_before(out, "seconds", "path")
        return out


def _move_before(out: dict, key: str, before: str) -> dict:
    """``out`` with ``key`` placed right before ``before`` (JSON key order as written)."""
    result: dict = {}
    for name, value in out.items():
        if name == before:
            result[key] = out[key]
        if name != key:
            result[name] = value
    return result


@dataclasses.dataclass(frozen=True, kw_only=True)
class LotteryRecord(Record):
    """``RUN_DIR/<mode>/lottery.json``: rewritten after every round (``complete`` false) and at the end."""

    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "lottery.json"

    schema_version: int = SCHEMA_VERSION
    mode: str
    complete: bool
    settings: dict                      # PruneSettings.to_dict()
    rate: float
    target: float | None = None
    seeds: list
    dense: dict                         # round 0's sizes and accuracies
    prunable: list
    unprunable: list                    # [{"layer", "reason"}]
    rounds: list[Round]
    accuracy_drop: dict
    ticket: dict | None = None          # {"round", "reason", "path", "source", "weights_remaining", "test_accuracy"}
    resets: dict | None = None          # reset name -> accuracies, plus "winner", "winner_by_test"
    candidates: list = ABSENT           # every candidate for the ticket, averaged over seeds (prune.ticket)
    search: dict = ABSENT               # the width search: its bounds and steps, or why it did not run
    per_seed: dict = ABSENT             # str(seed) -> that seed's rounds (as JSON), with several seeds only
    run_dir: str = ABSENT
    random_init_seed_offset: int = ABSENT
    data: DataInfo = ABSENT
    adopted: dict = ABSENT              # adopted runs only: source, sha256, theta0 false, the reset's meaning
    created: str = ABSENT
    versions: dict = ABSENT
    seconds: float = ABSENT             # the finished record only
    train_seconds_total: float = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneStart(Record):
    """``RUN_DIR/<mode>/settings.json``: what a prune was started with (``--resume`` must match it)."""

    WHAT = "prune settings"

    settings: dict
    rate: float
    seeds: list
