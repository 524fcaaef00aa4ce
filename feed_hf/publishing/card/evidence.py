"""The seed-level evidence a card carries (`feed-hf card --evidence REPORT.json`): one run's accuracy says little
about whether FEED helped, so a card made from an experiment's run can state what the whole paired grid showed.

REPORT.json is what `feed-hf experiment` writes beside its report (`methods`: per-method top-1 over seeds;
`paired`: method − reference paired t tests with the minimum detectable difference; `preregistered`: the plan's
primary one-sided test and Holm-corrected secondaries, when the config named them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...evaluation.significance import format_p, p_equation

__all__ = ["evidence_facts", "read_evidence"]


def read_evidence(path: str | Path) -> dict[str, Any]:
    """An experiment's REPORT.json, refused in one line when it is not one (no `methods` and `paired`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--evidence {path}: no such file; give the .json an experiment wrote by its report")
    report = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(report, dict) or not {"methods", "paired"} <= set(report):
        raise ValueError(
            f"--evidence {path}: not an experiment report (it has no 'methods' and 'paired'); give the .json "
            "`feed-hf experiment` wrote beside its report, e.g. results/cifar10_cpu.json"
        )
    return {**report, "file": path.name}  # the file's name only: a card names no path of this machine


def evidence_facts(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the card's evidence section prints: the primary test in words and one row per paired comparison."""
    if not report:
        return None
    methods = report["methods"]
    rows = []
    for name, comparison in report["paired"].items():
        method = methods.get(name.split(" - ")[0], {})
        rows.append(
            {
                "comparison": name,
                "method": _mean_std(method),
                "difference": _signed(comparison.get("mean_difference")),
                "n": comparison.get("n"),
                "p": format_p(comparison.get("p")),
                "mdd": _number(comparison.get("mdd")),
            }
        )
    return {"file": report.get("file", "the experiment report"), "primary": _primary(report), "rows": rows}


def _primary(report: dict[str, Any]) -> str:
    tests = report.get("preregistered") or {}
    primary, plan = tests.get("primary"), tests.get("plan") or {}
    if not primary or primary.get("t_p") is None:
        return "No pre-registered primary test: each comparison below is a two-sided paired t test, uncorrected."
    verdict = "significant" if primary["significant"] else "not significant"
    return (
        f"Pre-registered primary test, `{plan.get('primary')}` > 0: {_signed(primary['mean_difference'])} points "
        f"over {primary['n']} paired seeds, one-sided paired t {p_equation(primary['t_p'], 4)}: **{verdict}** at "
        f"α = {plan.get('alpha', 0.05):g}; at this n and spread the design detects a difference of "
        f"{_number(primary.get('mdd'))} points (minimum detectable difference: two-sided α = 0.05, 80 % power)."
    )


def _mean_std(method: dict[str, Any]) -> str:
    values = method.get("values") or []
    if not values:
        return "—"
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {spread:.2f} (n = {len(values)})"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
