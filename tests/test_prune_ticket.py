"""The ticket is chosen on validation within the accuracy budget (prune.ticket): the rules on
constructed candidates, then real prunes of the tiny run (width search, aligned widths, --round-to)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli_here
from slimdeploy.prune import ticket as rules
from slimdeploy.records.lottery import DenseSummary, LotteryRecord, Round
from slimdeploy.report import tickets


def row(name, kind, kept, val, reset="init", round_index=None, budget=0.5, dense_val=0.90):
    entry = Round(params=0, nonzero_params=0, params_fraction=kept, flops=0, nonzero_flops=0, weights_remaining=kept,
                  zero_weights=0, prunable_weights=0, widths=[int(kept * 100), 10], val_accuracy=val, test_accuracy=val)
    return rules.candidate_row(name, kind, reset, round_index, [entry],
                               DenseSummary(val_accuracy=dense_val, test_accuracy=dense_val), budget)


def test_most_pruned_within_budget_wins_and_the_better_reset_wins_at_equal_size():
    rows = [row("round_1", "round", 0.5, 0.899, round_index=1), row("round_2", "round", 0.25, 0.893, round_index=2),
            row("control_random", "control", 0.25, 0.899, reset="random", round_index=2),
            row("control_finetune", "control", 0.25, 0.897, reset="finetune", round_index=2)]
    chosen = rules.choose(rows, 0.5, 2, "init")
    # round_2 is 0.7 points below dense on validation: outside; fine-tuning at the same size is within.
    assert chosen.name == "control_finetune" and chosen.within_budget and chosen.reset == "finetune"
    assert rules.same_size_alternatives(rows, chosen) == {
        "init": {"name": "round_2", "val_accuracy": 0.893, "test_accuracy": 0.893},
        "random": {"name": "control_random", "val_accuracy": 0.899, "test_accuracy": 0.899}}
    verdicts = {r.name: r.why for r in rules.verdicts(rows, chosen)}
    assert verdicts["control_random"].startswith("control") and verdicts["round_2"].startswith("outside the budget")
    assert verdicts["round_1"] == "within the budget, less pruned than the ticket"


def test_the_random_control_and_aligned_widths_never_become_the_ticket():
    rows = [row("round_1", "round", 0.5, 0.80, round_index=1), row("control_random", "control", 0.5, 0.95, reset="random"),
            row("aligned_r8", "aligned", 0.4, 0.95, reset="finetune")]
    chosen = rules.choose(rows, 0.5, 1, "init")
    assert chosen.name == "round_1" and chosen.within_budget is False
    assert chosen.reason.startswith("no candidate within 0.5 validation points")


def test_search_runs_between_the_ticket_and_the_nearest_more_pruned_candidate_outside():
    rows = [row("round_1", "round", 0.5, 0.899, round_index=1), row("round_2", "round", 0.25, 0.85, round_index=2),
            row("round_3", "round", 0.12, 0.70, round_index=3)]
    ticket = rules.choose(rows, 0.5, 3, "init")
    assert ticket.name == "round_1" and rules.search_bounds(rows, ticket).name == "round_2"
    within_all = [row("round_1", "round", 0.5, 0.899, round_index=1), row("round_2", "round", 0.25, 0.898, round_index=2)]
    assert rules.search_bounds(within_all, rules.choose(within_all, 0.5, 2, "init")) is None


def test_without_a_budget_the_final_round_of_the_main_reset_is_the_ticket():
    rows = [row("round_1", "round", 0.5, 0.899, round_index=1, budget=None),
            row("round_2", "round", 0.25, 0.5, round_index=2, budget=None),
            row("control_finetune", "control", 0.25, 0.899, reset="finetune", round_index=2, budget=None)]
    assert rules.choose(rows, None, 2, "init").name == "round_2"


def _hidden_widths(path):
    from slimdeploy.models import dense_widths, load_model

    return dense_widths(load_model(path))[:-1]


def test_search_and_aligned_widths_on_a_real_prune(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    # Round 1 keeps 20% of the units, round 2 4%, each fine-tuned: a generous budget holds the first, not the
    # second (here: 12 and 35 validation points below dense).
    result = run_cli_here("prune", str(run_dir), "--mode", "structured", "--rounds", "2", "--rate", "0.8", "--epochs", "2",
                          "--reset", "trained", "--no-controls", "--max-drop", "20", "--search-steps", "2", "--aligned-widths", "5", "--quiet")
    assert result.returncode == 0, result.stderr
    lottery = json.loads((run_dir / "structured" / "lottery.json").read_text())
    rows = {r["name"]: r for r in lottery["candidates"]}
    dense_val = lottery["dense"]["val_accuracy"]
    for r in rows.values():  # the verdict is validation's, against the budget
        assert r["within_budget"] == ((dense_val - r["val_accuracy"]) * 100 <= 20 + 1e-9)
    ticket = lottery["ticket"]
    eligible_within = [r for r in rows.values() if r["eligible"] and r["within_budget"]]
    if eligible_within:
        assert ticket["weights_remaining"] == min(r["weights_remaining"] for r in eligible_within)
    assert _hidden_widths(run_dir / "structured" / "ticket.keras") == ticket["widths"][:-1]
    search = lottery["search"]
    if rows["round_1"]["within_budget"] and not rows["round_2"]["within_budget"]:
        assert search["ran"] and search["between"] == ["round_1", "round_2"] and search["steps"]
        lower, upper = rows["round_2"]["widths"], rows["round_1"]["widths"]
        for step in search["steps"]:  # every step lies strictly between the ends it started from
            assert all(lo <= w <= hi for lo, w, hi in zip(lower, step["widths"], upper)) and lower < step["widths"] < upper
            lower, upper = (lower, step["widths"]) if step["within_budget"] else (step["widths"], upper)
    else:
        assert not search["ran"] and search["reason"]
    aligned = run_dir / "structured" / "ticket-r5.keras"
    if any(w % 5 for w in ticket["widths"][:-1]):
        widths = _hidden_widths(aligned)
        assert all(w % 5 == 0 and w <= t for w, t in zip(widths, ticket["widths"])), widths
        assert rows["aligned_r5"]["kind"] == "aligned" and not rows["aligned_r5"]["eligible"]
    sentence = tickets.ticket_sentence("structured", LotteryRecord.from_json(lottery))
    assert sentence.startswith("Structured ticket: ") and "trained by fine-tuning" in sentence
    assert ("most-pruned candidate within 20 points of dense" if ticket["within_budget"] else "outside the budget") in sentence


def test_round_to_keeps_a_multiple_of_n_units(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    # --mode both: the structured prune rounds its units, the unstructured one is left as it is.
    result = run_cli_here("prune", str(run_dir), "--mode", "both", "--rounds", "1", "--rate", "0.7", "--epochs", "1",
                          "--no-controls", "--round-to", "8", "--quiet")
    assert result.returncode == 0, result.stderr
    # 300 * 0.3 = 90 -> 88, 150 * 0.3 = 45 -> 40.
    assert _hidden_widths(run_dir / "structured" / "round_1" / "model.keras") == [88, 40]
    assert json.loads((run_dir / "unstructured" / "lottery.json").read_text())["settings"]["round_to"] is None


@pytest.mark.parametrize("args, message", [
    (("--mode", "unstructured", "--round-to", "8"), "--round-to applies to --mode structured only"),
    (("--mode", "structured", "--round-to", "0"), "argument --round-to: expected a positive integer"),
    (("--mode", "structured", "--aligned-widths", "1"), "argument --aligned-widths: expected comma-separated integers"),
])
def test_bad_width_options_are_one_line_errors(tiny_run, tmp_path, args, message):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    result = run_cli_here("prune", str(run_dir), *args, "--quiet")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (run_dir / "unstructured").exists()
