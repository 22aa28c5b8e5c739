"""How much each round keeps, and the per-round rate that reaches a final target.

Counts come from the original sizes with the rate compounded (``n * (1 - rate)^k``), so rounding
never accumulates.
"""

from __future__ import annotations

import math
from typing import Callable

from slimdeploy.errors import UserError


def keep_count(total: int, rate: float, round_index: int) -> int:
    """Units or weights kept after ``round_index`` rounds that each remove ``rate`` of the rest (at least 1)."""
    return max(1, int(math.floor(total * (1.0 - rate) ** round_index + 0.5)))


def solve_rate(fraction_kept: Callable[[float], float], target: float, rounds: int) -> float:
    """The smallest per-round rate whose final kept fraction is at most ``target``, by bisection
    (``fraction_kept(rate)`` must not increase with the rate)."""
    low, high = 0.0, 1.0 - 1e-12
    floor = fraction_kept(high)
    if floor > target:
        raise UserError(
            f"--target {target:g} is unreachable: with every prunable layer down to one unit or weight, "
            f"{floor:.4f} of the prunable weights remain after {rounds} round(s)"
        )
    for _ in range(80):
        middle = (low + high) / 2
        low, high = (low, middle) if fraction_kept(middle) <= target else (middle, high)
        if high - low < 1e-10:
            break
    return high
