"""Paired comparisons of seeded runs: mean difference, paired t test (df, p), minimum detectable difference."""

from __future__ import annotations

import math
import statistics
from typing import Any

__all__ = ["minimum_detectable_difference", "paired_comparison", "paired_comparisons"]

ALPHA = 0.05  # two-sided
POWER = 0.8

# (method, reference): each distillation method against CE, and the feature-level methods against logit KD.
COMPARISONS = (
    ("kd_ensemble", "ce"),
    ("feed_single", "ce"),
    ("pfeed_3", "ce"),
    ("feed_single", "kd_ensemble"),
    ("pfeed_3", "kd_ensemble"),
    ("pfeed_3", "feed_single"),
)


def minimum_detectable_difference(sd_difference: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """(t_{1-α/2, n-1} + t_{power, n-1}) · sd_diff / √n: the paired difference this design detects with `power`."""
    from scipy import stats  # scipy comes with scikit-learn, a dependency

    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd_difference / math.sqrt(n))


def paired_comparison(method: dict[int, float], reference: dict[int, float]) -> dict[str, Any]:
    """`method` − `reference` on the seeds both have (values keyed by seed): paired t test and MDD.

    t, df, p and the MDD are None below two pairs; p is two-sided (`scipy.stats.ttest_rel`).
    """
    seeds = sorted(set(method) & set(reference))
    differences = [method[seed] - reference[seed] for seed in seeds]
    n = len(seeds)
    result: dict[str, Any] = {
        "seeds": seeds,
        "differences": differences,
        "n": n,
        "mean_difference": statistics.mean(differences) if n else None,
        "sd_difference": None,
        "t": None,
        "df": None,
        "p": None,
        "mdd": None,
    }
    if n < 2:
        return result
    from scipy import stats

    test = stats.ttest_rel([method[s] for s in seeds], [reference[s] for s in seeds])
    sd = statistics.stdev(differences)
    result.update(
        sd_difference=sd,
        t=_finite_or_none(test.statistic),
        df=n - 1,
        p=_finite_or_none(test.pvalue),
        mdd=minimum_detectable_difference(sd, n),
    )
    return result


def paired_comparisons(methods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every comparison of `COMPARISONS` whose two methods ran, keyed "method - reference"."""
    by_seed = {name: dict(zip(m["seeds"], m["values"], strict=True)) for name, m in methods.items() if "seeds" in m}
    return {
        f"{name} - {reference}": paired_comparison(by_seed[name], by_seed[reference])
        for name, reference in COMPARISONS
        if name in by_seed and reference in by_seed
    }


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
