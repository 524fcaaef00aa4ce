"""The pre-registered analysis of a paired grid: the plan, stated in the report before any number, and its tests.

One primary comparison ("method - reference", one-sided: method > reference, paired t at `ALPHA`), fixed in the
experiment's config before the grid runs; every other paired comparison is secondary, two-sided, and Holm-corrected as
one family, so the report cannot pick its headline after seeing the numbers.
"""

from __future__ import annotations

from typing import Any

from ..evaluation.significance import format_p, p_equation
from .experiment_plots import comparison_label
from .statistics import ALPHA, COMPARISONS, holm_adjusted, one_sided_paired

__all__ = ["analysis_plan", "plan_section", "preregistered_tests", "tests_section"]


def analysis_plan(primary: str) -> dict[str, Any]:
    """The primary comparison and the secondary family (every other comparison of `COMPARISONS`)."""
    known = [f"{method} - {reference}" for method, reference in COMPARISONS]
    if primary not in known:
        raise ValueError(f"primary_comparison={primary!r} is not one of the grid's comparisons {known}")
    return {"primary": primary, "alpha": ALPHA, "secondary": [name for name in known if name != primary]}


def preregistered_tests(paired: dict[str, dict[str, Any]], plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's tests on `paired` (`statistics.paired_comparisons`): primary one-sided, secondaries Holm-adjusted."""
    primary = paired.get(plan["primary"])
    result: dict[str, Any] = {"plan": plan, "primary": None, "secondary": {}}
    if primary is not None:
        one_sided = one_sided_paired(primary)
        result["primary"] = {
            **one_sided,
            "mean_difference": primary["mean_difference"],
            "n": primary["n"],
            "mdd": primary["mdd"],
            "significant": one_sided["t_p"] is not None and one_sided["t_p"] < plan["alpha"],
        }
    ran = [name for name in plan["secondary"] if name in paired]
    adjusted = holm_adjusted({name: paired[name]["p"] for name in ran})
    for name in ran:
        result["secondary"][name] = {
            "mean_difference": paired[name]["mean_difference"],
            "p": paired[name]["p"],
            "holm_p": adjusted[name],
            "significant": adjusted[name] is not None and adjusted[name] < plan["alpha"],
        }
    return result


def plan_section(plan: dict[str, Any], n_seeds: int) -> list[str]:
    """Markdown: what is tested, decided before the grid ran (placed before every table of numbers)."""
    secondaries = ", ".join(comparison_label(name) for name in plan["secondary"])
    return [
        "## Analysis plan (pre-registered: fixed in the config before the grid ran)",
        "",
        f"- **Primary test**: {comparison_label(plan['primary'])} > 0, paired one-sided t test over the {n_seeds} "
        f"paired seeds, α = {plan['alpha']:g}. The one-sided Wilcoxon signed-rank p and the minimum detectable "
        "difference are reported beside it, not tested again.",
        f"- **Secondary** (two-sided paired t, Holm-corrected as one family of {len(plan['secondary'])}): "
        f"{secondaries}.",
        "- Every arm of a seed makes the same optimizer steps and image passes (recorded per run below).",
        "",
    ]


def tests_section(tests: dict[str, Any]) -> list[str]:
    """Markdown: the primary result first, then the Holm-corrected secondaries."""
    plan, primary = tests["plan"], tests["primary"]
    lines = ["## Pre-registered tests", ""]
    if primary is None or primary["t_p"] is None:
        why = "fewer than 2 paired seeds, or every paired difference equal"
        lines += [f"- Primary ({comparison_label(plan['primary'])}): not testable ({why}).", ""]
    else:
        verdict = "**significant**" if primary["significant"] else "**not significant**"
        wilcoxon = p_equation(primary["wilcoxon_p"])
        lines += [
            f"- Primary, {comparison_label(plan['primary'])}: {primary['mean_difference']:+.2f} points (n = "
            f"{primary['n']}), one-sided paired t {p_equation(primary['t_p'], 4)}: {verdict} at α = {plan['alpha']:g} "
            f"(one-sided Wilcoxon {wilcoxon}; minimum detectable difference {primary['mdd']:.2f} points).",
            "",
        ]
    if tests["secondary"]:
        lines += [
            "| secondary comparison | mean difference | p (two-sided) | Holm-adjusted p | at α |",
            "|---|---|---|---|---|",
        ]
        for name, test in tests["secondary"].items():
            p, holm = format_p(test["p"], 4), format_p(test["holm_p"], 4)
            mark = "significant" if test["significant"] else "not significant"
            lines.append(f"| {comparison_label(name)} | {test['mean_difference']:+.2f} | {p} | {holm} | {mark} |")
        lines.append("")
    return lines
