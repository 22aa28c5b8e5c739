"""Lottery-ticket rounds: prune, reset, retrain, evaluate, checkpoint — then controls and the record.

Layout of ``RUN_DIR/<mode>/``:

    settings.json            what this prune was started with (``--resume`` must match it)
    round_K/                 model.keras, state.npz (masks or kept unit indices), metrics.json
    controls/<name>/         the final round trained from a fresh random init / by fine-tuning
    rewind_K.weights.h5      dense weights after K training steps (late-rewinding cache)
    seed_S/                  the same for each extra seed, with its own dense/ model
    ticket.keras             the chosen round's model
    lottery.json             the record

Every round and control directory is built under a temporary name and renamed when complete,
so a directory with the final name is always a finished round; ``--resume`` reads those back
and recomputes nothing. ``lottery.json`` is rewritten after each one.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path

import numpy as np

from slimdeploy import fsutil, runinfo
from slimdeploy.data import Dataset
from slimdeploy.errors import UserError, WorkError
from slimdeploy.prune import masks as masking
from slimdeploy.prune import neurons
from slimdeploy.prune.graph import DenseGraph, analyze
from slimdeploy.prune.record import build_record, choose_ticket
from slimdeploy.prune.schedule import solve_rate
from slimdeploy.prune.settings import PruneSettings, parse_reset

# The random-init control draws its weights from this seed offset so they differ from θ0.
RANDOM_INIT_OFFSET = 10_000
CONTROLS = ("random_init", "finetune")


@dataclasses.dataclass
class _Context:
    settings: PruneSettings
    run_dir: Path
    mode_dir: Path
    data: Dataset
    training: object          # the dense run's TrainingSettings
    dense_epochs: int
    epochs: int               # retraining epochs per round
    rate: float
    graph: DenseGraph
    layers: list[str]         # the layers this mode prunes
    dense_seed: int
    dense_model: object       # the run's trained dense model
    original_units: dict      # Dense layer -> units in the dense model
    bars: "_Bars"
    seeds: list[int]
    per_seed: dict            # seed -> its finished rounds so far (round 0 = dense)
    extra: dict               # run-level fields added to the record


def prune_run(run_dir, settings: PruneSettings, *, resume: bool = False, force: bool = False, progress=None, data=None,
              data_override: bool = False) -> dict:
    """Prune ``RUN_DIR/dense`` into ``RUN_DIR/<settings.mode>`` and return the ``lottery.json`` record.

    The run's own recorded data and split are used (``runinfo.run_dataset``). ``data`` may
    name that same data elsewhere, other data with ``data_override``, or be a loaded
    ``Dataset``.
    """
    from slimdeploy.models import load_model, require_single_io
    from slimdeploy.train import check_input_shape

    settings = settings.validate()
    if resume and force:
        raise UserError("give --resume (continue the existing prune) or --force (start it over), not both")
    run_dir = Path(run_dir)
    metrics = runinfo.dense_metrics(run_dir)
    init_path = run_dir / "dense" / "init.weights.h5"
    if not init_path.is_file():
        raise UserError(f"{init_path} is missing: the initial weights θ0 are needed to reset survivors (retrain with `slimdeploy train --force`)")
    dense_model = load_model(run_dir / "dense" / "model.keras", "dense model")
    require_single_io(dense_model, run_dir / "dense" / "model.keras", "dense model")
    graph = analyze(dense_model)
    layers = _layers_to_prune(graph, settings.mode, run_dir)
    if settings.mode == "structured" and settings.criterion == "bias-threshold":
        unbiased = [name for name in layers if not dense_model.get_layer(name).use_bias]
        if unbiased:
            raise UserError(f"--criterion bias-threshold needs a bias in every pruned layer; {unbiased[0]} of the dense "
                            f"model in {run_dir} has none (use_bias = false): use --criterion l1")
    mode_dir = run_dir / settings.mode
    if mode_dir.exists() and not (resume or force):
        raise UserError(f"{mode_dir} already exists; pass --resume to continue it or --force to start over")
    dataset = data if isinstance(data, Dataset) else runinfo.run_dataset(run_dir, data, data_override=data_override)
    check_input_shape(dense_model, dataset, f"dense model in {run_dir}")
    training = runinfo.run_recipe(run_dir).training
    epochs = settings.epochs or training.epochs
    rate = _rate(settings, dense_model, graph, layers)
    _check_rewind(settings, dataset, training, metrics.get("epochs") or training.epochs)
    seeds = list(settings.seeds) or [int(metrics["seed"])]
    started = time.perf_counter()
    _prepare_mode_dir(mode_dir, settings, rate, seeds, resume=resume, force=force)
    controls = _controls_needed(settings)
    bars = _Bars(progress, f"{settings.mode}", len(seeds) * (settings.rounds + len(controls)))
    ctx = _Context(
        settings=settings, run_dir=run_dir, mode_dir=mode_dir, data=dataset, training=training,
        dense_epochs=metrics.get("epochs") or training.epochs, epochs=epochs, rate=rate, graph=graph, layers=layers,
        dense_seed=int(metrics["seed"]), dense_model=dense_model,
        original_units={name: int(dense_model.get_layer(name).units) for name in graph.dense}, bars=bars,
        seeds=seeds, per_seed={},
        extra={"run_dir": str(run_dir), "random_init_seed_offset": RANDOM_INIT_OFFSET,
               "data": {**dataset.describe(), "override": bool(data_override)}},
    )
    try:
        for seed in seeds:
            ctx.per_seed[seed] = []
            _run_seed(ctx, seed, dense_model if seed == ctx.dense_seed else None)
    finally:
        bars.close()
    record = _record(ctx, complete=True)
    record["ticket"] = _write_ticket(ctx, record["rounds"], ctx.per_seed[seeds[0]])
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["train_seconds_total"] = round(_total_seconds(ctx.per_seed), 3)
    fsutil.write_json(mode_dir / "lottery.json", record)
    return record


def _layers_to_prune(graph: DenseGraph, mode: str, run_dir: Path) -> list[str]:
    if not graph.dense:
        raise UserError(f"the dense model in {run_dir} has no Dense layer to prune")
    if mode == "unstructured":
        return list(graph.dense)
    if not graph.prunable:
        reasons = "; ".join(f"{layer}: {reason}" for layer, reason in graph.unprunable.items())
        raise UserError(f"the dense model in {run_dir} has no Dense layer whose units can be removed ({reasons})")
    return list(graph.prunable)


def _unprunable(graph: DenseGraph, mode: str) -> dict[str, str]:
    # Unstructured masks work on any Dense kernel; only structured pruning leaves layers alone.
    return {} if mode == "unstructured" else dict(graph.unprunable)


def _rate(settings: PruneSettings, model, graph: DenseGraph, layers: list[str]) -> float:
    if settings.target is None:
        return settings.rate
    if settings.mode == "structured":
        def kept(rate):
            return neurons.kept_fraction(model, graph, rate, settings.rounds)
    else:
        sizes = masking.kernel_sizes(model, layers)

        def kept(rate):
            return masking.kept_fraction(sizes, graph.outputs, rate, settings.rounds, settings.scope)
    return solve_rate(kept, settings.target, settings.rounds)


def _check_rewind(settings: PruneSettings, data: Dataset, training, dense_epochs: int) -> None:
    steps = settings.rewind_steps
    total = math.ceil(len(data.x_train) / training.batch_size) * dense_epochs
    if steps is not None and steps >= total:
        raise UserError(f"--reset rewind:{steps} must rewind to fewer steps than the dense training took ({total})")


def _controls_needed(settings: PruneSettings) -> list[str]:
    if not settings.controls:
        return []
    kind, _ = parse_reset(settings.reset)
    # A control that is the main reset itself would repeat the same training.
    same = {"trained": "finetune", "random": "random_init"}.get(kind)
    return [name for name in CONTROLS if name != same]


def _prepare_mode_dir(mode_dir: Path, settings: PruneSettings, rate: float, seeds: list[int], *, resume: bool, force: bool) -> None:
    wanted = {"settings": settings.to_dict(), "rate": rate, "seeds": seeds}
    if mode_dir.exists() and resume:
        fsutil.remove_stale_temporaries(mode_dir)
        saved_path = mode_dir / "settings.json"
        if saved_path.is_file():
            saved = fsutil.read_json(saved_path, "prune settings")
            differ = [key for key in wanted["settings"] if saved.get("settings", {}).get(key) != wanted["settings"][key]]
            if saved.get("seeds") != seeds and "seeds" not in differ:
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
    fsutil.write_json(mode_dir / "settings.json", wanted)


class _Bars:
    """One bar for the rounds and one reused bar for the epochs of the training in progress."""

    def __init__(self, progress, description: str, total: int):
        self.progress = progress
        self.rounds = progress.add_task(f"{description} rounds", total=total, info="") if progress else None
        self.training_task = None

    def advance(self, info: str) -> None:
        if self.progress is not None:
            self.progress.update(self.rounds, advance=1, info=info)

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


# ---------------------------------------------------------------- one seed


def _seed_dir(ctx: _Context, seed: int) -> Path:
    return ctx.mode_dir if seed == ctx.dense_seed else ctx.mode_dir / f"seed_{seed}"


def _run_seed(ctx: _Context, seed: int, dense_model) -> None:
    from slimdeploy.models import load_model

    seed_dir = _seed_dir(ctx, seed)
    if dense_model is None:
        dense_model, dense_seconds = _seed_dense(ctx, seed, seed_dir)
        dense_path, init_path = seed_dir / "dense" / "model.keras", seed_dir / "dense" / "init.weights.h5"
    else:
        dense_path, init_path = ctx.run_dir / "dense" / "model.keras", ctx.run_dir / "dense" / "init.weights.h5"
        dense_seconds = runinfo.dense_metrics(ctx.run_dir).get("train_seconds")
    reference = _Reference.of(ctx, dense_model)
    rounds = ctx.per_seed[seed]
    entry = {"round": 0, **_measure(ctx, dense_model, reference), "seconds": dense_seconds, "path": _path_label(ctx, dense_path)}
    rounds.append(entry)
    sources = _Sources(ctx, seed, seed_dir, dense_model, init_path)

    state = _initial_state(ctx, dense_model)
    model = dense_model
    for k in range(1, ctx.settings.rounds + 1):
        round_dir = seed_dir / f"round_{k}"
        if _finished(round_dir):
            rounds.append(fsutil.read_json(round_dir / "metrics.json", "round metrics"))
            model, state = None, _load_state(round_dir)  # loaded only if a later round needs it
            ctx.bars.advance(f"seed {seed} round {k}: done earlier")
            continue
        if model is None:
            model = load_model(seed_dir / f"round_{k - 1}" / "model.keras", f"round {k - 1} model")
        started = time.perf_counter()
        new_state = _next_state(ctx, model, state, k)
        candidate = _reset(ctx, parse_reset(ctx.settings.reset)[0], model, state, new_state, sources)
        entry = {"round": k, **_train_and_measure(ctx, candidate, new_state, seed, reference, f"seed {seed} round {k}/{ctx.settings.rounds}")}
        entry.update(path=_path_label(ctx, round_dir / "model.keras"), seconds=round(time.perf_counter() - started, 3))
        _save(round_dir, candidate, new_state, entry)
        rounds.append(entry)
        model, state = candidate, new_state
        ctx.bars.advance(f"seed {seed} round {k}: test {entry['test_accuracy']:.4f}")
        fsutil.write_json(ctx.mode_dir / "lottery.json", _record(ctx, complete=False))

    final = rounds[-1]
    final["controls"] = {}
    for name in _controls_needed(ctx.settings):
        final["controls"][name] = _control(ctx, name, seed, seed_dir, sources, reference)
        ctx.bars.advance(f"seed {seed} control {name}: test {final['controls'][name]['test_accuracy']:.4f}")
        fsutil.write_json(ctx.mode_dir / "lottery.json", _record(ctx, complete=False))


def _path_label(ctx: _Context, path: Path) -> str:
    """Paths in the record are relative to the mode directory (``../dense/model.keras`` for the dense model)."""
    try:
        return path.relative_to(ctx.mode_dir).as_posix()
    except ValueError:
        return "../" + path.relative_to(ctx.run_dir).as_posix()


def _record(ctx: _Context, complete: bool) -> dict:
    return build_record(ctx.settings, rate=ctx.rate, seeds=ctx.seeds, per_seed=ctx.per_seed, prunable=ctx.layers,
                        unprunable=_unprunable(ctx.graph, ctx.settings.mode), complete=complete, extra=ctx.extra)


def _seed_dense(ctx: _Context, seed: int, seed_dir: Path):
    """A dense model of another seed: same architecture, data split and schedule, its own θ0 and data order."""
    import keras

    from slimdeploy.models import count_params, load_model, save_model, save_weights
    from slimdeploy.train import accuracy, fit, seed_everything

    dense_dir = seed_dir / "dense"
    if _finished(dense_dir, state=False):
        metrics = fsutil.read_json(dense_dir / "metrics.json", "dense metrics")
        return load_model(dense_dir / "model.keras", f"seed {seed} dense model"), metrics.get("train_seconds")
    seed_dir.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_dir(dense_dir, force=True) as staging:
        seed_everything(seed)
        model = keras.models.clone_model(ctx.dense_model)
        save_weights(model, staging / "init.weights.h5")
        started = time.perf_counter()
        fit(model, ctx.data, ctx.training, seed=seed, epochs=ctx.dense_epochs, progress=ctx.bars.for_training,
            description=f"seed {seed} dense")
        seconds = round(time.perf_counter() - started, 3)
        save_model(model, staging / "model.keras")
        fsutil.write_json(staging / "metrics.json", {
            "model": "dense", "seed": seed, "epochs": ctx.dense_epochs, "train_seconds": seconds,
            "params": count_params(model),
            "test_accuracy": accuracy(model, ctx.data.x_test, ctx.data.y_test),
            "val_accuracy": accuracy(model, ctx.data.x_val, ctx.data.y_val) if len(ctx.data.x_val) else None,
        })
    # Read back rather than reuse: a clone of a compiled model expects optimizer state in every weights file.
    return load_model(dense_dir / "model.keras", f"seed {seed} dense model"), seconds


def _finished(directory: Path, state: bool = True) -> bool:
    needed = ["model.keras", "metrics.json"] + (["state.npz"] if state else [])
    return directory.is_dir() and all((directory / name).is_file() for name in needed)


# ---------------------------------------------------------------- pruning state


def _initial_state(ctx: _Context, dense_model) -> dict[str, np.ndarray]:
    if ctx.settings.mode == "unstructured":
        return masking.full_masks(dense_model, ctx.layers)
    return {name: np.arange(dense_model.get_layer(name).units, dtype=np.int64) for name in ctx.layers}


def _next_state(ctx: _Context, model, state: dict[str, np.ndarray], round_index: int) -> dict[str, np.ndarray]:
    """Structured: original indices of the units kept. Unstructured: kernel masks (True = kept)."""
    settings = ctx.settings
    if settings.mode == "unstructured":
        sizes = {name: mask.size for name, mask in state.items()}
        counts = masking.keep_counts(sizes, ctx.graph.outputs, ctx.rate, round_index, settings.scope)
        return masking.magnitude_masks(model, state, counts)
    original = {name: ctx.original_units[name] for name in ctx.layers}
    widths = neurons.planned_widths(original, ctx.rate, round_index)
    positions = neurons.choose_units(model, ctx.graph, settings.criterion, widths=widths, threshold=settings.threshold)
    return {name: state[name][positions[name]] for name in ctx.layers}


def _load_state(round_dir: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(round_dir / "state.npz", allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{round_dir / 'state.npz'} is unreadable ({exc}); rerun with --force") from exc


def _save(directory: Path, model, state: dict[str, np.ndarray], entry: dict) -> None:
    from slimdeploy.models import save_model

    directory.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_dir(directory, force=True) as staging:
        save_model(model, staging / "model.keras")
        if state is not None:
            np.savez(staging / "state.npz", **state)
        fsutil.write_json(staging / "metrics.json", entry)


# ---------------------------------------------------------------- resets


class _Sources:
    """Dense-architecture models that survivors are reset to, built on first use."""

    def __init__(self, ctx: _Context, seed: int, seed_dir: Path, dense_model, init_path: Path):
        self.ctx, self.seed, self.seed_dir, self.dense_model, self.init_path = ctx, seed, seed_dir, dense_model, init_path
        self._cache: dict[str, object] = {}

    def get(self, kind: str):
        if kind not in self._cache:
            self._cache[kind] = getattr(self, f"_{kind}")()
        return self._cache[kind]

    def _blank(self):
        import keras

        return keras.models.clone_model(self.dense_model)

    def _init(self):
        model = self._blank()
        model.load_weights(self.init_path)
        return model

    def _random(self):
        from slimdeploy.train import seed_everything

        seed_everything(self.seed + RANDOM_INIT_OFFSET)
        return self._blank()

    def _rewind(self):
        """θ_K: the dense training replayed from θ0 for K steps (same seed, same data order), cached."""
        import keras

        from slimdeploy.models import save_weights
        from slimdeploy.train import fit

        steps = self.ctx.settings.rewind_steps
        cache = self.seed_dir / f"rewind_{steps}.weights.h5"
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
        self.seed_dir.mkdir(parents=True, exist_ok=True)
        save_weights(model, cache)
        return model


def _reset(ctx: _Context, kind: str, previous, previous_state, new_state, sources: _Sources):
    """The pruned model with the survivors' starting values chosen by ``kind``."""
    import keras

    if ctx.settings.mode == "structured":
        if kind == "trained":
            return neurons.shrink(previous, neurons.positions_within(previous_state, new_state), ctx.graph)
        return neurons.shrink(sources.get(kind), new_state, ctx.graph)
    source = previous if kind == "trained" else sources.get(kind)
    model = keras.models.clone_model(source)
    model.set_weights(source.get_weights())
    masking.apply_masks(model, new_state)
    return model


