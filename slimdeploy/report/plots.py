"""The pictures: speedup vs ideal, latency vs batch, the lottery-ticket curve, the task's score vs
latency, the time split, speedup per machine (a merged report). Scores are drawn in percent.

matplotlib's object API (no pyplot, no display, no global state), so plotting works headless and
in threads. Each function returns PNG bytes, or None when its data is missing.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict

from slimdeploy.records.bench import Cell, Comparison
from slimdeploy.records.lottery import LotteryRecord
from slimdeploy.report import facts
from slimdeploy.runtimes.session import is_matmul
from slimdeploy.tasks import DEFAULT_TASK, Task

MODEL_COLORS = {"dense": "#4d4d4d", "structured": "#1f77b4", "unstructured": "#ff7f0e"}
EXTRA_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def model_color(name: str, _cache: dict = {}) -> str:  # noqa: B006 - a deliberate per-process palette
    if name in MODEL_COLORS:
        return MODEL_COLORS[name]
    if name not in _cache:
        _cache[name] = EXTRA_COLORS[len(_cache) % len(EXTRA_COLORS)]
    return _cache[name]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # lazy: heavy

    return Figure(figsize=(width, height), layout="constrained")


def _grid(count: int, column_width: float, extra_width: float, row_height: float, extra_height: float):
    """A figure of ``count`` panels, up to 3 a row (the cells left over hidden), and its axes."""
    columns = min(count, 3)
    rows = -(-count // columns)
    fig = _figure(column_width * columns + extra_width, row_height * rows + extra_height)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in list(axes.flat)[count:]:
        ax.set_visible(False)
    return fig, axes


def _png(fig, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": "slimdeploy (matplotlib)"})
    return buffer.getvalue()


def speedup_plot(comparisons: list[Comparison], dpi: int = 110) -> bytes | None:
    """Measured speedup (bars, 95% interval) beside the ideal FLOP ratio, per runtime and batch."""
    if not comparisons:
        return None
    threads, mode = facts.varying(comparisons, "threads"), facts.varying(comparisons, "mode")
    models = sorted({c.model for c in comparisons}, key=facts.model_order)
    varied = {rt for rt in {c.runtime for c in comparisons}
              if facts.varying([c for c in comparisons if c.runtime == rt], "settings")}
    slots = sorted({_slot(c) for c in comparisons})
    index = {slot: i for i, slot in enumerate(slots)}
    width = 0.8 / len(models)
    fig = _figure(max(6.0, 1.0 + 0.55 * len(slots) * len(models)), 4.6)
    ax = fig.add_subplot()
    top = 1.0
    for k, model in enumerate(models):
        mine = [c for c in comparisons if c.model == model]
        xs = [index[_slot(c)] - 0.4 + width * (k + 0.5) for c in mine]
        ideal = [c.ideal_speedup for c in mine]
        if any(v is not None for v in ideal):
            ax.bar([x for x, v in zip(xs, ideal) if v is not None], [v for v in ideal if v is not None], width * 0.92,
                   fill=False, edgecolor=model_color(model), linestyle="--", linewidth=1.2,
                   label=f"{model}: ideal (FLOP ratio)")
            top = max([top] + [v for v in ideal if v is not None])
        speedups = [c.speedup for c in mine]
        low = [c.speedup - c.ci_low if c.ci_low is not None else 0 for c in mine]
        high = [c.ci_high - c.speedup if c.ci_high is not None else 0 for c in mine]
        ax.bar(xs, speedups, width * 0.92, color=model_color(model), alpha=0.85, yerr=[low, high], capsize=3,
               label=f"{model}: measured (95% interval)")
        for x, value in zip(xs, speedups):
            ax.annotate(f"{value:.1f}x", (x, value), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)
        top = max([top] + [c.ci_high or c.speedup for c in mine])
    ax.axhline(1.0, color="black", linewidth=0.9, label="1x: same speed as dense")
    labels = [f"{facts.runtime_name(runtime)}\nbatch {batch}" + (f", {thread_count}t" if threads else "")
              + (f"\n{mode_name}" if mode else "") + (f"\n{options}" if runtime in varied and options else "")
              for runtime, thread_count, mode_name, options, batch in slots]
    ax.set_xticks(range(len(slots)), labels, fontsize=8)
    ax.set(xlim=(-0.6, len(slots) - 0.4), ylim=(0, top * 1.18), ylabel="speedup over dense (×, higher is faster)",
           title="How much faster is the pruned model? Measured vs ideal speedup")
    fig.legend(fontsize=8, loc="outside lower center", ncol=min(3, 2 * len(models) + 1))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig, dpi)


MACHINE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def machine_speedup_plot(panels: list[dict], machines: list[str], dpi: int = 110) -> bytes | None:
    """Speedup per machine, grouped bars with their interval: one panel per compared pair
    (``title``: 'structured vs dense'), a group per runtime and batch (``slots``: their labels),
    a bar per machine (``bars``: machine -> per slot (speedup, low, high), or None: not measured)."""
    panels = [p for p in panels if p["slots"]]
    if not panels:
        return None
    widest = max(len(p["slots"]) for p in panels)
    width = min(0.8 / len(machines), 0.3)  # one slot of two machines should not look like a wall
    fig = _figure(max(7.0, 1.2 + 0.5 * widest * max(2, len(machines))), 3.4 * len(panels) + 0.8)
    axes = fig.subplots(len(panels), 1, squeeze=False)
    labelled: set[str] = set()
    for ax, panel in zip(axes.flat, panels):
        top = 1.0
        for k, machine in enumerate(machines):
            color = MACHINE_COLORS[k % len(MACHINE_COLORS)]
            points = [(i, bar) for i, bar in enumerate(panel["bars"].get(machine) or []) if bar is not None]
            if not points:
                continue
            xs = [i + width * (k - (len(machines) - 1) / 2) for i, _ in points]  # centred on the slot
            values = [bar[0] for _, bar in points]
            errors = [[max(0.0, bar[0] - bar[1]) for _, bar in points], [max(0.0, bar[2] - bar[0]) for _, bar in points]]
            ax.bar(xs, values, width * 0.92, color=color, alpha=0.85, yerr=errors, capsize=3,
                   label=None if machine in labelled else machine)  # one legend entry per machine
            labelled.add(machine)
            for x, (_, bar) in zip(xs, points):  # above the whisker, where it cannot hide it
                ax.annotate(f"{bar[0]:.2f}x", (x, max(bar)), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7)
            top = max([top] + [bar[2] for _, bar in points])
        ax.axhline(1.0, color="black", linewidth=0.9)
        ax.set_xticks(range(len(panel["slots"])), panel["slots"], fontsize=8)
        ax.set(xlim=(-0.6, len(panel["slots"]) - 0.4), ylim=(0, top * 1.2), ylabel="speedup (×)")
        ax.set_title(f"{panel['title']}: above 1, faster", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Speedup on each machine (whiskers: bootstrap interval), never averaged", fontsize=11)
    # Above the first panel, where reading starts (a legend under a tall stack of panels is found
    # last); on the axes, because a figure legend "outside upper" overlaps the suptitle.
    handles = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    axes.flat[0].legend(handles.values(), handles.keys(), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.1),
                        ncol=min(3, len(handles)), frameon=False)
    return _png(fig, dpi)


def _slot(c: Comparison) -> tuple:
    return (c.runtime, c.threads or 0, str(c.mode), facts.settings_text(c), c.batch)


def latency_plot(cells: list[Cell], dpi: int = 110) -> bytes | None:
    """Median latency per call vs batch size, one panel per runtime, dense vs pruned, log-log."""
    ok = [c for c in cells if c.ok]
    if not ok:
        return None
    runtimes = sorted({c.runtime for c in ok})
    threads, mode = facts.varying(ok, "threads"), facts.varying(ok, "mode")
    fig, axes = _grid(len(runtimes), 4.2, 0.4, 3.6, 0)
    for ax, runtime in zip(axes.flat, runtimes):
        lines: dict[tuple, list[dict]] = defaultdict(list)
        settings = facts.varying([c for c in ok if c.runtime == runtime], "settings")
        for c in ok:
            if c.runtime == runtime:
                lines[(c.model, c.threads, c.mode, facts.settings_text(c))].append(c)
        styles = ("-", "--", ":", "-.")
        seen_models: dict[str, int] = defaultdict(int)
        for (model, thread_count, mode_name, options), points in sorted(lines.items(), key=lambda kv: (facts.model_order(kv[0][0]), str(kv[0][1:]))):
            points.sort(key=lambda c: c.batch)
            batches = [c.batch for c in points]
            p50 = [facts.p50(c) for c in points]
            p99 = [facts.p50(c) if c.stats.p99_ms is None else c.stats.p99_ms for c in points]
            label = model + (f", {thread_count}t" if threads else "") + (f", {mode_name}" if mode else "") + (
                f", {options}" if settings and options else "")
            style = styles[seen_models[model] % len(styles)]
            seen_models[model] += 1
            ax.plot(batches, p50, style, marker="o", color=model_color(model), label=label)
            ax.fill_between(batches, p50, p99, color=model_color(model), alpha=0.15, linewidth=0)
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", title=facts.runtime_name(runtime), xlabel="batch size (images per call)",
               ylabel="latency per call (ms, log scale)")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8)
    fig.suptitle("Latency vs batch size, dense vs pruned (line: median; band: median to p99)")
    return _png(fig, dpi)


def lottery_plot(lotteries: dict[str, LotteryRecord], dense_accuracy: float | None, dpi: int = 110,
                 task: Task = DEFAULT_TASK) -> bytes | None:
    """The test score vs fraction of weights remaining per round, with both controls and the dense line."""
    series = []
    for mode, lottery in sorted(lotteries.items(), key=lambda kv: facts.model_order(kv[0])):
        rounds = [r for r in lottery.rounds if facts.number(r.weights_remaining)]
        rounds.sort(key=lambda r: -facts.number(r.weights_remaining))
        if rounds:
            series.append((mode, rounds, lottery))
    if not series:
        return None
    fig = _figure(7.6, 5.6)
    ax = fig.add_subplot()
    remaining_all = []
    for mode, rounds, lottery in series:
        color = model_color(mode)
        for key, label, style, marker in (
            ("ticket", f"{mode}: ticket (reset: {facts.reset_label((lottery.settings or {}).get('reset'))})", "-", "o"),
            ("random_init", f"{mode}: control, random re-init", "--", "x"),
            ("finetune", f"{mode}: control, fine-tune", ":", "s"),
        ):
            xs, ys, errs = [], [], []
            for r in rounds:
                record = r if key == "ticket" else (r.controls or {}).get(key)
                value = facts.number(record.test_accuracy) if record else None
                if value is None:
                    continue
                xs.append(facts.number(r.weights_remaining))
                ys.append(value * 100)
                errs.append((facts.number(record.test_accuracy_std) or 0.0) * 100)
            if xs:
                ax.errorbar(xs, ys, yerr=errs if any(errs) else None, linestyle=style, marker=marker,
                            color=color, label=label, capsize=2, markersize=5)
                remaining_all += xs
    # Each lottery trains its own dense model(s) over its seeds; one line when they agree.
    dense_lines = {mode: facts.number(lottery.dense.test_accuracy) for mode, _, lottery in series}
    dense_lines = {mode: value for mode, value in dense_lines.items() if value is not None}
    if len({round(v, 9) for v in dense_lines.values()}) > 1:
        for mode, value in dense_lines.items():
            ax.axhline(value * 100, color=model_color(mode), linewidth=1.0, linestyle="-.",
                       label=f"dense model, {mode} seeds ({value * 100:.2f}%)")
    else:
        value = next(iter(dense_lines.values()), dense_accuracy)
        if value is not None:
            ax.axhline(value * 100, color=MODEL_COLORS["dense"], linewidth=1.2, linestyle="-.",
                       label=f"dense model ({value * 100:.2f}%)")
    from matplotlib.ticker import FuncFormatter  # lazy: heavy

    ax.set_xscale("log")
    low = min(remaining_all)
    ax.set_xlim(1.15, low / 1.3)  # 100% on the left: pruning proceeds to the right
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:g}%"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xticks(_percent_ticks(low / 1.3, 1.15))
    ax.set(xlabel="weights remaining (% of the dense model's parameters, log scale)", ylabel=f"test {task.metric_label} (%)",
           title=f"{task.metric_title} vs weights remaining per pruning round (lottery-ticket curve)")
    ax.grid(True, which="both", alpha=0.25)
    fig.legend(fontsize=8, loc="outside lower center", ncol=2)
    return _png(fig, dpi)


def _percent_ticks(low: float, high: float) -> list[float]:
    """Round percentages for a log axis: dense enough to read, never overlapping."""
    fine = [1, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002, 0.001]
    coarse = [1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001]
    ticks = [t for t in fine if low <= t <= high]
    return ticks if len(ticks) <= 9 else [t for t in coarse if low <= t <= high]


def accuracy_latency_plot(panels: list[dict], dpi: int = 110, task: Task = DEFAULT_TASK) -> bytes | None:
    """The test score against median latency, one panel per runtime (``facts.accuracy_latency_panels``),
    with the budget line and the Pareto front."""
    panels = [p for p in panels if p["points"]]
    if not panels:
        return None
    fig, axes = _grid(len(panels), 4.6, 0.4, 4.0, 0.5)
    for ax, panel in zip(axes.flat, panels):
        points = sorted(panel["points"], key=lambda p: (p["p50_ms"], -task.rank(p["accuracy"])))
        for p in points:
            int8 = p["base"] != p["model"]
            ax.scatter(p["p50_ms"], p["accuracy"] * 100, s=46, color=model_color(p["base"]), marker="D" if int8 else "o",
                       facecolors="none" if int8 else model_color(p["base"]), linewidths=1.6, zorder=3)
            ax.annotate(p["model"], (p["p50_ms"], p["accuracy"] * 100), xytext=(7, _label_offset(p, points)),
                        textcoords="offset points", fontsize=8, va="center")
        front = pareto_front(points, task)
        ax.plot([p["p50_ms"] for p in front], [p["accuracy"] * 100 for p in front], "-", color="#2ca02c",
                linewidth=1.3, alpha=0.8, zorder=2, label=f"Pareto front (nothing both faster and {task.more_words})")
        if panel.get("budget") is not None:
            ax.axhline(panel["budget"] * 100, color="#d62728", linestyle="--", linewidth=1.1,
                       label=f"budget: dense − {task.format_points(panel['max_drop'])} ({task.format(panel['budget'])})")
        _plain_log_axis(ax)
        low, high = min(p["p50_ms"] for p in points), max(p["p50_ms"] for p in points)
        ax.set(xlim=(low / 1.5, high * 2.2),  # room for the labels on the right
               title=f"{panel['title']}, batch {panel['batch']}", xlabel="median latency per call (ms, log scale; left is faster)",
               ylabel=f"test {task.metric_label} in this runtime (%)")
        ax.grid(True, which="both", alpha=0.25)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, [label.split(" (")[0] if len(panels) > 1 and label.startswith("budget") else label for label in labels],
               fontsize=8, loc="outside lower center", ncol=2)
    fig.suptitle(f"{task.metric_title} vs latency: filled circles are float models, hollow diamonds their INT8 variants "
                 "(same colour)")
    return _png(fig, dpi)


def _label_offset(point: dict, points: list[dict]) -> float:
    """Vertical offset of a label: above or below when another model runs at nearly the same latency."""
    near = [p for p in points if p is not point and max(p["p50_ms"], point["p50_ms"]) / min(p["p50_ms"], point["p50_ms"]) < 1.25
            and abs(p["accuracy"] - point["accuracy"]) < 0.004]
    if not near:
        return 0.0
    return 6.0 if all(point["accuracy"] >= p["accuracy"] for p in near) else -6.0


def _plain_log_axis(ax) -> None:
    """Log x axis labelled 0.2, 0.5, 1, 2 ... rather than in powers of ten."""
    from matplotlib.ticker import FuncFormatter  # lazy: heavy

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""))


def pareto_front(points: list[dict], task: Task = DEFAULT_TASK) -> list[dict]:
    """The points no other point beats on both latency and the task's score, fastest first."""
    front: list[dict] = []
    for p in sorted(points, key=lambda p: (p["p50_ms"], -task.rank(p["accuracy"]))):
        if not front or task.rank(p["accuracy"]) > task.rank(front[-1]["accuracy"]):
            front.append(p)
    return front


