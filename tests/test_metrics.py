
import pytest

from helpers.metrics import (
    digit_accuracy,
    edit_distance,
    exact_match,
    extract_integer,
    final_number,
    numeric_match,
)


@pytest.mark.parametrize("text, expected", [
    (" 1234", "1234"),
    ("The answer is 1,234.", "1234"),
    ("-17 apples", "-17"),
    ("12 then 13", "12"),
    ("no number here", ""),
    ("", ""),
    (None, ""),
])
def test_extract_integer(text, expected):
    assert extract_integer(text) == expected


def test_exact_match_needs_a_prediction():
    assert exact_match("42", "42") == 1.0
    assert exact_match("042", "42") == 0.0
    assert exact_match("", "") == 0.0


@pytest.mark.parametrize("pred, ref, expected", [
    ("1234", "1234", 1.0),
    ("1235", "1234", 0.75),     # units wrong
    ("234", "1234", 0.75),      # leading digit missing: right-aligned, 3 of 4 agree
    ("11234", "1234", 0.8),     # extra leading digit: 4 of the 5 positions agree
    ("4321", "1234", 0.0),
    ("", "1234", 0.0),
    ("9", "19", 0.5),
])
def test_digit_accuracy_is_right_aligned(pred, ref, expected):
    assert digit_accuracy(pred, ref) == pytest.approx(expected)


@pytest.mark.parametrize("pred, ref, expected", [
    ("1234", "1234", 0), ("1235", "1234", 1), ("234", "1234", 1), ("", "1234", 4), ("4321", "1234", 4),
])
def test_edit_distance(pred, ref, expected):
    assert edit_distance(pred, ref) == expected


def test_stderr_is_lm_evals():
    """The forgetting study's printed ± (5.02 at 47/100) is lm-eval's stderr: n - 1, one SE."""
    from helpers.stats import stderr

    values = [1.0] * 47 + [0.0] * 53
    assert stderr(values) == pytest.approx(0.05016, abs=1e-5)


@pytest.mark.parametrize("text, expected", [
    ("3 + 4 = 7 apples. Then 7 * 2 = 14.", 14.0),
    ("The answer is 42. I checked 3 times.", 42.0),           # the cue beats a later number
    ("#### 1,234", 1234.0),
    ("He pays $12.50 in total.", 12.5),
    ("so \\boxed{-3}", -3.0),
    ("The temperature fell to -5 degrees.", -5.0),
    ("No idea.", None),
    ("", None),
])
def test_final_number(text, expected):
    assert final_number(text) == expected


def test_numeric_match():
    assert numeric_match("Total: 2 + 3 = 5", "5") == 1.0
    assert numeric_match("The answer is 5.0", "5") == 1.0
    assert numeric_match("It is 0.1 + 0.2 = 0.30000000000000004", "0.3") == 1.0
    assert numeric_match("The answer is 6", "5") == 0.0
    assert numeric_match("I cannot tell", "5") == 0.0
    with pytest.raises(ValueError, match="not a number"):
        numeric_match("5", "five")
