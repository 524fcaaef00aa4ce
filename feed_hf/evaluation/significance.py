"""How a p value is printed: a value that rounds to zero at the printed digits is written as a bound ("< 0.001"),
never as "0.000", which would claim a certainty no finite sample gives."""

from __future__ import annotations

__all__ = ["format_p", "p_equation"]


def format_p(p: float | None, digits: int = 3) -> str:
    """A table cell: "0.012", "< 0.001" below the last printed digit, "—" for a test that could not run."""
    if p is None:
        return "—"
    floor = 10.0**-digits
    return f"< {floor:.{digits}f}" if p < floor else f"{p:.{digits}f}"


def p_equation(p: float | None, digits: int = 3, name: str = "p") -> str:
    """In a sentence: "p = 0.012", "p < 0.001", "p not computable"."""
    if p is None:
        return f"{name} not computable"
    cell = format_p(p, digits)
    return f"{name} {cell}" if cell.startswith("<") else f"{name} = {cell}"
