"""ASTM E112's statistics over several fields: mean, 95% confidence interval and relative accuracy.

E112 (section 15) measures n fields, takes the mean x̄ and standard deviation s of the field
values (N_A for the planimetric method, the mean intercept l for the intercept method),
CI = t(0.975, n - 1) s / sqrt(n), %RA = 100 CI / x̄, and reports G of x̄. The G interval is G of
x̄ - CI and x̄ + CI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

# Student's t, two-sided 95%, for 1..30 degrees of freedom.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_975(df: int) -> float:
    """Two-sided 95% Student t quantile (table to 30 degrees of freedom, Cornish-Fisher beyond)."""
    if df < 1:
        raise ValueError("t needs at least one degree of freedom")
    if df <= len(T_975):
        return T_975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class FieldStatistics:
    """One quantity over n fields."""

    n: int
    mean: float
    sd: float  # NaN for one field
    ci95: float  # half-width; NaN for one field
    relative_accuracy_pct: float  # 100 ci95 / mean

    def g_interval(self, to_g: Callable[[float], float]) -> tuple[float, float]:
        """(G of the mean, G half-width of the 95% interval, i.e. |G(mean + ci) - G(mean - ci)| / 2, NaN if undefined)."""
        centre = to_g(self.mean)
        low, high = self.mean - self.ci95, self.mean + self.ci95
        if not (low > 0 and math.isfinite(high)):
            return centre, math.nan
        return centre, abs(to_g(high) - to_g(low)) / 2


def field_statistics(values: Sequence[float]) -> FieldStatistics:
    """Mean, standard deviation, 95% CI and %RA of the finite values (NaN where undefined)."""
    finite = [float(v) for v in values if math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return FieldStatistics(0, math.nan, math.nan, math.nan, math.nan)
    mean = sum(finite) / n
    if n == 1:
        return FieldStatistics(1, mean, math.nan, math.nan, math.nan)
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    ci = t_975(n - 1) * sd / math.sqrt(n)
    return FieldStatistics(n, mean, sd, ci, 100 * ci / mean if mean else math.nan)
