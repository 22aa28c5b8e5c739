"""Lottery-ticket rounds: prune, reset, retrain, evaluate, checkpoint — then controls and the record.

``RUN_DIR/<mode>/`` (``rundir.ModeDir``): settings.json (what ``--resume`` must match), round_K/ (model,
state.npz: masks or kept unit indices, metrics.json), controls/, search/, aligned/, rewind_K.weights.h5,
seed_S/ (each extra seed, with its own dense/ model), ticket.keras and lottery.json (``records.lottery``,
rewritten after each round). Each directory is renamed into place when complete: ``--resume`` reads finished
ones back. An adopted model (``slimdeploy.adopt``) has no true θ0 (its init.weights.h5 is re-initialised).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import shutil
import time
from pathlib import Path

import numpy as np

from slimdeploy import fsutil, saved_run
from slimdeploy.data import Dataset
from slimdeploy.dirlock import DirectoryLock, remove_stale_temporaries
from slimdeploy.errors import UserError, WorkError
from slimdeploy.models import (count_flops, count_nonzero_params, count_params, dense_widths, load_model,
                               require_single_io, save_model, save_weights)
from slimdeploy.prune import masks as masking
from slimdeploy.prune import ticket as ticket_rules
from slimdeploy.prune.graph import DenseGraph, analyze, find_layer
from slimdeploy.prune.methods import PruningMethod, dense_params, pruning_method
from slimdeploy.prune.neurons import round_widths
from slimdeploy.prune.summary import CONTROL_RESETS, aggregate, build_record
from slimdeploy.prune.schedule import solve_rate
from slimdeploy.prune.settings import PruneSettings, parse_reset, reset_label
from slimdeploy.records.base import ABSENT, present
from slimdeploy.records.lottery import (AdoptedPrune, Candidate, LotteryRecord, PruneStart, Round, Search, SearchStep,
                                        Ticket)
from slimdeploy.records.run import DataInfo, DenseMetrics
from slimdeploy.rundir import ModeDir, ModelDir, RunDir, SeedDir
from slimdeploy.train import accuracy, check_input_shape, fit, seed_everything, split_accuracies

# The random-init control draws its weights from this seed offset so they differ from θ0.
RANDOM_INIT_OFFSET = 10_000
CONTROLS = ("random_init", "finetune")


@dataclasses.dataclass
class _Plan:
    """A prune checked and ready to start: everything ``prune_run`` needs, nothing written yet."""

    settings: PruneSettings   # with the run's reset resolved (PruneSettings.for_run)
    method: PruningMethod
    run: RunDir
    metrics: DenseMetrics
    adopted: object           # records.run.AdoptedModel, or None for a trained run
    dense_model: object       # the run's trained dense model
    graph: DenseGraph
    layers: list[str]         # the layers this mode prunes
    data: Dataset
    training: object          # the dense run's TrainingSettings
    rate: float
    seeds: list[int]
    dense_seed: int
    dense_epochs: int


@dataclasses.dataclass
class _Context(_Plan):
    mode_dir: ModeDir = None
    bars: "_Bars" = None
    run_fields: dict = dataclasses.field(default_factory=dict)  # the record's run_dir, data, ... (build_record)
    per_seed: dict = dataclasses.field(default_factory=dict)    # seed -> its finished rounds so far (round 0 = dense)
    trained: dict = dataclasses.field(default_factory=dict)     # search/aligned candidate -> {seed: Round}

    @functools.cached_property
    def original_units(self) -> dict[str, int]:
        return {name: int(find_layer(self.dense_model, name).units) for name in self.graph.dense}


def check_prune(run_dir, settings: PruneSettings, *, resume: bool = False, force: bool = False, data=None,
                data_override: bool = False) -> None:
    """Every refusal ``prune_run`` would make before its first round, with nothing written."""
    _plan(run_dir, settings, resume=resume, force=force, data=data, data_override=data_override)


def refuse_rewind_on_adopted(settings: PruneSettings, source) -> None:
    if settings.rewind_steps is not None:
        raise UserError(f"--reset {settings.reset}: {source} is an adopted model, with no training history to rewind "
                        "to; use --reset trained (fine-tune) or init (re-initialise and retrain, seeded)")


def _plan(run_dir, settings: PruneSettings, *, resume: bool, force: bool, data, data_override: bool) -> _Plan:
    settings = settings.validated()
    if resume and force:
        raise UserError("give --resume (continue the existing prune) or --force (start it over), not both")
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    method = pruning_method(settings.mode)
    metrics = saved_run.dense_metrics(run_dir)
    adopted = saved_run.adopted(run_dir, metrics)
    settings = settings.for_run(adopted=bool(adopted))
    if adopted:
        refuse_rewind_on_adopted(settings, adopted.source)
    if not run.init_weights.is_file():
        raise UserError(f"{run.init_weights} is missing: the initial weights θ0 are needed to reset survivors (retrain with `slimdeploy train --force`)")
    dense_model = load_model(run.dense_model, "dense model")
    require_single_io(dense_model, run.dense_model, "dense model")
    graph = analyze(dense_model)
    # An adopted model is named by the user's own file, which is what they gave.
    layers = method.layers(graph, f"model {adopted.source}" if adopted else f"the dense model in {run_dir}")
    method.check_model(settings, dense_model, layers, run_dir)
    _refuse_existing_mode(run.mode(settings.mode), resume=resume, force=force)
    dataset = data if isinstance(data, Dataset) else saved_run.run_dataset(run_dir, data, data_override=data_override)
    check_input_shape(dense_model, dataset, f"dense model in {run_dir}")
    training = saved_run.run_training(run_dir, metrics)
    rate = settings.rate if settings.target is None else solve_rate(
        method.kept_fraction(settings, dense_model, graph, layers), settings.target, settings.rounds)
    plan = _Plan(settings=settings, method=method, run=run, metrics=metrics, adopted=adopted, dense_model=dense_model,
                 graph=graph, layers=layers, data=dataset, training=training, rate=rate, dense_seed=int(metrics.seed),
                 seeds=list(settings.seeds) or [int(metrics.seed)], dense_epochs=metrics.epochs or training.epochs)
    _check_rewind(plan)
    return plan


def prune_run(run_dir, settings: PruneSettings, *, resume: bool = False, force: bool = False, progress=None, data=None,
              data_override: bool = False) -> dict:
    """Prune ``RUN_DIR/dense`` into ``RUN_DIR/<settings.mode>``; returns ``lottery.json``'s content. ``data``:
    the run's recorded data (``saved_run.run_dataset``) elsewhere, other data with ``data_override``, or a ``Dataset``."""
    # One writer of the run at a time, taken before the model and the data load so that a second writer
    # hears "busy" at once; only around an existing directory (a missing one gets _plan's own error).
    with DirectoryLock.when(Path(run_dir).is_dir(), run_dir, stage="prune", hint="wait for it to finish"):
        plan = _plan(run_dir, settings, resume=resume, force=force, data=data, data_override=data_override)
        # Entered again (the same lock when taken above): another prune may have made the mode directory meanwhile.
        with DirectoryLock(plan.run.root, stage="prune", hint="wait for it to finish"):
            _refuse_existing_mode(plan.run.mode(plan.settings.mode), resume=resume, force=force)
            return _prune(plan, resume=resume, force=force, progress=progress, data_override=data_override)


