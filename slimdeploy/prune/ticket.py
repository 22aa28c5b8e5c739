"""Choosing the ticket: every model a prune trained is a candidate, judged on its validation score
(the task's metric: accuracy for multiclass) within the budget, never on test.

Candidates (``lottery.json`` ``candidates``, averaged over seeds):

- ``round_K``: round K, trained from the prune's reset (θ0, rewind:K, ...);
- ``control_finetune``: the final round's architecture or mask fine-tuned from the round
  before it (when fine-tuning is itself the prune's reset, the rounds are that);
- ``search_K``: structured only, widths between the ticket and the next more-pruned candidate
  outside the budget, fine-tuned from the ticket (``lottery._search_widths``);
- ``aligned_rN``: structured only, the ticket's widths rounded down to multiples of N, fine-tuned
  from it: benchmarked beside the ticket as ``<mode>-rN``, never the ticket itself;
- ``control_random``: the random re-initialisation, a control that is never a ticket.

With a budget, the ticket is the most-pruned eligible candidate whose validation score is
within ``max_drop`` points of dense (``Task.drop_points``, ``Task.within_budget``); at equal size
the better validation score wins, which is how the winning reset is chosen. Without one
(``max_drop`` None) it is the final round. Field names (``val_accuracy``, ...) are lottery.json's.
"""

from __future__ import annotations

from slimdeploy.prune.record import aggregate, drop_points
from slimdeploy.records.base import ABSENT
from slimdeploy.records.lottery import LotteryRecord, Round, Ticket
from slimdeploy.tasks import DEFAULT_TASK, Task

ROUND, CONTROL, SEARCH, ALIGNED = "round", "control", "search", "aligned"
# Kinds that may become the ticket; the random-init control is left out by name.
ELIGIBLE_KINDS = (ROUND, CONTROL, SEARCH)
RANDOM_CONTROL = "control_random"


def aligned_name(multiple: int) -> str:
    """The candidate name of the ticket's widths rounded down to multiples of ``multiple``."""
    return f"aligned_r{multiple}"


def aligned_multiple(name: str) -> int:
    """``aligned_r8`` -> 8 (the inverse of ``aligned_name``)."""
    return int(name.rsplit("_r", 1)[1])


# The candidate fields lottery.json keeps (besides name, kind, reset, round and the verdicts).
KEPT_FIELDS = ("widths", "params", "nonzero_params", "params_fraction", "flops", "nonzero_flops", "weights_remaining",
               "val_accuracy", "val_accuracy_std", "test_accuracy", "test_accuracy_std", "path")


def candidate_row(name: str, kind: str, reset: str, round_index: int | None, entries: list[dict], dense: dict,
                  max_drop: float | None, *, task: Task = DEFAULT_TASK) -> dict:
    """One candidate's entry in ``lottery.json``: its measurements averaged over seeds and the budget verdict."""
    mean = aggregate(entries)
    row = {"name": name, "kind": kind, "reset": reset, "round": round_index,
           **{key: mean[key] for key in KEPT_FIELDS if key in mean}}
    row["val_drop_points"] = drop_points(dense, mean, "val_accuracy", task=task)
    row["test_drop_points"] = drop_points(dense, mean, "test_accuracy", task=task)
    row["eligible"] = kind in ELIGIBLE_KINDS and name != RANDOM_CONTROL
    row["within_budget"] = (None if max_drop is None or row["val_drop_points"] is None
                            else task.within_budget(row["val_drop_points"], max_drop))
    return row


def choose(rows: list[dict], max_drop: float | None, final_round: int, main_reset: str, *,
           task: Task = DEFAULT_TASK) -> dict | None:
    """The ticket among ``rows`` with the reason it won (a copy of its row, with ``reason``)."""
    eligible = [row for row in rows if row["eligible"]]
    if not eligible:
        return None
    if max_drop is None or all(row["within_budget"] is None for row in eligible):
        final = next((row for row in eligible if row["kind"] == ROUND and row["round"] == final_round), eligible[-1])
        why = "final round" if max_drop is None else "final round (no validation set to compare against the budget)"
        return {**final, "reason": f"{why}, reset {main_reset}"}
    within = [row for row in eligible if row["within_budget"]]
    if within:
        best = min(within, key=lambda row: (row["weights_remaining"], -task.rank(row["val_accuracy"])))
        return {**best, "reason": f"most-pruned candidate with validation {task.metric_label} within "
                                  f"{task.format_points(max_drop)} of dense "
                                  f"(reset {best['reset']}, the best validation {task.metric_label} at its size)"}
    best = max(eligible, key=lambda row: (task.rank(row["val_accuracy"]), -row["weights_remaining"]))
    return {**best, "reason": f"no candidate within {max_drop:g} validation {task.budget_unit} of dense; the closest: "
                              f"the {task.best_word} validation {task.metric_label}"}


def search_bounds(rows: list[dict], ticket: dict | None) -> dict | None:
    """The least-pruned eligible candidate that is more pruned than ``ticket`` and outside the
    budget: the other end of the width search (None when there is nothing to search)."""
    if ticket is None or not ticket.get("within_budget"):
        return None
    outside = [row for row in rows if row["eligible"] and row["within_budget"] is False
               and row["weights_remaining"] < ticket["weights_remaining"]]
    return max(outside, key=lambda row: row["weights_remaining"]) if outside else None


def same_size_alternatives(rows: list[dict], ticket: dict) -> dict:
    """The other candidates of the ticket's size (the losing resets), by reset name."""
    return {row["reset"]: {key: row.get(key) for key in ("name", "val_accuracy", "test_accuracy")}
            for row in rows if row["name"] != ticket["name"] and row.get("widths") == ticket.get("widths")
            and row["kind"] in (ROUND, CONTROL) and row["weights_remaining"] == ticket["weights_remaining"]}


def verdicts(rows: list[dict], ticket: dict | None, *, task: Task = DEFAULT_TASK) -> list[dict]:
    """``rows`` with ``why``: a short reason each candidate is or is not the ticket."""
    out = []
    for row in rows:
        if ticket is not None and row["name"] == ticket["name"]:
            why = "the ticket"
        elif row["name"] == RANDOM_CONTROL:
            why = "control: a fresh random initialisation, never a ticket"
        elif row["kind"] == ALIGNED:
            why = "aligned widths: benchmarked beside the ticket, never the ticket"
        elif row["within_budget"] is False:
            why = f"outside the budget ({row['val_drop_points']:.2f} validation {task.budget_unit} below dense)"
        elif ticket is not None and row["weights_remaining"] > ticket["weights_remaining"]:
            why = "within the budget, less pruned than the ticket"
        elif ticket is not None and row["weights_remaining"] == ticket["weights_remaining"]:
            why = f"the ticket's size, {task.worse_word} validation {task.metric_label}"
        else:
            why = "not chosen"
        out.append({**row, "why": why})
    return out


def ticket_entry(lottery: LotteryRecord, *, final_round_otherwise: bool = False) -> Ticket | Round | None:
    """The ticket's sizes and scores: the ticket itself where it records them (a candidate, which may
    be a control or a width-search step), else the round it names (older records); with
    ``final_round_otherwise`` the last round when none is named."""
    ticket = lottery.ticket
    if ticket and ticket.candidate and ticket.widths not in (None, ABSENT):
        return ticket
    chosen = ticket.round if ticket and ticket.round is not ABSENT else None
    named = next((r for r in lottery.rounds if chosen is not None and r.round == chosen), None)
    return lottery.rounds[-1] if named is None and final_round_otherwise and lottery.rounds else named
