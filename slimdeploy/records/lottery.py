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
class DenseSummary(Record):
    """lottery.json's ``dense``: what it repeats of round 0."""

    WHAT = "dense summary"

    params: int = ABSENT
    nonzero_params: int = ABSENT
    flops: int = ABSENT
    val_accuracy: float | None = ABSENT
    test_accuracy: float | None = ABSENT
    val_accuracy_std: float = ABSENT
    test_accuracy_std: float = ABSENT
    widths: list = ABSENT
    path: str = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class Unprunable(Record):
    WHAT = "unprunable layer"

    layer: str = ABSENT
    reason: str = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class Candidate(Record):
    """One candidate for the ticket (a round, a control, a width-search step, aligned widths), over seeds."""

    WHAT = "ticket candidate"

    name: str = ABSENT
    kind: str = ABSENT
    reset: str = ABSENT
    round: int | None = ABSENT
    widths: list = ABSENT
    params: float = ABSENT
    nonzero_params: float = ABSENT
    params_fraction: float = ABSENT
    flops: float = ABSENT
    nonzero_flops: float = ABSENT
    weights_remaining: float = ABSENT
    val_accuracy: float | None = ABSENT
    val_accuracy_std: float = ABSENT  # several seeds only
    test_accuracy: float | None = ABSENT
    test_accuracy_std: float = ABSENT
    path: str = ABSENT
    val_drop_points: float | None = ABSENT
    test_drop_points: float | None = ABSENT
    eligible: bool = ABSENT
    within_budget: bool | None = ABSENT
    why: str = ABSENT  # candidates only: why it is or is not the ticket


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ticket(Candidate):
    """The chosen candidate and why (older files: only round, reason, path, source, weights_remaining, test_accuracy)."""

    WHAT = "ticket"

    reason: str = ABSENT
    candidate: str = ABSENT
    source: str = ABSENT  # the ticket's model, relative to the mode directory
    max_drop: float | None = ABSENT
    same_size_alternatives: dict = ABSENT  # reset -> {name, val_accuracy, test_accuracy}


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccuracyDrop(Record):
    """Where the mean test score first fell more than the budget below dense."""

    WHAT = "accuracy drop"

    threshold_points: float | None = ABSENT
    first_round_beyond: int | None = ABSENT
    weights_remaining: float | None = ABSENT
    last_round_within: int | None = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchStep(Record):
    WHAT = "search step"

    name: str = ABSENT
    from_: str = ABSENT  # "from" in the file
    widths: list = ABSENT
    val_accuracy: float | None = ABSENT
    within_budget: bool | None = ABSENT

    @classmethod
    def from_json(cls, raw, source=None, **options):
        if isinstance(raw, dict) and "from" in raw:
            raw = {("from_" if key == "from" else key): value for key, value in raw.items()}
        return super().from_json(raw, source, **options)

    def to_json(self) -> dict:
        return {("from" if key == "from_" else key): value for key, value in super().to_json().items()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Search(Record):
    """The width search between the ticket and the next more-pruned candidate, or why it did not run."""

    WHAT = "width search"

    ran: bool = False
    reason: str = ABSENT
    between: list = ABSENT
    steps: list[SearchStep] = ABSENT
    stopped: str = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeedScore(Record):
    WHAT = "seed score"

    val_accuracy: float | None = ABSENT
    test_accuracy: float | None = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResetScore(Record):
    """One reset's final round (or control) averaged over seeds."""

    WHAT = "reset score"

    val_accuracy: float | None = ABSENT
    test_accuracy: float | None = ABSENT
    val_accuracy_std: float = ABSENT
    test_accuracy_std: float = ABSENT
    test_drop_points: float | None = ABSENT
    per_seed: dict[str, SeedScore] = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resets(Record):
    """``resets``: reset name -> its score, beside ``winner`` (on validation) and ``winner_by_test``;
    in the file the scores are keys of the object itself."""

    WHAT = "reset comparison"

    scores: dict[str, ResetScore] = dataclasses.field(default_factory=dict)
    winner: str | None = ABSENT
    winner_by_test: str | None = ABSENT

    @classmethod
    def from_json(cls, raw, source=None, **options):
        if isinstance(raw, dict):
            named = {"winner", "winner_by_test"}
            raw = {"scores": {k: v for k, v in raw.items() if k not in named},
                   **{k: v for k, v in raw.items() if k in named}}
        return super().from_json(raw, source, **options)

    def to_json(self) -> dict:
        out = super().to_json()
        return {**out.pop("scores"), **out}


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdoptedPrune(Record):
    """lottery.json's word on an adopted dense model: where it came from, no θ0, what the reset did."""

    WHAT = "adopted model"

    source: str = ABSENT
    sha256: str = ABSENT
    theta0: bool = False
    reset: str = ABSENT
    reset_meaning: str = ABSENT


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
    dense: DenseSummary
    prunable: list
    unprunable: list[Unprunable]
    rounds: list[Round]
    accuracy_drop: AccuracyDrop
    ticket: Ticket | None = None
    resets: Resets | None = None
    candidates: list[Candidate] = ABSENT
    search: Search = ABSENT
    per_seed: dict = ABSENT             # str(seed) -> that seed's rounds (as JSON), with several seeds only
    run_dir: str = ABSENT
    random_init_seed_offset: int = ABSENT
    data: DataInfo = ABSENT
    adopted: AdoptedPrune = ABSENT      # adopted runs only
    created: str = ABSENT
    versions: dict = ABSENT
    seconds: float = ABSENT             # the finished record only
    train_seconds_total: float = ABSENT

    @property
    def reset(self) -> str | None:
        """The reset the prune ran with (``settings`` is ``PruneSettings.to_dict()``)."""
        return self.settings.get("reset")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneStart(Record):
    """``RUN_DIR/<mode>/settings.json``: what a prune was started with (``--resume`` must match it)."""

    WHAT = "prune settings"

    settings: dict
    rate: float
    seeds: list