def _refuse_existing_mode(mode: ModeDir, *, resume: bool, force: bool) -> None:
    if mode.path.exists() and not (resume or force):
        raise UserError(f"{mode.path} already exists; pass --resume to continue it or --force to start over")


def _prune(plan: _Plan, *, resume: bool, force: bool, progress, data_override: bool) -> dict:
    settings, seeds = plan.settings, plan.seeds
    mode_dir = plan.run.mode(settings.mode)
    started = time.perf_counter()
    _prepare_mode_dir(mode_dir, settings, plan.rate, seeds, resume=resume, force=force)
    bars = _Bars(progress, f"{settings.mode}", len(seeds) * (settings.rounds + len(_controls_needed(settings))))
    run_fields = {"run_dir": str(plan.run.root), "random_init_seed_offset": RANDOM_INIT_OFFSET,
                  "data": DataInfo.from_json(plan.data.describe()).replace(override=bool(data_override)),
                  "adopted": _adopted_block(plan.adopted, settings) if plan.adopted else ABSENT}
    ctx = _Context(**vars(plan), mode_dir=mode_dir, bars=bars, run_fields=run_fields)
    task = ctx.data.task
    try:
        for seed in seeds:
            ctx.per_seed[seed] = []
            _run_seed(ctx, seed, plan.dense_model if seed == ctx.dense_seed else None)
        search = _search_widths(ctx)
        chosen = ticket_rules.choose(_candidate_rows(ctx), settings.max_drop, settings.rounds,
                                     reset_label(settings.reset), task=task)
        _train_aligned(ctx, chosen)
    finally:
        bars.close()
    rows = _candidate_rows(ctx)
    record = _record(ctx, complete=True).replace(
        ticket=_write_tickets(ctx, rows, chosen), candidates=ticket_rules.verdicts(rows, chosen, task=task),
        search=search, seconds=round(time.perf_counter() - started, 3), train_seconds_total=round(_total_seconds(ctx), 3))
    record.save(mode_dir.lottery)
    return record.to_json()


