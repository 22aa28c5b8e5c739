"""The Session interface every runtime implements, and how a runtime says it is unavailable.

A session is opened for one artifact at one static batch size and thread count:
``open(artifact, batch, threads, options)``, then ``set_input(array)`` once and ``run()``
per timed call (the input stays where the runtime wants it, so a call measures the
runtime, not a copy into it); ``infer(array)`` does both and returns the output;
``close()`` frees it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Availability:
    available: bool
    version: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        out = {"available": self.available}
        if self.version:
            out["version"] = self.version
        if self.reason:
            out["reason"] = self.reason
        return out


def package_availability(module: str, distributions: tuple[str, ...], install_hint: str) -> Availability:
    """Whether a Python package can be imported, without importing it (cheap, no side effects)."""
    if importlib.util.find_spec(module) is None:
        return Availability(False, reason=f"{module} is not installed ({install_hint})")
    for dist in distributions:
        try:
            return Availability(True, version=metadata.version(dist))
        except metadata.PackageNotFoundError:
            continue
    return Availability(True)


class Session:
    """One loaded artifact, ready to run a fixed input shape."""

    runtime = "?"
    # Calls one timed step makes in throughput mode (async runtimes run several at once).
    parallelism = 1

    def __init__(self, artifact: str | Path, batch: int, threads: int, options: dict | None = None,
                 mode: str = "latency"):
        self.artifact = Path(artifact)
        self.batch = int(batch)
        self.threads = int(threads)
        self.options = dict(options or {})
        self.mode = mode

    @classmethod
    def open(cls, artifact, batch: int, threads: int, options: dict | None = None, mode: str = "latency") -> "Session":
        return cls(artifact, batch, threads, options, mode)

    # The full static input shape this session runs, batch included, and the input's
    # element type; set by each runtime when it opens the artifact.
    _shape: tuple[int, ...] = ()
    _dtype: np.dtype = np.dtype(np.float32)

    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    def input_dtype(self) -> np.dtype:
        return self._dtype

    def _fitting_input(self, array: np.ndarray, dtype=None) -> np.ndarray:
        """The input as the contiguous array the runtime reads, or ValueError if it does not fit."""
        array = np.ascontiguousarray(array, dtype=self._dtype if dtype is None else dtype)
        if array.shape != self._shape:
            raise ValueError(f"input shape {array.shape} does not fit {self._shape}")
        return array

    # --- what each runtime provides -------------------------------------------------

    def set_input(self, array: np.ndarray) -> None:
        raise NotImplementedError

    def run(self):
        """One inference on the input given to ``set_input``; returns the output."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # --- optional ---------------------------------------------------------------------
    def run_parallel(self) -> None:
        """Throughput mode: ``parallelism`` inferences at once (sync runtimes: one)."""
        self.run()

    def engine_latency_ms(self) -> float | None:
        """The runtime's own latency for the last call, where it measures one."""
        return None

    def applied_settings(self) -> dict:
        """Settings as the runtime reports them after loading (threads, precision, ...)."""
        return {}

    # --- derived ----------------------------------------------------------------------
    def infer(self, array: np.ndarray) -> np.ndarray:
        self.set_input(array)
        return np.asarray(self.run())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
