"""The terminal view of bench results: one row per comparison, with its verdict."""

from __future__ import annotations

from rich import box
from rich.table import Table

from slimdeploy.bench import stats
from slimdeploy.records.base import ABSENT
from slimdeploy.records.bench import BenchResults, Cell
from slimdeploy.runtimes.registry import short_name

VERDICT_STYLE = {stats.FASTER: "bold green", stats.SLOWER: "bold red", stats.NO_DIFFERENCE: "yellow"}
VERDICT_SHORT = {stats.NO_DIFFERENCE: "no sig. diff."}


def _ms(value: float) -> str:
    return f"{value * 1000:.0f}µs" if value < 1 else f"{value:.3g}ms"


def verdict_table(results: BenchResults, width: int = 120) -> Table:
    """The comparisons as a table; below 100 columns the two p50 columns are left out. Where
    some comparison has another baseline than the rest (INT8 stacking), a "vs" column names
    each row's baseline; rows come by batch, then by question, variants side by side."""
    comparisons = results.comparisons
    show_p50 = width >= 100
    several_threads = len({c.threads for c in comparisons}) > 1
    several_baselines = len({c.baseline for c in comparisons}) > 1
    title = "speedup = median over interleaved rounds of baseline / model, 95% interval; ideal = FLOP ratio; * unstable"
    if any(c.ideal_assumes for c in comparisons):
        title += "; int8: ideal assumes no INT8 speedup"
    columns = ["rt", "batch:r", *(["thr:r"] if several_threads else []), "model", *(["vs"] if several_baselines else []),
               *(["base p50:r", "p50:r"] if show_p50 else []), "speedup:r", "interval:r", "ideal:r", "eff.:r", "verdict"]
    table = _table(title, columns)
    for c in comparisons:
        table.add_row(short_name(c.runtime), str(c.batch), *([str(c.threads)] if several_threads else []),
                      c.model + ("*" if c.unstable else ""), *([c.baseline] if several_baselines else []),
                      *([_ms(c.baseline_p50_ms), _ms(c.model_p50_ms)] if show_p50 else []),
                      f"{c.speedup:.2f}x", f"[{c.ci_low:.2f},{c.ci_high:.2f}]",
                      f"{c.ideal_speedup:.1f}x" if c.ideal_speedup else "–",
                      f"{c.efficiency:.0%}" if c.efficiency else "–",
                      f"[{VERDICT_STYLE.get(c.verdict, '')}]{VERDICT_SHORT.get(c.verdict, c.verdict)}[/]")
    return table


def _table(title: str, columns: list[str]) -> Table:
    """A table of ``columns`` ("name", or "name:r" right-justified)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for column in columns:
        name, _, right = column.partition(":")
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    return table


def latency_table(results: BenchResults) -> Table:
    """Every measured cell's latency and throughput: the view when there is nothing to compare."""
    table = _table("latency per call (p50, p90) and throughput; * unstable",
                   ["rt", "batch:r", "thr:r", "model", "p50:r", "p90:r", "items/s:r"])
    for c in results.cells:
        if c.ok:
            table.add_row(short_name(c.runtime), str(c.batch), str(c.threads), c.model + ("*" if c.unstable else ""),
                          _ms(c.stats.p50_ms), _ms(c.stats.p90_ms), f"{c.stats.throughput_per_s:,.0f}")
    return table


def sparse_int8_lines(results: BenchResults) -> list[str]:
    """Whether OpenVINO's sparse int8 kernels were tried, and which kernel each sparse cell got."""
    sparse = results.sparse_int8
    if not sparse or not any(info.precision == "int8" for info in results.models.values()):
        return []
    if not sparse.applicable:
        return [f"sparse int8: not benched — {sparse.reason or None}"]
    twins = sparse.models or []
    lines = [f"sparse int8: {', '.join(twins) or 'no int8 variant of a model with zeros'} "
             f"(rate {sparse.rate or None}; {sparse.reason or None})"]
    for cell in results.cells:
        if cell.kernels and cell.model in twins:
            sparse_count = sum(1 for k in cell.kernels if k.sparse)
            kinds = ", ".join(sorted({k.exec_type for k in cell.kernels}))
            lines.append(f"{cell.id}: {sparse_count} of {len(cell.kernels)} weight layers ran a sparse kernel ({kinds})")
    return lines


def problem_lines(results: BenchResults) -> list[str]:
    lines = sparse_int8_lines(results)
    lines += [f"{name}: unavailable — {info.reason or None}" for name, info in results.runtimes.items() if not info.available]
    unstable = [c for c in results.cells if c.ok and c.unstable]
    if unstable:
        lines.append(unstable_line(unstable))
    for cell in results.cells:
        if cell.status == "error":
            lines.append(f"{cell.id}: error — {cell.error}")
        cross = cell.crosscheck
        if cross and cross.status == "ok" and cross.ratio not in (None, ABSENT):
            ours = cross.engine_median_ms or cross.wall_median_ms
            lines.append(f"{cell.id}: crosscheck engine median {_ms(ours)} vs benchmark_app {_ms(cross.median_ms)} "
                         f"({cross.ratio:.2f}x{'' if cross.agrees else ', DISAGREES'})")
        elif cross and cross.status == "error":
            lines.append(f"{cell.id}: crosscheck failed — {cross.error}")
    return lines


def unstable_line(unstable: list[Cell]) -> str:
    """What the unstable cells have in common, with the worst one's evidence. Files before
    round stability flagged cells by per-call CV; they are described as such."""
    judged = [c for c in unstable if c.stability]
    if not judged:
        worst = max(unstable, key=lambda c: c.stats.cv)
        return (f"{len(unstable)} cells unstable (by per-call cv, an older bench.json; worst {worst.id} cv "
                f"{worst.stats.cv:.0%}): rerun on a quiet machine before trusting small differences")
    worst = max(judged, key=lambda c: max(c.stability.round_spread or 0.0, c.stability.process_spread or 0.0))
    return (f"{len(unstable)} cells unstable (their interleaved rounds disagreed: round or process spread > "
            f"{worst.stability.threshold:.0%}; worst {worst.id} {stats.stability_words(worst.stability)}): "
            "the machine's speed changed while they ran; comparisons pair rounds so drift cancels, "
            "but rerun on a quiet machine before trusting their absolute latencies or small differences")
