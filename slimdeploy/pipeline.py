"""`slimdeploy run`: train (or adopt a trained model) -> prune (both modes) -> export -> bench
-> report in one run directory. The configuration is one TOML document with a table per stage's
settings dataclass. Finished stages are recorded in ``RUN_DIR/run.json``; ``--resume`` skips them
and lets the unfinished stage resume its own work (pruning rounds, benchmark cells).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from slimdeploy import dirlock, environment, fsutil
from slimdeploy.adopt import adopt
from slimdeploy.bench.api import run_bench
from slimdeploy.bench.settings import BenchSettings
from slimdeploy.recipes import DEFAULT_RECIPE
from slimdeploy.errors import UserError
from slimdeploy.export.api import ExportFailed, export_source
from slimdeploy.export.settings import ExportSettings
from slimdeploy.progress import console
from slimdeploy.prune.lottery import prune_run
from slimdeploy.prune.settings import PruneSettings, default_reset
from slimdeploy.quiet import import_tensorflow
from slimdeploy.records.export import ExportManifest
from slimdeploy.records.pipeline import RunRecord
from slimdeploy.report.api import make_report
from slimdeploy.report.settings import ReportSettings
from slimdeploy.rundir import MODES as PRUNE_MODES
from slimdeploy.rundir import RunDir
from slimdeploy.train import TrainSettings, train_dense

TrainStage = TrainSettings  # the [train] table's older name
STAGE_CLASSES = {"train": TrainSettings, "prune": PruneSettings, "export": ExportSettings, "bench": BenchSettings,
                 "report": ReportSettings}

# --quick: CI-sized (a few minutes on 2 cores), yet every stage runs for real on real data.
QUICK_PROFILE: dict[str, dict[str, Any]] = {
    "train": {"epochs": 3, "limit": 20000},
    # One width-search step and one aligned width: both still shown.
    "prune": {"rounds": 2, "target": 0.1, "controls": False, "search_steps": 1, "aligned_widths": [8]},
    "bench": {"batches": [1, 64], "min_iters": 50, "min_time": 0.3, "processes": 2},  # half the start-ups
}
# The default workload ("article"): pruned to about a tenth, the ticket within half a point of dense,
# every model with its INT8 variant ("prune, quantize, or both?"), one profiled pass per bench cell.
DEFAULT_PROFILE: dict[str, dict[str, Any]] = {
    "prune": {"target": 0.1, "max_drop": 0.5},
    "export": {"precisions": ["fp32", "int8"]},
    "bench": {"profile": True},
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
        tables = {key: value.to_dict() for key, value in self.stages.items()}
        tables["prune"].pop("mode", None)  # set per stage from `modes`
        return {"name": self.name, "runs_dir": self.runs_dir, "modes": list(self.modes), **tables}


def build_config(config_file: str | None = None, quick: bool = False, name: str | None = None, *,
                 model: str | None = None, data: str | None = None) -> RunConfig:
    """The run's configuration: defaults, then the profile, the config file, and ``model`` /
    ``data`` (``run --model --data``: [train] model and data)."""
    raw: dict[str, Any] = fsutil.read_toml(config_file, "config") if config_file else {}
    unknown = sorted(set(raw) - set(STAGE_CLASSES) - {"name", "runs_dir", "modes"})
    if unknown:
        raise UserError(f"config {config_file}: unknown table(s) or key(s): {', '.join(unknown)} (see `slimdeploy run --print-config`)")
    source = f"config {config_file or '(defaults)'}"
    tables, stages = {}, {}
    for key, cls in STAGE_CLASSES.items():
        table = raw.get(key, {})
        if not isinstance(table, dict):
            raise UserError(f"config {config_file}: [{key}] must be a table")
        if key == "prune" and "mode" in table:
            raise UserError(f"config {config_file}: [prune] takes no 'mode'; list the modes to run in the top-level 'modes'")
        tables[key] = table = {**DEFAULT_PROFILE.get(key, {}), **(QUICK_PROFILE.get(key, {}) if quick else {}), **table}
        # Defaults that depend on whether the run trains a recipe or adopts a model (no θ0: fine-tuned).
        if key == "train":
            table.update({k: v for k, v in (("model", model), ("data", data)) if v is not None})
            adopting = table.get("model") is not None
            if not adopting:
                table.setdefault("recipe", DEFAULT_RECIPE)
        elif key == "prune":
            table.setdefault("reset", default_reset(adopting))
        stages[key] = cls.from_dict(table, f"{source} [{key}]")
    if "profile_batches" not in tables["export"]:
        # A TensorRT engine's optimization profile must cover the batch sizes benchmarked.
        tables["export"]["profile_batches"] = list(stages["bench"].batches)
        stages["export"] = ExportSettings.from_dict(tables["export"], f"{source} [export]")
    modes = raw.get("modes", list(PRUNE_MODES))
    if not isinstance(modes, list) or not set(modes) <= set(PRUNE_MODES):
        raise UserError(f"config {config_file}: modes must be a list drawn from {', '.join(PRUNE_MODES)}")
    default_name = "quick" if quick else Path(model).stem if model else "article"
    return RunConfig(name=name or raw.get("name", default_name), runs_dir=str(raw.get("runs_dir", "runs")),
                     modes=list(modes), stages=stages)


def config_toml(config: RunConfig) -> str:
    # TOML has no null: unset options are left out and take their defaults.
    return tomli_w.dumps(_drop_none(config.to_dict()))


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def stage_names(config: RunConfig) -> list[str]:
    first = "adopt" if config.stages["train"].model is not None else "train"
    return [first, *(f"prune:{mode}" for mode in config.modes), "export", "bench", "report"]


def run_pipeline(config: RunConfig, *, resume: bool = False, force: bool = False, progress=None) -> dict:
    """Run every stage not yet done; returns the run record (run.json's content). While another
    process writes the run directory (``dirlock``), a ``UserError`` names it."""
    import_tensorflow()  # every run trains or loads a Keras model
    config.stages["train"].check_recipe()
    run_dir = config.run_dir
    # The run holds its directory's lock throughout; the stages it calls enter the same lock.
    with dirlock.DirectoryLock(run_dir, stage="run", hint="wait for it or choose another --name"):
        return _run_locked(config, run_dir, resume=resume, force=force, progress=progress)


def _run_locked(config: RunConfig, run_dir: Path, *, resume: bool, force: bool, progress) -> dict:
    if dirlock.contents(run_dir) and not (resume or force):
        raise UserError(f"{run_dir} already exists; pass --resume to continue it or --force to start over")
    if force and not resume:
        dirlock.clear(run_dir)
    dirlock.remove_stale_temporaries(run_dir)
    # RUN_DIR/run.json: the configuration and which stages have finished.
    path = RunDir(run_dir).run_record
    record = RunRecord(config=config.to_dict(), versions=environment.library_versions())
    if resume and path.exists():
        saved = RunRecord.load(path, "run state")
        # Unset options (null) compare equal to options a newer version added since.
        if _drop_none(saved.config) != _drop_none(record.config):
            raise UserError(f"{path}: the run was started with a different configuration; "
                            "use the same options to --resume, or --force to start over")
        record = record.replace(stages=saved.stages)
    names = stage_names(config)
    overall = progress.add_task("slimdeploy run", total=len(names), info="") if progress is not None else None
    for name in names:
        if progress is not None:
            progress.update(overall, info=name)
        if not record.done(name):
            started = time.perf_counter()
            _run_stage(name, config, run_dir, resume=resume, progress=progress)
            record = record.with_stage(name, time.perf_counter() - started)
            record.save(path)
        if progress is not None:
            progress.advance(overall)
    return record.to_json()


def _run_stage(name: str, config: RunConfig, run_dir: Path, *, resume: bool, progress) -> None:
    stages = config.stages
    if name == "train":
        train_dense(*stages["train"].prepare(run_dir, force=True), force=True, progress=progress)
    elif name == "adopt":
        adopt(stages["train"].model, stages["train"], run_dir, force=True)
    elif name.startswith("prune:"):
        mode = name.split(":", 1)[1]
        # --round-to shapes units, which only structured pruning removes.
        settings = dataclasses.replace(stages["prune"], mode=mode,
                                       round_to=stages["prune"].round_to if mode == "structured" else None)
        # Later stages read the run's own recorded data (saved_run.run_dataset).
        prune_run(run_dir, settings, resume=resume, force=not resume, progress=progress)
    elif name == "export":
        _export(stages["export"], run_dir, resume=resume, progress=progress)
    elif name == "bench":
        run_bench([run_dir], stages["bench"], force=not resume, resume=resume, progress=progress)
    elif name == "report":
        make_report(run_dir, stages["report"], force=True)


def _export(settings, run_dir: Path, *, resume: bool, progress) -> None:
    """The export stage. An INT8 variant outside its tolerance is left out of the run with a
    notice (export.json keeps it as failed; bench lists it as skipped, and so does the report);
    a float model that fails verification stops the run, as `slimdeploy export` does."""
    def notice(text: str) -> None:
        console.print(f"notice: {text}", markup=False, highlight=False)

    try:
        # Resuming keeps the artifacts an interrupted export verified (unless their model changed).
        export_source(run_dir, settings, resume=resume, force=not resume, progress=progress, on_notice=notice)
    except ExportFailed as failure:
        failed = ExportManifest.from_json(failure.manifest).failed()
        if any(a.precision != "int8" for a in failed):
            raise
        for a in failed:
            notice(f"{a.model} → {a.target} failed verification and is left out of the bench: {a.error}")