# What each reset means for an adopted model, whose weights before training are unknown.
ADOPTED_RESETS = {
    "trained": "fine-tune: survivors keep the adopted model's trained weights",
    "init": "re-initialise with the model's own initializers (seeded, dense/init.weights.h5; not the true θ0) "
            "and retrain from scratch",
    "random": "a fresh initialisation with the model's own initializers (seed + random_init_seed_offset) "
              "and retrain from scratch",
}


def _adopted_block(adopted, settings: PruneSettings) -> AdoptedPrune:
    return AdoptedPrune(source=adopted.source, sha256=adopted.sha256, theta0=False, reset=reset_label(settings.reset),
                        reset_meaning=ADOPTED_RESETS[parse_reset(settings.reset)[0]])


def _check_rewind(plan: _Plan) -> None:
    steps = plan.settings.rewind_steps
    total = math.ceil(len(plan.data.x_train) / plan.training.batch_size) * plan.dense_epochs
    if steps is not None and steps >= total:
        raise UserError(f"--reset rewind:{steps} must rewind to fewer steps than the dense training took ({total})")


def _controls_needed(settings: PruneSettings) -> list[str]:
    if not settings.controls:
        return []
    # A control that is the main reset itself would repeat the same training.
    same = {"trained": "finetune", "random": "random_init"}.get(parse_reset(settings.reset)[0])
    return [name for name in CONTROLS if name != same]


def _prepare_mode_dir(mode: ModeDir, settings: PruneSettings, rate: float, seeds: list[int], *, resume: bool, force: bool) -> None:
    wanted = PruneStart(settings=settings.to_dict(), rate=rate, seeds=seeds)
    mode_dir = mode.path
    if mode_dir.exists() and resume:
        remove_stale_temporaries(mode_dir)
        if mode.settings.is_file():
            saved = PruneStart.load(mode.settings)
            differ = [key for key in wanted.settings if saved.settings.get(key) != wanted.settings[key]]
            if saved.seeds != seeds and "seeds" not in differ:
                differ.append("seeds")
            if differ:
                raise UserError(f"--resume: {mode_dir} was started with different settings ({', '.join(differ)}); "
                                "use the same options, or --force to start over")
            return
    elif mode_dir.exists() and force:
        old = mode_dir.with_name(f".{mode_dir.name}{fsutil.TMP_MARK}old")
        shutil.rmtree(old, ignore_errors=True)
        mode_dir.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    mode_dir.mkdir(parents=True, exist_ok=True)
    wanted.save(mode.settings)


