"""A benchmark cell's identity (model, runtime, batch, threads, mode, settings) and every string that
names it: its id in bench.json, its github-action-benchmark name, its label in the report, the key the
regression gate and the CSV match cells on, and the group compared with one baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

# Short names of settings in cell ids: "dense|onnxruntime|b64|t1|latency|opt=all".
ID_KEYS = {"graph_optimization": "opt", "precision": "precision"}


def settings_text(settings: dict | None) -> str:
    """Runtime settings as 'key=value,...' in key order ('' when none)."""
    settings = settings or {}
    return ",".join(f"{k}={settings[k]}" for k in sorted(settings))


def _plural_threads(threads: int) -> str:
    return f"{threads} thread{'s' if threads != 1 else ''}"


@dataclass(frozen=True)
class CellKey:
    # None where a record leaves them out (a label needs only the batch); matched and shown as such.
    model: str | None
    runtime: str | None
    batch: int
    threads: int | None
    mode: str | None
    settings: tuple = ()  # (key, value) pairs in key order: hashable, and equal whatever the dict order

    @classmethod
    def from_parts(cls, model: str | None, runtime: str | None, batch: int, threads: int | None, mode: str | None,
                   settings: dict | None = None) -> CellKey:
        return cls(model, runtime, batch, threads, mode, tuple(sorted((settings or {}).items())))

    @classmethod
    def of(cls, cell) -> CellKey:
        """The key of a ``Cell`` or ``Comparison`` record (bench.json)."""
        return cls.from_parts(cell.model, cell.runtime, cell.batch, cell.threads, cell.mode, cell.settings)

    @property
    def settings_dict(self) -> dict:
        return dict(self.settings)

    @property
    def id(self) -> str:
        """The cell id in bench.json: 'dense|onnxruntime|b64|t1|latency|opt=all'."""
        parts = [self.model, self.runtime, f"b{self.batch}", f"t{self.threads}", self.mode]
        parts += [f"{ID_KEYS.get(k, k)}={v}" for k, v in self.settings]
        return "|".join(parts)

    @property
    def group(self) -> tuple:
        """The key without the model: the cells compared with one baseline."""
        return (self.runtime, self.batch, self.threads, self.mode, self.settings)

    @property
    def name(self) -> str:
        """A stable, unique, readable name (github-action-benchmark matches runs by name):
        'dense | onnxruntime | batch 64 | 1 thread | latency | graph_optimization=all'."""
        parts = [str(self.model), str(self.runtime), f"batch {self.batch}"]
        if self.threads is not None:
            parts.append(_plural_threads(self.threads))
        if self.mode:
            parts.append(str(self.mode))
        if self.settings:
            parts.append(settings_text(self.settings_dict))
        return " | ".join(parts)

    def label(self, *, threads: bool, mode: bool, settings: bool = False) -> str:
        """'batch 64', plus threads, mode and settings only when asked (the benchmark varied them)."""
        label = f"batch {self.batch}"
        if threads and self.threads is not None:
            label += f", {_plural_threads(self.threads)}"
        if mode and self.mode:
            label += f", {self.mode} mode"
        if settings and self.settings:
            label += f", {settings_text(self.settings_dict)}"
        return label
