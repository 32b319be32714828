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


# ---- GSM8K as lm-evaluation-harness scores it: lm_eval/tasks/gsm8k/gsm8k.yaml (lm-eval 0.4.13, task
# version 3.0). Filters "strict-match" and "flexible-extract" (regex filter, then take_first; a miss gives
# "[invalid]", lm_eval/filters/extraction.py RegexFilter), then exact_match with ignore_case and these
# regexes_to_ignore applied in order to prediction and reference alike (lm_eval/api/metrics.py).
GSM8K_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
GSM8K_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
GSM8K_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
INVALID = "[invalid]"
# The forgetting study's third GSM8K score: a numeric match within this absolute tolerance.
GSM8K_TOLERANCE = 0.01
GSM8K_MODES = ("strict", "flexible", "numeric")


def gsm8k_extract(response: str, mode: str) -> str:
    """The answer lm-eval's filter takes from a response: strict = the first '#### N', flexible = the
    last number-like match; '[invalid]' when there is none.

    >>> gsm8k_extract("so 3 + 4 = 7 apples.\\n#### 7", "strict"), gsm8k_extract("It costs $1,200.", "flexible")
    ('7', '$1,200.')
    """
    regex, select = {"strict": (GSM8K_STRICT, 0), "flexible": (GSM8K_FLEXIBLE, -1)}[mode]
    found = regex.findall(response if isinstance(response, str) else "")
    if not found:
        return INVALID
    match = found[select]
    if isinstance(match, tuple):
        match = next((m for m in match if m), INVALID)
    return match.strip()


def gsm8k_normalize(text: str) -> str:
    for pattern in GSM8K_IGNORE:
        text = re.sub(pattern, "", text)
    return text.lower()


def gsm8k_score(response: str, reference: str, mode: str, tolerance: float = GSM8K_TOLERANCE) -> float:
    """Score of a response against the reference solution ('... #### 72'). "strict" and "flexible":
    lm-eval's exact_match of the filtered, normalised strings. "numeric" (the forgetting study's
    match with tolerance): the flexible extraction read as a number, right when within `tolerance`
    of the reference's number, so "2.50" matches "2.5" where the string match fails.

    >>> gsm8k_score("The answer is $1,234.", "... #### 1234", "flexible")
    1.0
    >>> [gsm8k_score("The total is 2.50", "... #### 2.5", mode) for mode in ("flexible", "numeric")]
    [0.0, 1.0]
    """
    if mode not in GSM8K_MODES:
        raise ValueError(f"GSM8K score mode {mode!r}: use one of {', '.join(GSM8K_MODES)}")
    if mode != "numeric":
        return float(gsm8k_normalize(gsm8k_extract(response, mode)) == gsm8k_normalize(reference))
    want = _to_float(gsm8k_normalize(reference))
    if want is None:
        raise ValueError(f"GSM8K reference {reference!r} does not end in '#### <number>'")
    got = _to_float(gsm8k_normalize(gsm8k_extract(response, "flexible")))
    # 1e-9 absorbs float error at the boundary (18.01 - 18 is 0.0100000000000016)
    return float(got is not None and abs(got - want) <= tolerance + 1e-9)


# ---- classification (scikit-learn)
# A label is not the answer when a negation stands before it in its clause, at most this many words back:
# "not a Stout", "isn't an IPA", "rather than a Porter", "unlike a Pale Ale".
NEGATION_WINDOW = 3
_NEGATIONS = re.compile(r"(?:not|no|never|neither|nor|non|without|unlike|instead|rather|\w+n't|\w+n’t)",
                        re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.,;:!?\n()]")
# What introduces the answer: "Answer: X", "the style is X", "it is an X", "this is X", "I'd say X".
_ANSWER_CUE = re.compile(r"(?:\b(?:answer|style|label|prediction|classification)\s*(?:is|:|-)|"
                         r"\b(?:it|this|that|beer)(?:\s+is|'s|’s)|\bi(?:\s+would|'d|’d)\s+say)"
                         r"\s*(?:\b(?:an?|the)\s+)?[*\s\"'“]*$", re.IGNORECASE)


def label_mentions(response: str, labels) -> list[dict]:
    """Each label named in `response`, in order: {"label", "start", "negated", "cued"}. Case-insensitive
    whole words; a longer label wins over one inside it ("American IPA" is not also an "IPA")."""
    text, taken, found = response or "", [], []
    for label in sorted(labels, key=len, reverse=True):
        for m in re.finditer(rf"(?<!\w){re.escape(label)}(?!\w)", text, re.IGNORECASE):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            taken.append((m.start(), m.end()))
            before = _CLAUSE_END.split(text[:m.start()])[-1]  # the clause up to the label
            words = before.split()[-NEGATION_WINDOW:]
            found.append({"label": label, "start": m.start(),
                          "negated": any(_NEGATIONS.fullmatch(w.strip("*\"'“”")) for w in words),
                          "cued": bool(_ANSWER_CUE.search(text[:m.start()]))})
    return sorted(found, key=lambda f: f["start"])


def match_label(response: str, labels) -> str:
    """The label a free-text answer chooses, else '[invalid]' (counted as wrong: it is no label, so it
    adds a miss to the true class's recall). Labels are found as whole words, longest first; a label
    with a negation before it in its clause ("not a Stout", "rather than a Porter") is never the
    answer. Of the rest: the last one an answer cue introduces ("Answer: X", "the style is X", "it is
    an X"), else the first one named (the prompt asks for the style only, so it comes first).

    >>> match_label("Not a stout, it is an IPA.", ["IPA", "Stout"])
    'IPA'
    """
    mentions = [m for m in label_mentions(response, labels) if not m["negated"]]
    cued = [m for m in mentions if m["cued"]]
    if cued:
        return cued[-1]["label"]
    return mentions[0]["label"] if mentions else INVALID


def harmonic_mean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def classification_scores(y_true, y_pred, labels=None, average: str = "macro") -> dict:
    """Accuracy and scikit-learn's precision/recall/F1, macro (every class alike) and weighted (by
    support), over the classes present in the true labels or the predictions (`classes`; of `labels`,
    the task's label set, when given). A class absent from both has no score to give: counted as 0 it
    would pull every configuration down. '[invalid]' is no class: such a prediction is a miss of its
    true class. `f1_from_pr`: the harmonic mean of the averaged P and R (`f1` averages the per-class
    F1); the small-vs-large study does not say which its table prints, and its F1s fit both within
    rounding. The top-level precision/recall/f1/f1_from_pr are those of `average`.

    >>> classification_scores(["IPA", "Stout"], ["IPA", "Stout"], ["IPA", "Stout", "Porter"])["f1"]
    1.0
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    present = (set(y_true) | set(y_pred)) - {INVALID}
    classes = [c for c in labels if c in present] if labels is not None else sorted(present)
    out = {"accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan")}
    for kind in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, average=kind, zero_division=0)
        out[kind] = {"precision": float(p), "recall": float(r), "f1": float(f),
                     "f1_from_pr": harmonic_mean(float(p), float(r))}
    return {**out, **out[average], "average": average, "classes": classes,
            "invalid": sum(y == INVALID for y in y_pred)}


# ---- the forgetting study's measures