def _control(ctx: _Context, name: str, seed: int, seed_dir: Path, sources: _Sources, reference: "_Reference") -> dict:
    """The final round's mask/architecture trained from a fresh random init, or by fine-tuning."""
    from slimdeploy.models import load_model

    directory = seed_dir / "controls" / name
    if _finished(directory, state=False):
        return fsutil.read_json(directory / "metrics.json", "control metrics")
    rounds = ctx.settings.rounds
    final_state = _load_state(seed_dir / f"round_{rounds}")
    started = time.perf_counter()
    if name == "finetune":
        before = seed_dir / f"round_{rounds - 1}"
        previous = load_model(before / "model.keras", "round model") if rounds > 1 else sources.dense_model
        previous_state = _load_state(before) if rounds > 1 else _initial_state(ctx, sources.dense_model)
        candidate = _reset(ctx, "trained", previous, previous_state, final_state, sources)
    else:
        candidate = _reset(ctx, "random", None, None, final_state, sources)
    entry = _train_and_measure(ctx, candidate, final_state, seed, reference, f"seed {seed} control {name}")
    entry.update(path=_path_label(ctx, directory / "model.keras"), seconds=round(time.perf_counter() - started, 3))
    _save(directory, candidate, None, entry)
    return entry


# ---------------------------------------------------------------- training and measuring


