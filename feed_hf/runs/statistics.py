"""Paired comparisons of seeded runs: mean difference, paired t test (df, p), minimum detectable difference."""

from __future__ import annotations

import math
import statistics
from typing import Any

__all__ = [
    "holm_adjusted",
    "mean_std",
    "minimum_detectable_difference",
    "one_sided_paired",
    "paired_comparison",
    "paired_comparisons",
]

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


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (n - 1; 0 for one value), n and the values of one method's seeds."""
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
    }


def minimum_detectable_difference(sd_difference: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """(t_{1-α/2, n-1} + t_{power, n-1}) · sd_diff / √n: the paired difference this design detects with `power`."""
    from scipy import stats  # scipy comes with scikit-learn, a dependency

    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd_difference / math.sqrt(n))


def paired_comparison(method: dict[int, float], reference: dict[int, float]) -> dict[str, Any]:
    """`method` − `reference` on the seeds both have (values keyed by seed): paired t test and MDD.

    t, df, p and the MDD are None below two pairs, and when every difference is the same (zero spread: the t test is
    undefined, and scipy's p = 0 would claim certainty no data gives); p is two-sided (`scipy.stats.ttest_rel`).
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
    sd = statistics.stdev(differences)
    if sd == 0:
        return {**result, "sd_difference": 0.0, "df": n - 1, "note": "zero spread: every paired difference is equal"}
    from scipy import stats

    test = stats.ttest_rel([method[s] for s in seeds], [reference[s] for s in seeds])
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


def one_sided_paired(comparison: dict[str, Any]) -> dict[str, float | None]:
    """One-sided p values of "method > reference" for a `paired_comparison`: the paired t test and the Wilcoxon
    signed-rank test (`scipy.stats.wilcoxon`, exact below 50 pairs without ties). None below two pairs."""
    differences = comparison["differences"]
    if comparison["n"] < 2 or comparison["t"] is None:
        return {"t_p": None, "wilcoxon_p": None}
    from scipy import stats

    t_p = float(stats.t.sf(comparison["t"], comparison["df"]))
    nonzero = [d for d in differences if d != 0]
    wilcoxon_p = float(stats.wilcoxon(nonzero, alternative="greater").pvalue) if nonzero else None
    return {"t_p": t_p, "wilcoxon_p": wilcoxon_p}


def holm_adjusted(p_values: dict[str, float | None]) -> dict[str, float | None]:
    """Holm's step-down adjustment over one family of tests (None, a test that could not run, stays None).

    The k-th smallest of m p values becomes max over j <= k of min(1, (m - j + 1) * p_(j)): reject where the
    adjusted p is below alpha, with the family-wise error rate held at alpha."""
    ranked = sorted((p, name) for name, p in p_values.items() if p is not None)
    adjusted: dict[str, float | None] = {name: None for name in p_values}
    running = 0.0
    for rank, (p, name) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        adjusted[name] = running
    return adjusted


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