class _Bars:
    """One bar for the rounds and one reused bar for the epochs of the training in progress."""

    def __init__(self, progress, description: str, total: int):
        self.progress, self.total = progress, total
        self.rounds = progress.add_task(f"{description} rounds", total=total, info="") if progress else None
        self.training_task = None

    def advance(self, info: str) -> None:
        if self.progress is not None:
            self.progress.update(self.rounds, advance=1, info=info)

    def grow(self, steps: int) -> None:
        """More steps than planned at the start (the width search, the aligned widths)."""
        self.total += steps
        if self.progress is not None:
            self.progress.update(self.rounds, total=self.total)

    # The two methods below are all `slimdeploy.progress.keras_epoch_callback` calls.
    def add_task(self, description, total=None, **fields):
        if self.training_task is None:
            self.training_task = self.progress.add_task(description, total=total, **fields)
        else:
            self.progress.reset(self.training_task, total=total, description=description, **fields)
        return self.training_task

    def update(self, task, **fields):
        self.progress.update(task, **fields)

    @property
    def for_training(self):
        return self if self.progress is not None else None

    def close(self) -> None:
        if self.progress is not None and self.training_task is not None:
            self.progress.remove_task(self.training_task)
            self.training_task = None


def _run_seed(ctx: _Context, seed: int, dense_model) -> None:
    seed_dir = ctx.mode_dir.seed(seed, ctx.dense_seed)
    if dense_model is None:
        dense_model, dense_seconds = _seed_dense(ctx, seed, seed_dir)
        dense = seed_dir.dense
    else:
        dense = ctx.run.dense
        dense_seconds = saved_run.dense_metrics(ctx.run.root).train_seconds or None
    reference = _Reference.of(ctx, dense_model)
    rounds = ctx.per_seed[seed]
    rounds.append(_measure(ctx, dense_model, reference).replace(round=0, seconds=dense_seconds,
                                                                path=_path_label(ctx, dense.model)))
    sources = _Sources(ctx, seed, seed_dir, dense_model, dense.init_weights)
    state = ctx.method.initial_state(dense_model, ctx.layers)
    model = dense_model
    for k in range(1, ctx.settings.rounds + 1):
        round_dir = seed_dir.round(k)
        if _finished(round_dir):
            rounds.append(Round.load(round_dir.metrics, "round metrics"))
            model, state = None, _load_state(round_dir.state)  # loaded only if a later round needs it
            ctx.bars.advance(f"seed {seed} round {k}: done earlier")
            continue
        if model is None:
            model = load_model(seed_dir.round(k - 1).model, f"round {k - 1} model")
        started = time.perf_counter()
        new_state = ctx.method.next_state(model, state, k, settings=ctx.settings, graph=ctx.graph, rate=ctx.rate,
                                          original_units=ctx.original_units)
        candidate = _reset(ctx, parse_reset(ctx.settings.reset)[0], model, state, new_state, sources)
        entry = _train_and_save(ctx, round_dir, candidate, new_state, seed, reference, started,
                                f"seed {seed} round {k}/{ctx.settings.rounds}", round=k)
        rounds.append(entry)
        model, state = candidate, new_state
        ctx.bars.advance(f"seed {seed} round {k}: test {entry.test_accuracy:.4f}")
        _record(ctx, complete=False).save(ctx.mode_dir.lottery)

    controls: dict[str, Round] = {}
    rounds[-1] = rounds[-1].replace(controls=controls)
    for name in _controls_needed(ctx.settings):
        controls = {**controls, name: _control(ctx, name, seed, seed_dir, sources, reference)}
        rounds[-1] = rounds[-1].replace(controls=controls)
        ctx.bars.advance(f"seed {seed} control {name}: test {controls[name].test_accuracy:.4f}")
        _record(ctx, complete=False).save(ctx.mode_dir.lottery)


def _path_label(ctx: _Context, path: Path) -> str:
    """Paths in the record are relative to the mode directory (``../dense/model.keras`` for the dense model)."""
    try:
        return path.relative_to(ctx.mode_dir.path).as_posix()
    except ValueError:
        return "../" + path.relative_to(ctx.run.root).as_posix()


def _record(ctx: _Context, complete: bool) -> LotteryRecord:
    return build_record(ctx.settings, rate=ctx.rate, seeds=ctx.seeds, per_seed=ctx.per_seed, prunable=ctx.layers,
                        unprunable=ctx.method.unprunable(ctx.graph), complete=complete, run_fields=ctx.run_fields,
                        task=ctx.data.task)


