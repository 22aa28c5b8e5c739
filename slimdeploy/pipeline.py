"""`slimdeploy run`: train -> prune (both modes) -> export -> bench -> report in one run
directory, resumable stage by stage.

The whole configuration is one TOML document with a table per stage; every table is a
stage's settings dataclass, so defaults live with the stage and `--print-config` shows
them. Finished stages are recorded in ``RUN_DIR/run.json``; ``--resume`` skips them and
lets the unfinished stage resume its own work (pruning rounds, benchmark cells).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimdeploy import environment, fsutil
from slimdeploy.config import settings_from_table
from slimdeploy.errors import UserError

SCHEMA_VERSION = 1
PRUNE_MODES = ("structured", "unstructured")


@dataclass
class TrainStage:
    recipe: str = "fashion_mlp"
    epochs: int | None = None
    seed: int | None = None
    limit: int | None = None
    data: str | None = None

    def validate(self) -> "TrainStage":
        from slimdeploy.config import check_recipe_data, load_recipe

        for key, low in (("epochs", 1), ("seed", 0), ("limit", 2)):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise UserError(f"[train] {key} must be an integer >= {low}, got {value!r}")
        if self.data is not None and not Path(self.data).expanduser().exists():
            raise UserError(f"[train] data {self.data}: no such file or directory")
        check_recipe_data(load_recipe(self.recipe), self.data)  # fails now, not after the run directory exists
        return self


def _stage_classes() -> dict[str, type]:
    from slimdeploy.bench.settings import BenchSettings
    from slimdeploy.export.settings import ExportSettings
    from slimdeploy.prune.settings import PruneSettings
    from slimdeploy.report.settings import ReportSettings

    return {"train": TrainStage, "prune": PruneSettings, "export": ExportSettings, "bench": BenchSettings, "report": ReportSettings}


# What `--quick` changes: small enough for CI (a few minutes on 2 cores), yet every stage
# runs for real on real data and the structured ticket is still small enough to be faster.
QUICK_PROFILE: dict[str, dict[str, Any]] = {
    "train": {"epochs": 3, "limit": 20000},
    "prune": {"rounds": 2, "target": 0.1, "controls": False},
    "bench": {"batches": [1, 64], "min_iters": 50, "min_time": 0.3},
}

# The default workload: the article's model; pruned to about a tenth so the
# question "is a small ticket faster?" has a clear answer.
DEFAULT_PROFILE: dict[str, dict[str, Any]] = {
    "prune": {"target": 0.1},
}


@dataclass
class RunConfig:
    name: str = "article"
    runs_dir: str = "runs"
    modes: list[str] = field(default_factory=lambda: list(PRUNE_MODES))
    stages: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def to_dict(self) -> dict:
        tables = {key: _plain(dataclasses.asdict(value)) for key, value in self.stages.items()}
        tables["prune"].pop("mode", None)  # set per stage from `modes`
        return {"name": self.name, "runs_dir": self.runs_dir, "modes": list(self.modes), **tables}


def build_config(config_file: str | None = None, quick: bool = False, name: str | None = None) -> RunConfig:
    classes = _stage_classes()
    raw: dict[str, Any] = fsutil.read_toml(config_file, "config") if config_file else {}
    unknown = sorted(set(raw) - set(classes) - {"name", "runs_dir", "modes"})
    if unknown:
        raise UserError(f"config {config_file}: unknown table(s) or key(s): {', '.join(unknown)} (see `slimdeploy run --print-config`)")
    stages = {}
    for key, cls in classes.items():
        merged = {**DEFAULT_PROFILE.get(key, {}), **(QUICK_PROFILE.get(key, {}) if quick else {})}
        table = raw.get(key, {})
        if not isinstance(table, dict):
            raise UserError(f"config {config_file}: [{key}] must be a table")
        if key == "prune" and "mode" in table:
            raise UserError(f"config {config_file}: [prune] takes no 'mode'; list the modes to run in the top-level 'modes'")
        merged.update(table)
        stages[key] = settings_from_table(cls, merged, f"config {config_file or '(defaults)'} [{key}]")
    export_table = raw.get("export", {})
    if "profile_batches" not in export_table:
        # A TensorRT engine's optimization profile must cover the batch sizes benchmarked.
        stages["export"] = dataclasses.replace(stages["export"], profile_batches=list(stages["bench"].batches))
    modes = raw.get("modes", list(PRUNE_MODES))
    if not isinstance(modes, list) or not set(modes) <= set(PRUNE_MODES):
        raise UserError(f"config {config_file}: modes must be a list drawn from {', '.join(PRUNE_MODES)}")
    default_name = "quick" if quick else "article"
    return RunConfig(name=name or raw.get("name", default_name), runs_dir=str(raw.get("runs_dir", "runs")),
                     modes=list(modes), stages=stages)


def config_toml(config: RunConfig) -> str:
    import tomli_w

    # TOML has no null: unset options are left out and take their defaults.
    return tomli_w.dumps(_drop_none(config.to_dict()))


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


class RunState:
    """``RUN_DIR/run.json``: the configuration and which stages have finished."""

    def __init__(self, run_dir: Path, config: RunConfig):
        self.path = run_dir / "run.json"
        self.config = config
        self.record = {"schema_version": SCHEMA_VERSION, "config": config.to_dict(), "stages": {},
                       "versions": environment.library_versions()}

    def load_for_resume(self) -> None:
        if not self.path.exists():
            return
        saved = fsutil.read_json(self.path, "run state")
        if saved.get("config") != self.record["config"]:
            raise UserError(f"{self.path}: the run was started with a different configuration; "
                            "use the same options to --resume, or --force to start over")
        self.record["stages"] = saved.get("stages", {})

    def done(self, stage: str) -> bool:
        return bool(self.record["stages"].get(stage, {}).get("done"))

    def mark_done(self, stage: str, seconds: float, **extra: Any) -> None:
        self.record["stages"][stage] = {"done": True, "seconds": round(seconds, 2), **extra}
        fsutil.write_json(self.path, self.record)


def stage_names(config: RunConfig) -> list[str]:
    return ["train", *(f"prune:{mode}" for mode in config.modes), "export", "bench", "report"]


def run_pipeline(config: RunConfig, *, resume: bool = False, force: bool = False, progress=None) -> dict:
    run_dir = config.run_dir
    if run_dir.exists() and any(run_dir.iterdir()) and not (resume or force):
        raise UserError(f"{run_dir} already exists; pass --resume to continue it or --force to start over")
    if force and not resume and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fsutil.remove_stale_temporaries(run_dir)
    state = RunState(run_dir, config)
    if resume:
        state.load_for_resume()
    names = stage_names(config)
    overall = progress.add_task("slimdeploy run", total=len(names), info="") if progress is not None else None
    timings = {}
    for name in names:
        if progress is not None:
            progress.update(overall, info=name)
        if state.done(name):
            if progress is not None:
                progress.advance(overall)
            continue
        started = time.perf_counter()
        _run_stage(name, config, run_dir, resume=resume, progress=progress)
        timings[name] = time.perf_counter() - started
        state.mark_done(name, timings[name])
        if progress is not None:
            progress.advance(overall)
    return state.record


def _run_stage(name: str, config: RunConfig, run_dir: Path, *, resume: bool, progress) -> None:
    stages = config.stages
    if name == "train":
        _train(stages["train"], run_dir, progress)
    elif name.startswith("prune:"):
        from slimdeploy.prune.lottery import prune_run

        settings = dataclasses.replace(stages["prune"], mode=name.split(":", 1)[1])
        # Later stages read the run's own recorded data (runinfo.run_dataset).
        prune_run(run_dir, settings, resume=resume, force=not resume, progress=progress)
    elif name == "export":
        from slimdeploy.export.api import export_source

        # Resuming keeps the artifacts an interrupted export verified (unless their model changed).
        export_source(run_dir, stages["export"], resume=resume, force=not resume, progress=progress)
    elif name == "bench":
        from slimdeploy.bench.api import run_bench

        run_bench([run_dir], stages["bench"], force=not resume, resume=resume, progress=progress)
    elif name == "report":
        from slimdeploy.report.api import make_report

        make_report(run_dir, stages["report"], force=True)


def _train(stage: TrainStage, run_dir: Path, progress) -> None:
    from slimdeploy.config import check_recipe_data, load_recipe
    from slimdeploy.data import load_dataset
    from slimdeploy.train import train_dense

    recipe = load_recipe(stage.recipe).with_training(epochs=stage.epochs, seed=stage.seed)
    check_recipe_data(recipe, stage.data)
    data = load_dataset(stage.data, recipe.dataset.validation_size, recipe.training.seed, limit=stage.limit,
                        scale=recipe.dataset.scale)
    train_dense(recipe, data, run_dir, force=True, progress=progress)
