"""Which ticket each prune chose, in words: the candidate, its reset, the budget it met on
validation and the other resets at its size (lottery.json's ``ticket`` and ``candidates``)."""

from __future__ import annotations

from slimdeploy.records.lottery import Candidate, LotteryRecord, Ticket
from slimdeploy.report import facts
from slimdeploy.report.load import ReportInputs
from slimdeploy.tasks import DEFAULT_TASK, Task

RESET_WORDS = {"init": "θ0", "finetune": "fine-tuning", "random": "random re-initialisation (control)"}
KIND_WORDS = {"search": "width-search step", "aligned": "aligned widths"}


def reset_words(reset: str | None) -> str:
    reset = str(reset or "init")
    if reset.startswith("rewind:"):
        return f"rewinding to step {reset.split(':', 1)[1]}"
    return RESET_WORDS.get(reset, reset)


def candidate_words(row: Candidate) -> str:
    """``round_5`` -> "round 5"; ``control_finetune`` -> "round 5 control"; ``search_2`` -> "width-search step 2"."""
    if row.kind in ("round", "control"):
        return f"round {facts.present(row.round)}" + (" control" if row.kind == "control" else "")
    return f"{KIND_WORDS.get(row.kind, facts.present(row.kind))} {str(row.name or '').rsplit('_', 1)[-1]}"


def widths_text(widths) -> str:
    return "-".join(f"{w:.0f}" for w in widths or [])


def _kept(mode: str, ticket: Ticket) -> str:
    what = "Dense parameters" if mode == "structured" else "prunable weights"
    return f"{ticket.weights_remaining * 100:.1f}% of the {what}"


def ticket_sentence(mode: str, lottery: LotteryRecord, task: Task = DEFAULT_TASK) -> str | None:
    """One sentence: which candidate is the ticket, how it was trained, and why it won."""
    ticket = lottery.ticket
    if not ticket or not ticket.candidate:  # files from before candidates were recorded
        return None
    budget = facts.present(ticket.max_drop)
    # Unstructured pruning keeps every unit: its widths say nothing about what was pruned.
    shape = f"widths {widths_text(ticket.widths)}, " if mode == "structured" else ""
    where = f"{candidate_words(ticket)}, {shape}{_kept(mode, ticket)}, trained by {reset_words(ticket.reset)}"
    accuracy = _accuracy_pair(ticket.val_accuracy, lottery.dense.val_accuracy, task)
    if budget is None or facts.present(ticket.within_budget) is None:
        why = (f"no {task.metric_label} budget was given" if budget is None
               else "no validation set to judge the budget on")
        chosen = f"the final round ({why}); validation {accuracy}"
    elif ticket.within_budget:
        chosen = (f"chosen on validation as the most-pruned candidate within {task.format_points(budget)} of dense "
                  f"({accuracy})")
    else:
        chosen = (f"no candidate came within {budget:g} validation {task.budget_unit} of dense; this is the closest "
                  f"({accuracy}), and it is outside the budget")
    others = ticket.same_size_alternatives or {}
    losing = "; ".join(f"{reset_words(reset)} {facts.fmt_score(task, value.get('val_accuracy'))}"
                       for reset, value in others.items() if value.get("val_accuracy") is not None)
    alternatives = f" At the same size, on validation: {losing}." if losing else ""
    test = _accuracy_pair(ticket.test_accuracy, lottery.dense.test_accuracy, task)
    return (f"{mode.capitalize()} ticket: {where}; {chosen}.{alternatives} Test {task.metric_label} {test}.")


def _accuracy_pair(value, base, task: Task) -> str:
    value, base = facts.number(value), facts.number(base)
    if value is None or base is None:
        return "not measured"
    return (f"{facts.fmt_score(task, value)} vs {facts.fmt_score(task, base)} for dense, "
            f"{task.format_points(task.points(value - base), '+.2f')}")


def ticket_sentences(inputs: ReportInputs) -> list[str]:
    sentences = [ticket_sentence(mode, lottery, inputs.task)
                 for mode, lottery in sorted(inputs.lotteries.items(), key=lambda kv: facts.model_order(kv[0]))]
    return [s for s in sentences if s]


def candidate_headers(task: Task = DEFAULT_TASK) -> list[str]:
    metric = task.metric_label
    return ["Candidate", "Trained by", "Widths", "Kept", f"Validation {metric}", f"Δ validation ({task.budget_unit})",
            f"Test {metric}", "Verdict"]


def candidate_rows(lottery: LotteryRecord, task: Task = DEFAULT_TASK) -> list[list[str]]:
    """The candidates table of one prune (empty for files from before candidates were recorded)."""
    rows = []
    for row in lottery.candidates or []:
        drop = facts.number(row.val_drop_points)
        rows.append([candidate_words(row), reset_words(row.reset), widths_text(row.widths),
                     facts.fmt_pct(row.weights_remaining), facts.fmt_score(task, row.val_accuracy),
                     "–" if drop is None else f"{-drop:+.2f}", facts.fmt_score(task, row.test_accuracy), str(row.why or "")])
    return rows