def _seed_dense(ctx: _Context, seed: int, seed_dir: SeedDir):
    """A dense model of another seed: same architecture, data split and schedule, its own θ0 and data order."""
    import keras  # lazy: heavy

    dense = seed_dir.dense
    if _finished(dense, state=False):
        metrics = DenseMetrics.load(dense.metrics, "dense metrics")
        return load_model(dense.model, f"seed {seed} dense model"), (metrics.train_seconds or None)
    seed_dir.path.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_dir(dense.path, force=True) as staging_path:
        staging = ModelDir(staging_path)
        seed_everything(seed)
        model = keras.models.clone_model(ctx.dense_model)
        save_weights(model, staging.init_weights)
        started = time.perf_counter()
        fit(model, ctx.data, ctx.training, seed=seed, epochs=ctx.dense_epochs, progress=ctx.bars.for_training,
            description=f"seed {seed} dense")
        seconds = round(time.perf_counter() - started, 3)
        save_model(model, staging.model)
        DenseMetrics(model="dense", seed=seed, epochs=ctx.dense_epochs, train_seconds=seconds, params=count_params(model),
                     **split_accuracies(model, ctx.data)).save(staging.metrics)
    # Read back rather than reuse: a clone of a compiled model expects optimizer state in every weights file.
    return load_model(dense.model, f"seed {seed} dense model"), seconds


def _finished(directory: ModelDir, state: bool = True) -> bool:
    needed = [directory.model, directory.metrics] + ([directory.state] if state else [])
    return directory.path.is_dir() and all(path.is_file() for path in needed)