OP_COLORS = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94")


def time_split_plot(stacks: dict[str, list[dict]], outside: str, dpi: int = 110) -> bytes | None:
    """Time per call by op type (``timesplit.stacks``), stacked, one panel per runtime: a bar per (batch, model)
    relative to dense's total at the same batch; ``outside`` (the time outside the layers) hatched."""
    stacks = {rt: bars for rt, bars in stacks.items() if bars}
    if not stacks:
        return None
    ops = sorted({op for bars in stacks.values() for bar in bars for op in bar["parts"]},
                 key=lambda op: (op == outside, not is_matmul(op), op))
    colors = {op: ("#dddddd" if op == outside else OP_COLORS[i % len(OP_COLORS)]) for i, op in enumerate(ops)}
    fig, axes = _grid(len(stacks), max(4.6, 0.75 * max(len(bars) for bars in stacks.values()) + 1.2), 0, 4.2, 0.6)
    for ax, (runtime, bars) in zip(axes.flat, sorted(stacks.items(), key=lambda kv: facts.runtime_name(kv[0]))):
        dense_total = {bar["batch"]: sum(bar["parts"].values()) for bar in bars if bar["model"] == facts.BASELINE}
        for x, bar in enumerate(bars):
            scale = 100.0 / (dense_total.get(bar["batch"]) or sum(bar["parts"].values()) or 1.0)
            bottom = 0.0
            for op in ops:
                height = bar["parts"].get(op, 0.0) * scale
                if height:
                    ax.bar(x, height, 0.7, bottom=bottom, color=colors[op], edgecolor="white", linewidth=0.5,
                           hatch="//" if op == outside else None)
                    bottom += height
        ax.set_xticks(range(len(bars)), [f"{bar['model']}\nbatch {bar['batch']}" for bar in bars], fontsize=7, rotation=30,
                      ha="right")
        ax.set(ylabel="time per call (% of dense's at that batch)", title=facts.runtime_name(runtime))
        ax.grid(axis="y", alpha=0.3)
    from matplotlib.patches import Patch  # lazy: heavy

    handles = [Patch(facecolor=colors[op], hatch="//" if op == outside else None,
                     label=op + (" (matmul)" if is_matmul(op) else "")) for op in ops]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncol=min(4, len(ops)))
    fig.suptitle("Where the time goes: time per call by op type (profiled pass), relative to dense")
    return _png(fig, dpi)
