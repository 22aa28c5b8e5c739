"""``lottery.json``: per-round results averaged over seeds, the reset comparison, the ticket choice.

Rounds are ``records.lottery.Round``; averaging works on their JSON form, since every number
a round holds is averaged the same way.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timezone

from slimdeploy import environment
from slimdeploy.prune.settings import DEFAULT_DROP_POINTS, PruneSettings, reset_label
from slimdeploy.records.base import ABSENT
from slimdeploy.records.lottery import SCHEMA_VERSION, LotteryRecord, Round
from slimdeploy.tasks import DEFAULT_TASK, Task

# The task's scores, under the field names a Round holds them (averaged with a ``_std``).
ACCURACIES = ("val_accuracy", "test_accuracy")
# Controls as named in a round's "controls" -> their name among the resets.
CONTROL_RESETS = {"random_init": "random", "finetune": "finetune"}
NOT_AVERAGED = {"round", "seed"}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(entries: list[dict]) -> dict:
    """Mean over seeds of every number (with ``<key>_std`` for the scores); the rest from the first seed."""
    if len(entries) == 1:
        return dict(entries[0])
    result = dict(entries[0])
    for key, first in entries[0].items():
        if key in NOT_AVERAGED:
            continue
        values = [entry.get(key) for entry in entries]
        if _number(first) and all(_number(value) for value in values):
            same = all(value == first for value in values)
            result[key] = first if same else statistics.fmean(values)
            if key in ACCURACIES:
                result[f"{key}_std"] = _spread(values)
        elif key == "widths" and all(isinstance(value, list) and len(value) == len(first) for value in values):
            result[key] = first if all(value == first for value in values) else [statistics.fmean(column) for column in zip(*values)]
        elif key == "controls" and all(isinstance(value, dict) for value in values):
            result[key] = {name: aggregate([value[name] for value in values]) for name in first if all(name in value for value in values)}
    result["seeds"] = len(entries)
    return result


def score(entry, key: str) -> float | None:
    """A score of a Round record or of a candidate row being built (None where it has none)."""
    value = entry.get(key) if isinstance(entry, dict) else getattr(entry, key, None)
    return None if value is ABSENT else value


def drop_points(dense, entry, key: str = "test_accuracy", *, task: Task = DEFAULT_TASK) -> float | None:
    """The budget's points (``Task.drop_points``) ``entry`` (a Round or a row) lost against ``dense``."""
    if score(dense, key) is None or score(entry, key) is None:
        return None
    return task.drop_points(score(dense, key), score(entry, key))


def aggregate_rounds(per_seed: dict[int, list[Round]], *, task: Task = DEFAULT_TASK) -> list[Round]:
    """Round r averaged over every seed that has finished it."""
    longest = max((len(rounds) for rounds in per_seed.values()), default=0)
    rounds = []
    for index in range(longest):
        entries = [seed_rounds[index].to_json() for seed_rounds in per_seed.values() if len(seed_rounds) > index]
        rounds.append(Round.from_json(aggregate(entries)))
    return [entry.replace(test_drop_points=drop_points(rounds[0], entry, task=task)) for entry in rounds]


def compare_resets(settings: PruneSettings, per_seed: dict[int, list[Round]], dense: Round, *,
                   task: Task = DEFAULT_TASK) -> dict | None:
    """The final round's reset next to its controls, averaged over seeds, with the winner by the
    task's validation score."""
    finals = {seed: rounds[-1] for seed, rounds in per_seed.items() if len(rounds) == settings.rounds + 1}
    if not finals or len(finals) != len(per_seed):
        return None
    results: dict[str, list[tuple[int, dict]]] = {reset_label(settings.reset): [(seed, entry) for seed, entry in finals.items()]}
    for seed, entry in finals.items():
        for control, entry_control in (entry.controls or {}).items():
            results.setdefault(CONTROL_RESETS[control], []).append((seed, entry_control))
    comparison = {}
    for name, pairs in results.items():
        if len(pairs) != len(finals):
            continue
        summary = aggregate([{key: score(value, key) for key in ACCURACIES} for _, value in pairs])
        summary.pop("seeds", None)
        summary["test_drop_points"] = drop_points(dense, summary, task=task)
        summary["per_seed"] = {str(seed): {key: score(value, key) for key in ACCURACIES} for seed, value in pairs}
        comparison[name] = summary
    if len(comparison) < 2:
        return comparison or None
    comparison["winner"] = _best(comparison, "val_accuracy", task)
    comparison["winner_by_test"] = _best(comparison, "test_accuracy", task)
    return comparison


def _best(comparison: dict, key: str, task: Task) -> str | None:
    scored = [(task.rank(value[key]), name) for name, value in comparison.items()
              if isinstance(value, dict) and value.get(key) is not None]
    return max(scored)[1] if scored else None


def first_drop(rounds: list[Round], threshold: float, *, task: Task = DEFAULT_TASK) -> dict:
    """Where the mean test score first falls more than ``threshold`` budget points below dense."""
    result = {"threshold_points": threshold, "first_round_beyond": None, "weights_remaining": None,
              "last_round_within": 0 if rounds else None}
    for entry in rounds[1:]:
        if entry.test_drop_points not in (None, ABSENT) and not task.within_budget(entry.test_drop_points, threshold):
            result["first_round_beyond"] = entry.round
            result["weights_remaining"] = entry.weights_remaining
            break
        result["last_round_within"] = entry.round
    return result


# What lottery.json's "dense" block repeats of round 0.
DENSE_KEYS = ("params", "nonzero_params", "flops", "val_accuracy", "test_accuracy", "val_accuracy_std",
              "test_accuracy_std", "widths", "path")


def build_record(settings: PruneSettings, *, rate: float, seeds: list[int], per_seed: dict[int, list[Round]],
                 prunable: list[str], unprunable: dict[str, str], complete: bool, ticket: dict | None = None,
                 extra: dict | None = None, task: Task = DEFAULT_TASK) -> LotteryRecord:
    """``extra``: the run-level fields (``run_dir``, ``random_init_seed_offset``, ``data``); ``task``:
    the data's (drops are in its budget points)."""
    rounds = aggregate_rounds(per_seed, task=task)
    dense = rounds[0].to_json() if rounds else {}
    record = LotteryRecord(
        schema_version=SCHEMA_VERSION,
        mode=settings.mode,
        complete=complete,
        settings=settings.to_dict(),
        rate=rate,
        target=settings.target,
        seeds=list(seeds),
        dense={key: dense[key] for key in DENSE_KEYS if key in dense},
        prunable=list(prunable),
        unprunable=[{"layer": layer, "reason": reason} for layer, reason in unprunable.items()],
        rounds=rounds,
        accuracy_drop=first_drop(rounds, settings.max_drop if settings.max_drop is not None else DEFAULT_DROP_POINTS,
                                 task=task),
        ticket=ticket,
        resets=compare_resets(settings, per_seed, rounds[0], task=task) if complete and rounds else None,
        **({"per_seed": {str(seed): [entry.to_json() for entry in rounds_] for seed, rounds_ in per_seed.items()}}
           if len(per_seed) > 1 else {}),
        **(extra or {}),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=environment.library_versions(),
    )
    # The ticket, resets, drop and candidates are built as rows; read back, each block is its record.
    return LotteryRecord.from_json(record.to_json())
