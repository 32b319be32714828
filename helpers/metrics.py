"""Answer scoring shared by the studies.

    >>> extract_integer("The sum is 1,234.")
    '1234'
    >>> digit_accuracy("1235", "1234")
    0.75
"""

from __future__ import annotations

import math
import re

from rapidfuzz.distance import Levenshtein

_INTEGER = re.compile(r"-?\d[\d,]*")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")
# Phrases after which a solution states its result; the number after the last one wins, else the
# last number in the text (the usual final-answer convention of GSM8K-style grading).
_ANSWER_CUES = re.compile(r"(?:answer is|answer:|####|\\boxed\{|result is|total is|=)\s*", re.IGNORECASE)


def extract_integer(text: str) -> str:
    """First integer in `text` as a digit string ('' if none); thousands separators dropped."""
    match = _INTEGER.search(text or "")
    return match.group(0).replace(",", "") if match else ""


def exact_match(predicted: str, reference: str) -> float:
    return float(predicted != "" and predicted == reference)


def digit_accuracy(predicted: str, reference: str) -> float:
    """Share of digit positions that agree, aligned from the right (units with units, tens with tens,
    as carries propagate), over the longer of the two numbers: a missing or extra digit counts
    as wrong, so only the exact answer scores 1.0 and an empty answer scores 0.0."""
    width = max(len(predicted), len(reference))
    if width == 0:
        return 1.0
    hits = sum(p == r for p, r in zip(reversed(predicted), reversed(reference)))
    return hits / width


def edit_distance(predicted: str, reference: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions, each cost 1), via rapidfuzz."""
    return Levenshtein.distance(predicted, reference)


def mean_ci(values, z: float = 1.96) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% interval."""
    values = list(values)
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, z * math.sqrt(var / len(values))


def _to_float(token: str) -> float | None:
    try:
        return float(token.replace("$", "").replace(",", ""))
    except ValueError:
        return None


def final_number(text: str) -> float | None:
    """The final numeric answer of a worked solution: the first number after the last answer cue
    ("answer is", "####", "\\boxed{", "=", ...), else the last number; None if there is none.

    >>> final_number("She pays 3 * $4 = $12, so the answer is $1,212.50.")
    1212.5
    """
    text = text or ""
    cues = list(_ANSWER_CUES.finditer(text))
    if cues:
        match = _NUMBER.search(text, cues[-1].end())
        if match:
            return _to_float(match.group(0))
    numbers = _NUMBER.findall(text)
    return _to_float(numbers[-1]) if numbers else None


def numeric_match(predicted: str, reference: str, rel_tol: float = 1e-6) -> float:
    """1.0 if the final number of `predicted` equals the number `reference` (relative tolerance)."""
    want, got = _to_float(str(reference).strip()), final_number(predicted)
    if want is None:
        raise ValueError(f"reference answer {reference!r} is not a number")
    return float(got is not None and math.isclose(got, want, rel_tol=rel_tol, abs_tol=1e-9))
