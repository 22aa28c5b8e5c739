"""The inputs a benchmark feeds: the model's own dtype, in a range the model can take.

Timing does not depend on the values of a float input, so floats are uniform in [0, 1)
(or ``--input-range``). Integer inputs are token ids that index an embedding table: they
must stay below its size, or the runtime fails (ONNX Runtime) or reads one row only
(values cast from floats in [0, 1) are all 0). Their range comes from ``--input-range``,
else from the model (the embedding's ``input_dim``, read by ``bench.artifacts``), else
``DEFAULT_INTEGER_RANGE`` for integer inputs that index nothing.
"""

from __future__ import annotations

import numpy as np

FLOAT_RANGE = (0.0, 1.0)
DEFAULT_INTEGER_RANGE = (0, 128)


def group_range(ranges: list) -> tuple | None:
    """The range every model of a group can take: the intersection of the known ones."""
    known = [r for r in ranges if r is not None]
    if not known:
        return None
    return max(r[0] for r in known), min(r[1] for r in known)


def make_input(rng: np.random.Generator, shape: tuple, dtype, value_range: tuple | None,
               range_from: str = "model") -> tuple[np.ndarray, dict]:
    """An array of ``shape`` and ``dtype`` and how it was drawn (recorded in each cell):
    integers in [low, high), floats uniform in [low, high)."""
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
    return array, {"dtype": dtype.name, "low": low, "high": high, "range_from": range_from}