def _load_state(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is unreadable ({exc}); rerun with --force") from exc


def _save(directory: ModelDir, model, state: dict[str, np.ndarray] | None, entry: Round) -> None:
    directory.path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_dir(directory.path, force=True) as staging_path:
        staging = ModelDir(staging_path)
        save_model(model, staging.model)
        if state is not None:
            np.savez(staging.state, **state)
        entry.save(staging.metrics)


class _Sources:
    """Dense-architecture models that survivors are reset to, built on first use."""

    def __init__(self, ctx: _Context, seed: int, seed_dir: SeedDir, dense_model, init_path: Path):
        self.ctx, self.seed, self.seed_dir, self.dense_model, self.init_path = ctx, seed, seed_dir, dense_model, init_path
        self._cache: dict[str, object] = {}

    def get(self, kind: str):
        if kind not in self._cache:
            self._cache[kind] = getattr(self, f"_{kind}")()
        return self._cache[kind]

    def _blank(self):
        import keras  # lazy: heavy

        return keras.models.clone_model(self.dense_model)

    def _init(self):
        model = self._blank()
        model.load_weights(self.init_path)
        return model

    def _random(self):
        seed_everything(self.seed + RANDOM_INIT_OFFSET)
        return self._blank()

    def _rewind(self):
        """θ_K: the dense training replayed from θ0 for K steps (same seed, same data order), cached."""
        import keras  # lazy: heavy

        steps = self.ctx.settings.rewind_steps
        cache = self.seed_dir.rewind_weights(steps)
        model = self._init()
        if cache.is_file():
            model.load_weights(cache)
            return model

        class StopAfter(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.done = 0

            def on_train_batch_end(self, batch, logs=None):
                self.done += 1
                if self.done >= steps:
                    self.model.stop_training = True

        per_epoch = math.ceil(len(self.ctx.data.x_train) / self.ctx.training.batch_size)
        stopper = StopAfter()
        # One step per call so training can stop at exactly K (the numbers match 64 per call).
        fit(model, self.ctx.data, self.ctx.training, seed=self.seed, epochs=math.ceil(steps / per_epoch),
            progress=self.ctx.bars.for_training, description=f"seed {self.seed} rewind to step {steps}",
            callbacks=[stopper], steps_per_execution=1)
        if stopper.done != steps:
            raise WorkError(f"rewinding stopped after {stopper.done} steps instead of {steps}")
        self.seed_dir.path.mkdir(parents=True, exist_ok=True)
        save_weights(model, cache)
        return model


def _reset(ctx: _Context, kind: str, previous, previous_state, new_state, sources: _Sources | None):
    """The pruned model with the survivors' starting values chosen by ``kind`` ("trained" needs no ``sources``)."""
    return ctx.method.reset(kind, previous, previous_state, new_state, sources.get if sources else None, ctx.graph)


def _control(ctx: _Context, name: str, seed: int, seed_dir: SeedDir, sources: _Sources, reference: "_Reference") -> Round:
    """The final round's mask/architecture trained from a fresh random init, or by fine-tuning."""
    directory = seed_dir.control(name)
    if _finished(directory, state=False):
        return Round.load(directory.metrics, "control metrics")
    rounds = ctx.settings.rounds
    final_state = _load_state(seed_dir.round(rounds).state)
    started = time.perf_counter()
    if name == "finetune":
        before = seed_dir.round(rounds - 1)
        previous = load_model(before.model, "round model") if rounds > 1 else sources.dense_model
        previous_state = _load_state(before.state) if rounds > 1 else ctx.method.initial_state(sources.dense_model, ctx.layers)
        candidate = _reset(ctx, "trained", previous, previous_state, final_state, sources)
    else:
        candidate = _reset(ctx, "random", None, None, final_state, sources)
    return _train_and_save(ctx, directory, candidate, final_state, seed, reference, started, f"seed {seed} control {name}",
                           save_state=False)


def _train_and_save(ctx: _Context, place: ModelDir, model, state: dict[str, np.ndarray], seed: int, reference: "_Reference",
                    started: float, description: str, save_state: bool = True, **fields) -> Round:
    """Retrain ``model``, measure it and save it to ``place``; ``started``: when work on it began."""
    train_started = time.perf_counter()
    with ctx.method.training(model, state, description):
        fit(model, ctx.data, ctx.training, seed=seed, epochs=ctx.settings.epochs or ctx.training.epochs,
            progress=ctx.bars.for_training, description=description)
    train_seconds = round(time.perf_counter() - train_started, 3)
    entry = _measure(ctx, model, reference).replace(train_seconds=train_seconds, path=_path_label(ctx, place.model),
                                                    seconds=round(time.perf_counter() - started, 3), **fields)
    _save(place, model, state if save_state else None, entry)
    return entry


@dataclasses.dataclass
class _Reference:
    """The dense model's sizes that fractions are taken of."""

    params: int
    dense_params: int         # kernel + bias entries of all Dense layers
    kernel_weights: int       # entries of the pruned Dense kernels

    @classmethod
    def of(cls, ctx: _Context, model) -> "_Reference":
        return cls(count_params(model), dense_params(model, ctx.graph.dense), masking.kernel_zeros(model, ctx.layers)[1])


def _measure(ctx: _Context, model, reference: _Reference) -> Round:
    params, data = count_params(model), ctx.data
    zeros, kernel_total = masking.kernel_zeros(model, ctx.layers)
    return Round(
        params=params, nonzero_params=count_nonzero_params(model), params_fraction=params / reference.params,
        flops=count_flops(model), nonzero_flops=count_flops(model, nonzero_only=True),
        weights_remaining=ctx.method.weights_remaining(model, ctx.graph, kernel_total - zeros, reference),
        zero_weights=zeros, prunable_weights=kernel_total, widths=dense_widths(model),
        val_accuracy=accuracy(model, data.x_val, data.y_val, task=data.task) if len(data.x_val) else None,
        test_accuracy=accuracy(model, data.x_test, data.y_test, task=data.task))


def _total_seconds(ctx: _Context) -> float:
    rounds = [entry for seed_rounds in ctx.per_seed.values() for entry in seed_rounds[1:]]
    entries = [*rounds, *(c for entry in rounds for c in (entry.controls or {}).values()),
               *(entry for per_seed in ctx.trained.values() for entry in per_seed.values())]
    return sum((entry.seconds or 0.0 for entry in entries), 0.0)


# Where one candidate of one seed lives: its Round, model and the state it was cut with (or the final round's).
_Candidate = collections.namedtuple("_Candidate", "kind reset round entry model state")


def _candidates(ctx: _Context) -> dict[str, dict[int, _Candidate]]:
    """name -> seed -> candidate, for everything trained so far, in the order lottery.json lists them."""
    main = reset_label(ctx.settings.reset)
    found: dict[str, dict[int, _Candidate]] = {}
    for seed, rounds in ctx.per_seed.items():
        seed_dir = ctx.mode_dir.seed(seed, ctx.dense_seed)
        final = seed_dir.round(ctx.settings.rounds)
        for entry in rounds[1:]:
            place = seed_dir.round(entry.round)
            found.setdefault(f"round_{entry.round}", {})[seed] = _Candidate(
                ticket_rules.ROUND, main, entry.round, entry, place.model, place.state)
        for control, entry in (rounds[-1].controls or {}).items() if len(rounds) > ctx.settings.rounds else ():
            reset = CONTROL_RESETS[control]
            found.setdefault(f"control_{reset}", {})[seed] = _Candidate(
                ticket_rules.CONTROL, reset, ctx.settings.rounds, entry, seed_dir.control(control).model, final.state)
    for name, per_seed in ctx.trained.items():
        kind = ticket_rules.SEARCH if name.startswith("search") else ticket_rules.ALIGNED
        for seed, entry in per_seed.items():
            place = _trained_dir(ctx, seed, name)
            found.setdefault(name, {})[seed] = _Candidate(kind, entry.reset, None, entry, place.model, place.state)
    return found


def _candidate_rows(ctx: _Context) -> list[Candidate]:
    """Every candidate trained for all seeds, averaged, with its budget verdict against dense averaged."""
    dense = aggregate([rounds[0] for rounds in ctx.per_seed.values()])
    rows = []
    for name, per_seed in _candidates(ctx).items():
        if len(per_seed) != len(ctx.seeds):
            continue
        first = per_seed[ctx.seeds[0]]
        rows.append(ticket_rules.candidate_row(name, first.kind, first.reset, first.round, [c.entry for c in per_seed.values()],
                                               dense, ctx.settings.max_drop, task=ctx.data.task))
    return rows


def _trained_dir(ctx: _Context, seed: int, name: str) -> ModelDir:
    seed_dir = ctx.mode_dir.seed(seed, ctx.dense_seed)
    if name.startswith("search"):
        return seed_dir.search(int(name.rsplit("_", 1)[1]))
    return seed_dir.aligned(ticket_rules.aligned_multiple(name))


def _searchable(ctx: _Context) -> str | None:
    """Why this prune has no width search or aligned widths (None: it has them)."""
    if ctx.settings.mode != "structured":
        return "unstructured pruning has no widths to search"
    if ctx.settings.max_drop is None:
        return f"no {ctx.data.task.metric_label} budget (--max-drop) to search within"
    if ctx.settings.criterion != "l1":
        return "--criterion bias-threshold chooses the widths itself"
    if not len(ctx.data.x_val):
        return "no validation set to judge widths on"
    return None


def _search_widths(ctx: _Context) -> Search:
    """Bisect the widths between the ticket and the next more-pruned candidate outside the
    budget: each step narrows the inside end's model (all seeds, fine-tuned) and moves one end."""
    why_not = _searchable(ctx) or (None if ctx.settings.search_steps else "--search-steps 0")
    if why_not:
        return Search(reason=why_not)
    rows = _candidate_rows(ctx)
    inside = ticket_rules.choose(rows, ctx.settings.max_drop, ctx.settings.rounds, reset_label(ctx.settings.reset),
                                 task=ctx.data.task)
    outside = ticket_rules.search_bounds(rows, inside)
    if outside is None:
        return Search(reason="no more-pruned candidate falls outside the budget" if inside and inside.within_budget
                      else "no candidate is within the budget")
    between, steps, stopped = [inside.name, outside.name], [], ABSENT
    low_units, high_units = _units(ctx, inside.name), _units(ctx, outside.name)
    low, high = 0.0, 1.0  # 0: the inside end's widths, 1: the outside end's
    ctx.bars.grow(ctx.settings.search_steps * len(ctx.seeds))
    for step in range(1, ctx.settings.search_steps + 1):
        middle = (low + high) / 2
        widths = {name: int(round(low_units[name] + middle * (high_units[name] - low_units[name]))) for name in low_units}
        if ctx.settings.round_to:
            widths = round_widths(widths, ctx.settings.round_to)
        if widths == _units(ctx, inside.name) or widths == high_units:
            stopped = f"step {step}: no width left between the ends"
            break
        name = f"search_{step}"
        _train_candidate(ctx, name, inside.name, widths)
        row = next(row for row in _candidate_rows(ctx) if row.name == name)
        steps.append(SearchStep(name=name, from_=inside.name, widths=row.widths, val_accuracy=row.val_accuracy,
                                within_budget=row.within_budget))
        if row.within_budget:
            low, inside = middle, row
        else:
            high = middle
    return Search(ran=True, between=between, steps=steps, stopped=stopped)


def _units(ctx: _Context, name: str) -> dict[str, int]:
    """The pruned layers' widths of a candidate (the same for every seed)."""
    state = _load_state(_candidates(ctx)[name][ctx.seeds[0]].state)
    return {layer: int(len(kept)) for layer, kept in state.items()}


def _train_aligned(ctx: _Context, ticket: Ticket | None) -> None:
    """The ticket's widths rounded down to each multiple of ``aligned_widths``, fine-tuned from it."""
    if ticket is None or _searchable(ctx) or ticket.kind == ticket_rules.ALIGNED:
        return
    units = _units(ctx, ticket.name)
    seen = [units]
    for multiple in ctx.settings.aligned_widths:
        widths = round_widths(units, multiple)
        if widths in seen:
            continue  # already a multiple, or the same widths as a smaller multiple gave
        seen.append(widths)
        ctx.bars.grow(len(ctx.seeds))
        _train_candidate(ctx, ticket_rules.aligned_name(multiple), ticket.name, widths)


def _train_candidate(ctx: _Context, name: str, parent: str, widths: dict[str, int]) -> None:
    """Candidate ``name``: ``parent``'s model of each seed narrowed to ``widths`` and fine-tuned."""
    parents = _candidates(ctx)[parent]
    ctx.trained.setdefault(name, {})
    for seed in ctx.seeds:
        place = _trained_dir(ctx, seed, name)
        if _finished(place):
            ctx.trained[name][seed] = Round.load(place.metrics, "candidate metrics")
            ctx.bars.advance(f"seed {seed} {name}: done earlier")
            continue
        source = parents[seed]
        started = time.perf_counter()
        model = load_model(source.model, f"{parent} model")
        state = _load_state(source.state)
        reference = _Reference.of(ctx, ctx.dense_model)  # every seed's dense model has the same sizes
        new_state = ctx.method.narrowed_state(model, state, widths, settings=ctx.settings, graph=ctx.graph)
        candidate = _reset(ctx, "trained", model, state, new_state, sources=None)
        entry = _train_and_save(ctx, place, candidate, new_state, seed, reference, started,
                                f"seed {seed} {name} (from {parent})", candidate=name, reset="finetune")
        ctx.trained[name][seed] = entry
        ctx.bars.advance(f"seed {seed} {name}: validation {entry.val_accuracy:.4f}")


def _write_tickets(ctx: _Context, rows: list[Candidate], chosen: Ticket | None) -> Ticket | None:
    """ticket.keras (the chosen candidate's model of the first seed) and ticket-rN.keras for each
    aligned candidate; returns lottery.json's ``ticket``."""
    if chosen is None:
        return None
    primary = _candidates(ctx)
    _copy_model(primary[chosen.name][ctx.seeds[0]].model, ctx.mode_dir.ticket)
    for row in rows:
        if row.kind == ticket_rules.ALIGNED:
            _copy_model(primary[row.name][ctx.seeds[0]].model, ctx.mode_dir.aligned_ticket(ticket_rules.aligned_multiple(row.name)))
    return chosen.replace(candidate=chosen.name, source=present(chosen.path), path=ctx.mode_dir.ticket.name,
                          max_drop=ctx.settings.max_drop, same_size_alternatives=ticket_rules.same_size_alternatives(rows, chosen))


def _copy_model(source: Path, target: Path) -> None:
    with fsutil.atomic_path(target, suffix=".keras") as tmp:
        shutil.copyfile(source, tmp)
