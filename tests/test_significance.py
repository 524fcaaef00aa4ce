"""p values are printed as bounds below the printed digits, never as a zero (evaluation/significance.py)."""

from feed_hf.evaluation.significance import format_p, p_equation


def test_a_p_value_below_the_printed_digits_is_a_bound_not_a_zero():
    assert format_p(4.6e-6) == "< 0.001" and format_p(4.6e-6, 4) == "< 0.0001"
    assert format_p(0.0123) == "0.012" and format_p(0.0123, 4) == "0.0123" and format_p(0.001) == "0.001"
    assert format_p(None) == "—"
    assert p_equation(4.6e-6, 4) == "p < 0.0001" and p_equation(0.2) == "p = 0.200"
    assert p_equation(None) == "p not computable"
