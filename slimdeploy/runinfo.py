"""Reading what an earlier stage left in a run directory."""

from __future__ import annotations

from pathlib import Path

from slimdeploy import fsutil
from slimdeploy.errors import UserError


def dense_metrics(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} is a file, not a run directory (give the directory that slimdeploy train --out wrote)")
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    path = run_dir / "dense" / "metrics.json"
    if not path.is_file() or not (run_dir / "dense" / "model.keras").is_file():
        raise UserError(f"{run_dir} has no dense model (expected {run_dir / 'dense'}/model.keras and metrics.json; run `slimdeploy train --out {run_dir}` first)")
    metrics = fsutil.read_json(path, "dense metrics")
    if not isinstance(metrics, dict) or "recipe" not in metrics:
        raise UserError(f"{path} is not a slimdeploy metrics file (no 'recipe')")
    return metrics


def run_recipe(run_dir: str | Path):
    from slimdeploy.config import recipe_from_dict

    raw = dict(dense_metrics(run_dir)["recipe"])
    source = str(Path(run_dir) / "dense" / "metrics.json")
    model = {"input_shape": list(raw.pop("input_shape")), "layers": list(raw.pop("layers"))}
    raw.pop("path", None)
    return recipe_from_dict({**raw, "model": model}, source)


def run_dataset(run_dir: str | Path, data: str | Path | None = None):
    """The same train/validation/test split the dense model was trained with."""
    from slimdeploy.data import load_dataset

    metrics = dense_metrics(run_dir)
    recipe = metrics["recipe"]
    described = metrics.get("data", {})
    limit = None
    if described.get("train") is not None and described.get("validation") is not None:
        full = described["train"] + described["validation"]
        limit = full if full < 60000 else None
    return load_dataset(
        data,
        validation_size=recipe["dataset"]["validation_size"] if limit is None else described["validation"],
        seed=metrics["seed"],
        limit=limit,
    )
