"""``lottery.json``: rounds averaged over seeds, the reset comparison, where the score first falls."""

from __future__ import annotations

import dataclasses
import statistics
from datetime import datetime, timezone
from typing import TypeVar

from slimdeploy import environment
from slimdeploy.prune.settings import DEFAULT_DROP_POINTS, PruneSettings, reset_label
from slimdeploy.records.base import ABSENT, Record, present
from slimdeploy.records.lottery import (AccuracyDrop, DenseSummary, LotteryRecord, Resets, ResetScore, Round, SeedScore,
                                        Unprunable)
from slimdeploy.tasks import DEFAULT_TASK, Task

R = TypeVar("R", bound=Record)
# The task's scores, as records name them (averaged with a ``_std``).
ACCURACIES = ("val_accuracy", "test_accuracy")
# Controls as named in a round's ``controls`` -> their name among the resets.
CONTROL_RESETS = {"random_init": "random", "finetune": "finetune"}
DENSE_FIELDS = tuple(f.name for f in dataclasses.fields(DenseSummary) if f.init and f.name not in ("extra", "_order"))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def aggregate(entries: list[R]) -> R:
    """The mean over seeds of every number (``<score>_std`` and ``seeds`` where the record has them), widths
    column by column, controls each; the rest from the first seed."""
    first = entries[0]
    if len(entries) == 1:
        return first
    names = [field.name for field in dataclasses.fields(first)]
    changes: dict = {"seeds": len(entries)} if "seeds" in names else {}
    for name in names:
        values = [getattr(entry, name) for entry in entries]
        value = values[0]
        if name != "round" and all(_number(v) for v in values):
            changes[name] = value if all(v == value for v in values) else statistics.fmean(values)
            if f"{name}_std" in names and name in ACCURACIES:
                changes[f"{name}_std"] = statistics.stdev(values)
        elif name == "widths" and all(isinstance(v, list) and len(v) == len(value) for v in values):
            changes[name] = value if all(v == value for v in values) else [statistics.fmean(c) for c in zip(*values)]
        elif name == "controls" and all(isinstance(v, dict) for v in values):
            changes[name] = {key: aggregate([v[key] for v in values]) for key in value if all(key in v for v in values)}
    return first.replace(**changes)


def drop_points(dense, entry, key: str = "test_accuracy", *, task: Task = DEFAULT_TASK) -> float | None:
    """The budget's points (``Task.drop_points``) record ``entry`` lost against ``dense`` on score ``key``."""
    base, value = present(getattr(dense, key)), present(getattr(entry, key))
    return None if base is None or value is None else task.drop_points(base, value)


def aggregate_rounds(per_seed: dict[int, list[Round]], *, task: Task = DEFAULT_TASK) -> list[Round]:
    """Round r averaged over every seed that has finished it."""
    longest = max((len(rounds) for rounds in per_seed.values()), default=0)
    rounds = [aggregate([seed_rounds[index] for seed_rounds in per_seed.values() if len(seed_rounds) > index])
              for index in range(longest)]
    return [entry.replace(test_drop_points=drop_points(rounds[0], entry, task=task)) for entry in rounds]


def compare_resets(settings: PruneSettings, per_seed: dict[int, list[Round]], dense: Round, *,
                   task: Task = DEFAULT_TASK) -> Resets | None:
    """The final round's reset next to its controls, averaged over seeds, with the winner by the
    task's validation score."""
    finals = {seed: rounds[-1] for seed, rounds in per_seed.items() if len(rounds) == settings.rounds + 1}
    if not finals or len(finals) != len(per_seed):
        return None
    results: dict[str, list[tuple[int, Round]]] = {reset_label(settings.reset): list(finals.items())}
    for seed, entry in finals.items():
        for control, entry_control in (entry.controls or {}).items():
            results.setdefault(CONTROL_RESETS[control], []).append((seed, entry_control))
    scores = {}
    for name, pairs in results.items():
        if len(pairs) != len(finals):
            continue
        per_seed_scores = {str(seed): SeedScore(val_accuracy=present(value.val_accuracy),
                                                test_accuracy=present(value.test_accuracy)) for seed, value in pairs}
        mean = aggregate([ResetScore(val_accuracy=s.val_accuracy, test_accuracy=s.test_accuracy)
                          for s in per_seed_scores.values()])
        scores[name] = mean.replace(test_drop_points=drop_points(dense, mean, task=task), per_seed=per_seed_scores)
    if len(scores) < 2:
        return Resets(scores=scores) if scores else None
    return Resets(scores=scores, winner=_best(scores, "val_accuracy", task),
                  winner_by_test=_best(scores, "test_accuracy", task))


def _best(scores: dict[str, ResetScore], key: str, task: Task) -> str | None:
    values = {name: present(getattr(score, key)) for name, score in scores.items()}
    scored = [(task.rank(value), name) for name, value in values.items() if value is not None]
    return max(scored)[1] if scored else None


def first_drop(rounds: list[Round], threshold: float, *, task: Task = DEFAULT_TASK) -> AccuracyDrop:
    """Where the mean test score first falls more than ``threshold`` budget points below dense."""
    last, beyond = (0 if rounds else None), None
    for entry in rounds[1:]:
        if present(entry.test_drop_points) is not None and not task.within_budget(entry.test_drop_points, threshold):
            beyond = entry
            break
        last = entry.round
    return AccuracyDrop(threshold_points=threshold, first_round_beyond=beyond.round if beyond else None,
                        weights_remaining=beyond.weights_remaining if beyond else None, last_round_within=last)


def build_record(settings: PruneSettings, *, rate: float, seeds: list[int], per_seed: dict[int, list[Round]],
                 prunable: list[str], unprunable: dict[str, str], complete: bool, run_fields: dict | None = None,
                 task: Task = DEFAULT_TASK) -> LotteryRecord:
    """The record without its ticket and candidates; ``run_fields``: its ``run_dir``, ``data``, ``adopted``..."""
    rounds = aggregate_rounds(per_seed, task=task)
    budget = settings.max_drop if settings.max_drop is not None else DEFAULT_DROP_POINTS
    return LotteryRecord(
        mode=settings.mode, complete=complete, settings=settings.to_dict(), rate=rate, target=settings.target,
        seeds=list(seeds), prunable=list(prunable), rounds=rounds, accuracy_drop=first_drop(rounds, budget, task=task),
        dense=DenseSummary(**{name: getattr(rounds[0], name) for name in DENSE_FIELDS}) if rounds else DenseSummary(),
        unprunable=[Unprunable(layer=layer, reason=reason) for layer, reason in unprunable.items()],
        resets=compare_resets(settings, per_seed, rounds[0], task=task) if complete and rounds else None,
        per_seed={str(seed): [entry.to_json() for entry in rounds_] for seed, rounds_ in per_seed.items()}
        if len(per_seed) > 1 else ABSENT,
        **(run_fields or {}), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=environment.library_versions())
