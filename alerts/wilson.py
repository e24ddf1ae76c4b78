"""Wilson score interval of a binomial proportion.

Why Wilson and not the raw rate or the normal approximation: with few trials the raw rate swings
(1 return out of 2 deliveries is 50 %), and the normal interval collapses to a point at 0 or n hits.
The Wilson interval stays inside [0, 1] and is wide for small samples, so "the lower bound is above
the baseline" is a statement that a small sample cannot make by luck.
"""
from __future__ import annotations

import math


def wilson_interval(hits: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """(lower, upper) bounds of hits/trials at the confidence of `z` (1.96: 95 %); (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    if hits < 0 or hits > trials:
        # more returns than deliveries in a window (a late delivery fact) is capped, not an error
        hits = min(max(hits, 0), trials)
    p = hits / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_lower(hits: int, trials: int, z: float = 1.96) -> float:
    return wilson_interval(hits, trials, z)[0]


def wilson_upper(hits: int, trials: int, z: float = 1.96) -> float:
    return wilson_interval(hits, trials, z)[1]