def _train_and_measure(ctx: _Context, model, state: dict[str, np.ndarray], seed: int, reference: "_Reference", description: str) -> dict:
    from slimdeploy.train import fit

    unstructured = ctx.settings.mode == "unstructured"
    if unstructured:
        masking.attach_masks(model, state)
    started = time.perf_counter()
    try:
        fit(model, ctx.data, ctx.training, seed=seed, epochs=ctx.epochs, progress=ctx.bars.for_training, description=description)
    finally:
        if unstructured:
            masking.detach_masks(model, state)
    train_seconds = time.perf_counter() - started
    if unstructured and masking.masked_nonzeros(model, state):
        raise WorkError(f"{description}: {masking.masked_nonzeros(model, state)} pruned weights became non-zero during training")
    entry = _measure(ctx, model, reference)
    entry["train_seconds"] = round(train_seconds, 3)
    return entry


@dataclasses.dataclass
class _Reference:
    """The dense model's sizes that fractions are taken of."""

    params: int
    dense_params: int         # kernel + bias entries of all Dense layers
    kernel_weights: int       # entries of the pruned Dense kernels

    @classmethod
    def of(cls, ctx: _Context, model) -> "_Reference":
        from slimdeploy.models import count_params

        return cls(count_params(model), _dense_params(model, ctx.graph.dense), masking.kernel_zeros(model, ctx.layers)[1])


