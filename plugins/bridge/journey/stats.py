"""Correlation over a team with its confidence interval: pure functions, no I/O, no SciPy at run time.

* Pearson's r on the values; Spearman's rho = Pearson's r on the ranks (ties get their average rank).
* The confidence interval is Fisher's z: ``z = atanh(r)``, ``z ± q · se``, back with ``tanh``. The standard
  error is ``1 / sqrt(n − 3)`` for Pearson and ``sqrt(1.06 / (n − 3))`` for Spearman (Fieller, Hartley and
  Pearson 1957, the usual choice for rank correlations). ``q`` is the standard normal quantile of the level.
* No interval below 4 pairs (n − 3 must be positive); no coefficient at all when either side is constant.

The callers decide what is shown; these functions only compute (tests compare them with SciPy and with a
hand computation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

Method = Literal["pearson", "spearman"]
METHOD_LABELS: dict[str, str] = {"pearson": "皮尔逊相关系数", "spearman": "斯皮尔曼等级相关系数"}
MIN_PAIRS_FOR_INTERVAL = 4


@dataclass(frozen=True)
class Correlation:
    """A coefficient with its Fisher-z interval (None below 4 pairs) over ``n`` pairs."""

    method: Method
    r: float
    n: int
    level: float
    low: float | None
    high: float | None


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        shared = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[order[k]] = shared
        i = j + 1
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; None for fewer than 2 pairs or a constant side."""
    if len(x) != len(y):
        raise ValueError(f"pearson: {len(x)} values against {len(y)}")
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson's r of the average ranks)."""
    return pearson(ranks(x), ranks(y))


def fisher_interval(
    r: float, n: int, *, method: Method = "pearson", level: float = 0.95
) -> tuple[float, float] | None:
    """The two-sided ``level`` interval of a correlation by Fisher's z; None when n < 4."""
    if n < MIN_PAIRS_FOR_INTERVAL:
        return None
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be between 0 and 1, got {level}")
    se = math.sqrt(1.06 / (n - 3)) if method == "spearman" else 1 / math.sqrt(n - 3)
    q = NormalDist().inv_cdf(0.5 + level / 2)
    if abs(r) >= 1.0:
        return r, r  # atanh(±1) is infinite: a perfect correlation's interval collapses onto it (as SciPy's)
    z = math.atanh(r)
    return math.tanh(z - q * se), math.tanh(z + q * se)


def correlate(
    x: Sequence[float], y: Sequence[float], *, method: Method = "spearman", level: float = 0.95
) -> Correlation | None:
    """The coefficient and its interval; None when it cannot be computed (under 2 pairs, a constant side)."""
    r = spearman(x, y) if method == "spearman" else pearson(x, y)
    if r is None:
        return None
    interval = fisher_interval(r, len(x), method=method, level=level)
    low, high = interval if interval is not None else (None, None)
    return Correlation(method=method, r=r, n=len(x), level=level, low=low, high=high)
