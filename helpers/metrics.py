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