def _dense_params(model, names: list[str]) -> int:
    return int(sum(np.prod(weight.shape) for name in names for weight in model.get_layer(name).weights))


def _measure(ctx: _Context, model, reference: _Reference) -> dict:
    from slimdeploy.models import count_flops, count_nonzero_params, count_params, dense_widths
    from slimdeploy.train import accuracy

    params = count_params(model)
    zeros, kernel_total = masking.kernel_zeros(model, ctx.layers)
    if ctx.settings.mode == "unstructured":
        remaining = (kernel_total - zeros) / reference.kernel_weights
    else:
        remaining = _dense_params(model, ctx.graph.dense) / reference.dense_params
    data = ctx.data
    return {
        "params": params,
        "nonzero_params": count_nonzero_params(model),
        "params_fraction": params / reference.params,
        "flops": count_flops(model),
        "nonzero_flops": count_flops(model, nonzero_only=True),
        "weights_remaining": remaining,
        "zero_weights": zeros,
        "prunable_weights": kernel_total,
        "widths": dense_widths(model),
        "val_accuracy": accuracy(model, data.x_val, data.y_val) if len(data.x_val) else None,
        "test_accuracy": accuracy(model, data.x_test, data.y_test),
    }


def _total_seconds(per_seed: dict[int, list[dict]]) -> float:
    total = 0.0
    for rounds in per_seed.values():
        for entry in rounds[1:]:
            total += entry.get("seconds") or 0.0
            total += sum(control.get("seconds") or 0.0 for control in (entry.get("controls") or {}).values())
    return total


def _write_ticket(ctx: _Context, rounds: list[dict], primary_rounds: list[dict]) -> dict | None:
    ticket = choose_ticket(rounds, ctx.settings.max_drop)
    if ticket is None:
        return None
    source = ctx.mode_dir / primary_rounds[ticket["round"]]["path"]
    with fsutil.atomic_path(ctx.mode_dir / "ticket.keras", suffix=".keras") as tmp:
        shutil.copyfile(source, tmp)
    ticket.update(path="ticket.keras", source=primary_rounds[ticket["round"]]["path"],
                  weights_remaining=rounds[ticket["round"]]["weights_remaining"],
                  test_accuracy=rounds[ticket["round"]]["test_accuracy"])
    return ticket
