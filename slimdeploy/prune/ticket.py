"""Choosing the ticket among candidates (``records.lottery.Candidate``, averaged over seeds):
``round_K``, ``control_finetune``, ``search_K`` (widths bisected between the ticket and the next
more-pruned candidate outside the budget), ``aligned_rN`` (the ticket's widths rounded down to
multiples of N, benchmarked beside it, never the ticket) and ``control_random`` (never the ticket).

With a budget, the ticket is the most-pruned eligible candidate whose validation score is within
``max_drop`` of dense (``Task.drop_points``), the better one winning at equal size; else the final round.
"""

from __future__ import annotations

import dataclasses

from slimdeploy.prune.summary import aggregate, drop_points
from slimdeploy.records.base import ABSENT, present
from slimdeploy.records.lottery import Candidate, LotteryRecord, Round, Ticket
from slimdeploy.tasks import DEFAULT_TASK, Task

ROUND, CONTROL, SEARCH, ALIGNED = "round", "control", "search", "aligned"
# Kinds that may become the ticket; the random-init control is left out by name.
ELIGIBLE_KINDS = (ROUND, CONTROL, SEARCH)
RANDOM_CONTROL = "control_random"
# What a candidate keeps of its averaged rounds (besides name, kind, reset, round and the verdicts).
KEPT_FIELDS = ("widths", "params", "nonzero_params", "params_fraction", "flops", "nonzero_flops", "weights_remaining",
               "val_accuracy", "val_accuracy_std", "test_accuracy", "test_accuracy_std", "path")
_FIELDS = {field.name for field in dataclasses.fields(Candidate)}


def aligned_name(multiple: int) -> str:
    return f"aligned_r{multiple}"


def aligned_multiple(name: str) -> int:
    return int(name.rsplit("_r", 1)[1])


def candidate_row(name: str, kind: str, reset: str, round_index: int | None, entries: list[Round], dense,
                  max_drop: float | None, *, task: Task = DEFAULT_TASK) -> Candidate:
    """One candidate: its seeds' rounds averaged, with the budget verdict against ``dense``."""
    mean = aggregate(entries)
    kept = {key: getattr(mean, key) for key in KEPT_FIELDS}
    val_drop = drop_points(dense, mean, "val_accuracy", task=task)
    return Candidate(
        name=name, kind=kind, reset=reset, round=round_index, **{k: v for k, v in kept.items() if k in _FIELDS},
        val_drop_points=val_drop, test_drop_points=drop_points(dense, mean, "test_accuracy", task=task),
        eligible=kind in ELIGIBLE_KINDS and name != RANDOM_CONTROL,
        within_budget=None if max_drop is None or val_drop is None else task.within_budget(val_drop, max_drop),
        # Scores' spreads ride in extra until Candidate has fields for them.
        extra={k: v for k, v in kept.items() if k not in _FIELDS and v is not ABSENT})


def _ticket(row: Candidate, reason: str) -> Ticket:
    return Ticket(**{field.name: getattr(row, field.name) for field in dataclasses.fields(row)}, reason=reason)


def choose(rows: list[Candidate], max_drop: float | None, final_round: int, main_reset: str, *,
           task: Task = DEFAULT_TASK) -> Ticket | None:
    """The ticket among ``rows``, with the reason it won."""
    eligible = [row for row in rows if row.eligible]
    if not eligible:
        return None
    if max_drop is None or all(row.within_budget is None for row in eligible):
        final = next((row for row in eligible if row.kind == ROUND and row.round == final_round), eligible[-1])
        why = "final round" if max_drop is None else "final round (no validation set to compare against the budget)"
        return _ticket(final, f"{why}, reset {main_reset}")
    within = [row for row in eligible if row.within_budget]
    if within:
        best = min(within, key=lambda row: (row.weights_remaining, -task.rank(row.val_accuracy)))
        return _ticket(best, f"most-pruned candidate with validation {task.metric_label} within "
                             f"{task.format_points(max_drop)} of dense "
                             f"(reset {best.reset}, the best validation {task.metric_label} at its size)")
    best = max(eligible, key=lambda row: (task.rank(row.val_accuracy), -row.weights_remaining))
    return _ticket(best, f"no candidate within {max_drop:g} validation {task.budget_unit} of dense; the closest: "
                         f"the {task.best_word} validation {task.metric_label}")


def search_bounds(rows: list[Candidate], ticket: Candidate | None) -> Candidate | None:
    """The other end of the width search: the least-pruned eligible candidate more pruned than
    ``ticket`` and outside the budget (None: nothing to search)."""
    if ticket is None or not ticket.within_budget:
        return None
    outside = [row for row in rows if row.eligible and row.within_budget is False
               and row.weights_remaining < ticket.weights_remaining]
    return max(outside, key=lambda row: row.weights_remaining) if outside else None


def same_size_alternatives(rows: list[Candidate], ticket: Candidate) -> dict:
    """The other candidates of the ticket's size (the losing resets), by reset name."""
    return {row.reset: {"name": row.name, "val_accuracy": present(row.val_accuracy),
                        "test_accuracy": present(row.test_accuracy)}
            for row in rows if row.name != ticket.name and row.widths == ticket.widths
            and row.kind in (ROUND, CONTROL) and row.weights_remaining == ticket.weights_remaining}


def verdicts(rows: list[Candidate], ticket: Candidate | None, *, task: Task = DEFAULT_TASK) -> list[Candidate]:
    """``rows``, each with ``why`` it is or is not the ticket."""
    out = []
    for row in rows:
        if ticket is not None and row.name == ticket.name:
            why = "the ticket"
        elif row.name == RANDOM_CONTROL:
            why = "control: a fresh random initialisation, never a ticket"
        elif row.kind == ALIGNED:
            why = "aligned widths: benchmarked beside the ticket, never the ticket"
        elif row.within_budget is False:
            why = f"outside the budget ({row.val_drop_points:.2f} validation {task.budget_unit} below dense)"
        elif ticket is not None and row.weights_remaining > ticket.weights_remaining:
            why = "within the budget, less pruned than the ticket"
        elif ticket is not None and row.weights_remaining == ticket.weights_remaining:
            why = f"the ticket's size, {task.worse_word} validation {task.metric_label}"
        else:
            why = "not chosen"
        out.append(row.replace(why=why))
    return out


def ticket_entry(lottery: LotteryRecord, *, final_round_otherwise: bool = False) -> Ticket | Round | None:
    """The ticket's sizes and scores: the ticket itself where it records them (a candidate), else the
    round it names (older records); with ``final_round_otherwise`` the last round when none is named."""
    ticket = lottery.ticket
    if ticket and ticket.candidate and ticket.widths not in (None, ABSENT):
        return ticket
    chosen = present(ticket.round) if ticket else None
    named = next((r for r in lottery.rounds if chosen is not None and r.round == chosen), None)
    return lottery.rounds[-1] if named is None and final_round_otherwise and lottery.rounds else named
