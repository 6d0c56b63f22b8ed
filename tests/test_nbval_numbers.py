"""The nbval plugin's number alignment: decimals within tolerance match, anything else still differs."""

from hypothesis import given
from hypothesis import strategies as st

from tests.nbval_numbers import ABS_TOL, align_numbers


def test_decimals_within_tolerance_take_the_stored_value_and_others_keep_their_own():
    stored = "| idae | 0.941 | p = 0.19 | 8 of 8 | −1.25 |"
    assert align_numbers("| idae | 0.944 | p = 0.16 | 8 of 8 | −1.27 |", stored) == stored
    assert align_numbers("| idae | 0.841 | p = 0.16 | 8 of 8 | −1.25 |", stored) == (
        "| idae | 0.841 | p = 0.19 | 8 of 8 | −1.25 |")  # 0.10 off: kept, so nbval shows it  # fmt: skip
    integer_differs = "| idae | 0.944 | p = 0.16 | 7 of 8 | −1.25 |"
    assert align_numbers(integer_differs, stored) == integer_differs
    assert align_numbers("| PCA | 0.944 | p = 0.16 | 8 of 8 | −1.25 |", stored).startswith("| PCA | 0.944")  # words
    assert align_numbers("0.5 and 0.7", "0.5 and 0.7 and 0.9") == "0.5 and 0.7"  # another count of numbers


@given(st.floats(-10, 10), st.floats(-1, 1))
def test_alignment_moves_a_number_only_within_tolerance(value, noise):
    stored = f"r = {value:.3f}"
    printed = f"r = {value + noise:.3f}"
    aligned = align_numbers(printed, stored)
    gap = abs(float(printed[4:]) - float(stored[4:]))
    assert aligned == (stored if gap <= max(ABS_TOL, 0.05 * abs(float(stored[4:]))) else printed)


def test_a_cell_can_state_a_wider_tolerance_with_its_reason():
    from tests.nbval_numbers import WITHIN

    stored, printed = "FastICA min 0.594", "FastICA min 0.503"
    assert align_numbers(printed, stored) == printed
    assert align_numbers(printed, stored, abs_tol=0.1) == stored
    cell = "# nbval-decimals-within: 0.1  (FastICA stops at max_iter)\nsummary = ..."
    assert float(WITHIN.search(cell).group(1)) == 0.1
