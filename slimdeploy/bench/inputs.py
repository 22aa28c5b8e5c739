"""The inputs a benchmark feeds: the model's own dtype, in a range the model can take.

Floats are uniform in [0, 1) (or ``--input-range``): timing does not depend on their values.
Integer inputs are token ids that index an embedding table and must stay below its size, or the
runtime fails or reads one row only. Their range comes from ``--input-range``, else from the model
(the embedding's ``input_dim``, read by ``bench.artifacts``), else ``DEFAULT_INTEGER_RANGE``.
"""

from __future__ import annotations

import numpy as np

from slimdeploy.records.bench import InputInfo

FLOAT_RANGE = (0.0, 1.0)
DEFAULT_INTEGER_RANGE = (0, 128)


def group_range(ranges: list) -> tuple | None:
    """The range every model of a group can take: the intersection of the known ones."""
    known = [r for r in ranges if r is not None]
    if not known:
        return None
    return max(r[0] for r in known), min(r[1] for r in known)


def make_input(rng: np.random.Generator, shape: tuple, dtype, value_range: tuple | None,
               range_from: str = "model") -> tuple[np.ndarray, InputInfo]:
    """An array of ``shape`` and ``dtype``, values in [low, high), and how it was drawn (recorded in each cell)."""
    dtype = np.dtype(dtype)
    if value_range is None:
        range_from = "default"
    if np.issubdtype(dtype, np.integer):
        low, high = value_range or DEFAULT_INTEGER_RANGE
        low, high = int(np.ceil(low)), int(np.ceil(high))
        array = rng.integers(low, max(high, low + 1), size=shape, dtype=dtype)
    else:
        low, high = value_range or FLOAT_RANGE
        low, high = float(low), float(high)
        array = (low + (high - low) * rng.random(shape, dtype=np.float64)).astype(dtype)
    return array, InputInfo(dtype=dtype.name, low=low, high=high, range_from=range_from)
