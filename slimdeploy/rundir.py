"""The run directory's layout, spelled once (docs/ARCHITECTURE.md draws it): every module asks these
objects for a path instead of joining names itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODES = ("structured", "unstructured")
ALIGNED_MARK = "-r"  # structured-r8: the structured ticket's widths rounded down to multiples of 8
BENCH_FILE = "bench.json"  # in a run directory, or the working directory for artifact files


def aligned_model_name(mode: str, multiple: int) -> str:
    return f"{mode}{ALIGNED_MARK}{multiple}"


def aligned_source(name: str) -> str | None:
    """``structured-r8`` -> ``structured`` (the model it is an aligned copy of); None for other names."""
    head, mark, number = name.rpartition(ALIGNED_MARK)
    return head if mark and head and number.isdigit() else None


def _file(*parts: str) -> property:
    """A property: the object's directory (``path``) joined with ``parts``."""
    return property(lambda self: self.path.joinpath(*parts))


@dataclass(frozen=True)
class ExportDir:
    """Where export writes: a run's exports/, a lone model's exports/<stem>/, or --out."""

    path: Path
    manifest = _file("export.json")
    partial_manifest = _file("export.partial.json")  # what an interrupted export verified so far


@dataclass(frozen=True)
class ModelDir:
    """A directory holding one trained model and its metrics (dense/, round_K/, controls/NAME/)."""

    path: Path
    model = _file("model.keras")
    metrics = _file("metrics.json")
    history = _file("history.json")
    init_weights = _file("init.weights.h5")  # θ0: the weights before training (dense/ only)
    state = _file("state.npz")  # a round's pruning state (masks, widths) for resuming


@dataclass(frozen=True)
class SeedDir:
    """One training seed's pruning rounds (the mode directory itself for the run's own seed)."""

    path: Path

    @property
    def dense(self) -> ModelDir:
        """This seed's own dense model (only seeds other than the run's train one)."""
        return ModelDir(self.path / "dense")

    def round(self, k: int) -> ModelDir:
        return ModelDir(self.path / f"round_{k}")

    def control(self, name: str) -> ModelDir:
        return ModelDir(self.path / "controls" / name)

    def search(self, step: int) -> ModelDir:
        return ModelDir(self.path / "search" / f"step_{step}")

    def aligned(self, multiple: int) -> ModelDir:
        return ModelDir(self.path / "aligned" / f"r{multiple}")

    def rewind_weights(self, steps: int) -> Path:
        return self.path / f"rewind_{steps}.weights.h5"


@dataclass(frozen=True)
class ModeDir:
    """RUN_DIR/structured or RUN_DIR/unstructured."""

    path: Path
    lottery = _file("lottery.json")
    settings = _file("settings.json")
    ticket = _file("ticket.keras")

    def aligned_ticket(self, multiple: int) -> Path:
        """The ticket's widths rounded down to multiples of ``multiple``, fine-tuned (model ``<mode>-r<N>``)."""
        return self.path / f"ticket-r{multiple}.keras"

    def aligned_tickets(self) -> dict[int, Path]:
        """multiple -> file, for the aligned tickets this mode directory holds."""
        found = {}
        for path in self.path.glob("ticket-r*.keras"):
            number = path.name[len("ticket-r"):-len(".keras")]
            if number.isdigit():
                found[int(number)] = path
        return dict(sorted(found.items()))

    def seed(self, seed: int, run_seed: int) -> SeedDir:
        """The run's own training seed prunes in the mode directory; others in seed_S/."""
        return SeedDir(self.path if seed == run_seed else self.path / f"seed_{seed}")


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    path = property(lambda self: self.root)
    exports_dir = _file("exports")
    bench_json = _file(BENCH_FILE)
    report_dir = _file("report")
    run_record = _file("run.json")

    @property
    def dense(self) -> ModelDir:
        return ModelDir(self.root / "dense")

    @property
    def dense_model(self) -> Path:
        return self.dense.model

    @property
    def init_weights(self) -> Path:
        return self.dense.init_weights

    @property
    def dense_metrics(self) -> Path:
        return self.dense.metrics

    @property
    def export_manifest(self) -> Path:
        return ExportDir(self.exports_dir).manifest

    def mode(self, mode: str) -> ModeDir:
        return ModeDir(self.root / mode)

    def derived_paths(self) -> list[Path]:
        """What every stage after ``dense/`` wrote: it describes the dense model it was made from."""
        return [*(self.mode(mode).path for mode in MODES), self.exports_dir, self.bench_json, self.report_dir]

    def has_dense_model(self) -> bool:
        return self.dense_metrics.is_file() and self.dense_model.is_file()

    def relative(self, path: Path) -> str:
        """``path`` as recorded in the run's files: relative to the run directory when inside it."""
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)
