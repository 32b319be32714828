"""Uncertainty of the studies' numbers, from statsmodels, scipy and scikit-learn.

Two conventions stand side by side, each under its own name, because the studies mix them:

- `stderr`: lm-evaluation-harness's standard error of a mean, the sample standard deviation
  (n - 1) over sqrt(n) (lm_eval/api/metrics.py `mean_stderr`). The forgetting study prints exactly
  this as its ± although it calls it a 95% interval: 47/100 -> 0.0502, printed "47.00 ± 5.02".
- `ci_low`, `ci_high`: a real 95% interval. A proportion (every value 0 or 1) gets Wilson's score
  interval, which stays inside [0, 1] and is never empty at 0/n or n/n (no "0 ± 0"); any other
  mean (ratings, digit accuracy) gets Student's t interval.

    >>> score_summary([1] * 47 + [0] * 53)            # doctest: +ELLIPSIS
    {'mean': 0.47, 'n': 100, 'stderr': 0.0501..., 'ci_low': 0.375..., 'ci_high': 0.566..., 'ci_method': 'wilson'}
    >>> paired_comparison(base_correct, tuned_correct, seed=0)   # same items: McNemar + paired bootstrap
    >>> forgetting_measures(base_items, tuned_items, seed=0)     # FR, ΔA, ΔK with intervals
    >>> reviewer_kappa(ratings_frame)                            # quadratic-weighted Cohen's kappa
"""

from __future__ import annotations

import itertools
import math

import numpy as np

CONFIDENCE = 0.95
N_RESAMPLES = 10_000


def _array(values) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


def is_binary(values) -> bool:
    """True if every value is 0 or 1 (a proportion: accuracy, exact match)."""
    x = _array(values)
    return bool(len(x)) and bool(np.isin(x, (0.0, 1.0)).all())


def stderr(values) -> float:
    """lm-eval's stderr of the mean: sample standard deviation (ddof = 1) / sqrt(n), via
    scipy.stats.sem; nan below two values."""
    from scipy.stats import sem

    x = _array(values)
    return float(sem(x, ddof=1)) if len(x) >= 2 else float("nan")


def proportion_interval(successes: int, n: int, confidence: float = CONFIDENCE,
                        method: str = "wilson") -> tuple[float, float]:
    """Interval of a proportion by statsmodels' proportion_confint ("wilson", or "beta" for the exact
    Clopper-Pearson interval); (nan, nan) when n is 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return float("nan"), float("nan")
    low, high = proportion_confint(int(successes), int(n), alpha=1 - confidence, method=method)
    # the interval holds the observed proportion; rounding can put Wilson's bound just past it (0 of 6 gives a low
    # of 2.8e-17), and a plot's error bar below 0 is an error in matplotlib
    share = successes / n
    return min(float(low), share), max(float(high), share)


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of a mean (scipy.stats.t, n - 1 degrees of freedom),
    the interval for rating means. Below two values the bounds are nan; with no spread the
    interval is the mean itself."""
    from scipy.stats import t

    x = _array(values)
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    se = stderr(x)
    if se == 0:
        return mean, mean, mean
    low, high = t.interval(confidence, len(x) - 1, loc=mean, scale=se)
    return mean, float(low), float(high)


def score_summary(values, confidence: float = CONFIDENCE) -> dict:
    """Mean, n, lm-eval's stderr and a 95% interval (Wilson for 0/1 values, else t), named so that
    neither is mistaken for the other."""
    x = _array(values)
    if is_binary(x):
        low, high = proportion_interval(int(x.sum()), len(x), confidence)
        mean, method = float(x.mean()), "wilson"
    else:
        mean, low, high = t_interval(x, confidence)
        method = "t"
    return {"mean": mean, "n": len(x), "stderr": stderr(x), "ci_low": low, "ci_high": high, "ci_method": method}


def _check_paired(first, second) -> tuple[np.ndarray, np.ndarray]:
    a, b = _array(first), _array(second)
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same items: {len(a)} vs {len(b)} values")
    if not len(a):
        raise ValueError("paired scores need at least one item")
    return a, b


def mcnemar_exact(first, second) -> dict:
    """Exact McNemar test of two 0/1 score lists on the same items (statsmodels, binomial test on
    the discordant pairs): {"first_only", "second_only" (items only that one got right), "p_value"}."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = _check_paired(first, second)
    if not (is_binary(a) and is_binary(b)):
        raise ValueError("McNemar's test needs 0/1 scores (right or wrong per item)")
    table = [[int(((a == 1) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())],
             [int(((a == 0) & (b == 1)).sum()), int(((a == 0) & (b == 0)).sum())]]
    result = mcnemar(table, exact=True)
    return {"first_only": table[0][1], "second_only": table[1][0], "p_value": float(result.pvalue)}


def _mean_difference(a, b, axis=-1):
    return a.mean(axis=axis) - b.mean(axis=axis)


def paired_bootstrap_interval(first, second, statistic=_mean_difference, *, seed: int = 0,
                              n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of statistic(first, second) (default: mean(first) - mean(second)) from
    resampling items, the same items for both lists (scipy.stats.bootstrap, paired=True, seeded).
    Percentile rather than BCa: BCa is undefined when every resample gives the same value (all
    items right in both), which small test sets hit."""
    from scipy.stats import bootstrap

    a, b = _check_paired(first, second)
    if len(a) < 2:
        return float("nan"), float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        # batch: HellaSwag's 10,042 items x 10,000 resamples at once took 2.5 GB; the result is the same
        res = bootstrap((a, b), statistic, paired=True, vectorized=True, n_resamples=n_resamples,
                        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
                        batch=max(1, 2_000_000 // len(a)))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_comparison(first, second, *, seed: int = 0, n_resamples: int = N_RESAMPLES,
                      confidence: float = CONFIDENCE) -> dict:
    """mean(first) - mean(second) on the same items, with:
    `stderr_rss` sqrt(stderr_1^2 + stderr_2^2), the forgetting study's ± on ΔK (two independent
    one-standard-error values, not an interval); `ci_low`/`ci_high` a paired bootstrap 95% interval;
    for 0/1 scores the exact McNemar test (`mcnemar_p`, and how many items only one got right)."""
    a, b = _check_paired(first, second)
    low, high = paired_bootstrap_interval(a, b, seed=seed, n_resamples=n_resamples, confidence=confidence)
    out = {"difference": float(a.mean() - b.mean()), "n": len(a),
           "stderr_rss": math.sqrt(stderr(a) ** 2 + stderr(b) ** 2), "ci_low": low, "ci_high": high,
           "ci_method": "paired bootstrap (percentile)"}
    if is_binary(a) and is_binary(b):
        test = mcnemar_exact(a, b)
        out |= {"mcnemar_p": test["p_value"], "first_only": test["first_only"], "second_only": test["second_only"]}
    return out


def _forgetting_rate(base, tuned, axis=-1):
    # FR = (1 - A_flex^FT / A_flex^base) * 100 (the forgetting study); undefined where the base is 0
    return 100 * (1 - tuned.mean(axis=axis) / base.mean(axis=axis))


def forgetting_measures(base: dict, tuned: dict, *, seed: int = 0, n_resamples: int = N_RESAMPLES,
                        confidence: float = CONFIDENCE) -> dict:
    """The forgetting study's three measures from per-item scores of the same items, base and
    fine-tuned (`base["gsm8k_flexible"]`, `["hellaswag_acc_norm"]`, `["mmlu_acc"]`: lists of 0/1):

    - forgetting_rate (%) = (1 - flex_FT / flex_base) * 100, with a paired bootstrap interval;
    - ability_augmentation ΔA (points) = acc_norm_FT - acc_norm_base;
    - knowledge_loss ΔK (points) = acc_base - acc_FT, with `pm_study`: the study's ± (root sum of
      squares of the two lm-eval stderrs, in points: 47/100 vs 34/100 -> 6.92) beside a paired
      bootstrap 95% interval and the exact McNemar p-value.
    """
    out = {}
    for key, first, second, metric in (("ability_augmentation", tuned, base, "hellaswag_acc_norm"),
                                       ("knowledge_loss", base, tuned, "mmlu_acc")):
        cmp = paired_comparison(first[metric], second[metric], seed=seed, n_resamples=n_resamples,
                                confidence=confidence)
        out[key] = {"value": 100 * cmp["difference"], "pm_study": 100 * cmp["stderr_rss"],
                    "ci_low": 100 * cmp["ci_low"], "ci_high": 100 * cmp["ci_high"], "unit": "points",
                    "from": metric, "n": cmp["n"], "mcnemar_p": cmp.get("mcnemar_p", float("nan"))}
    b, t = _check_paired(base["gsm8k_flexible"], tuned["gsm8k_flexible"])
    if b.mean() == 0:
        value, low, high = float("nan"), float("nan"), float("nan")
    else:
        value = float(_forgetting_rate(b, t))
        low, high = paired_bootstrap_interval(b, t, _forgetting_rate, seed=seed, n_resamples=n_resamples,
                                              confidence=confidence)
    test = mcnemar_exact(b, t) if is_binary(b) and is_binary(t) else {"p_value": float("nan")}
    out["forgetting_rate"] = {"value": value, "ci_low": low, "ci_high": high, "unit": "%", "from": "gsm8k_flexible",
                              "n": len(b), "mcnemar_p": test["p_value"]}
    return out


def weighted_kappa(first, second, *, scale=(1, 5), weights: str = "quadratic") -> float:
    """Cohen's kappa of two reviewers' ratings of the same items (scikit-learn). Quadratic weights by
    default: the ratings are an ordinal scale, so 1 against 5 is a worse disagreement than 4 against
    5, and quadratic weighting (Fleiss & Cohen 1973: equal to an intraclass correlation) is the
    usual choice there; weights="linear" is the milder option. `scale` fixes the categories to every
    point of the scale, since scikit-learn weighs by the position among the labels it is given."""
    from sklearn.metrics import cohen_kappa_score

    labels = list(range(scale[0], scale[1] + 1))
    a, b = _check_paired(first, second)
    if set(a) == set(b) and len(set(a)) == 1:
        return float("nan")  # both reviewers gave one and the same rating to everything: kappa is 0/0
    return float(cohen_kappa_score(a, b, labels=labels, weights=weights))


def reviewer_kappa(ratings, *, item: str = "item", reviewer: str = "reviewer", rating: str = "rating",
                   scale=(1, 5), weights: str = "quadratic") -> dict:
    """Weighted kappa between reviewers of a ratings table (one row per rating): for every pair of
    reviewers, over the items both rated; {"kappa": mean over pairs, "pairs": reviewer pairs with at
    least two shared items, "items": shared items summed over pairs}. nan when no pair qualifies."""
    given = ratings.dropna(subset=[rating]).drop_duplicates([item, reviewer])
    wide = given.pivot(index=item, columns=reviewer, values=rating)
    kappas, items = [], 0
    for x, y in itertools.combinations(sorted(wide.columns), 2):
        both = wide[[x, y]].dropna()
        if len(both) >= 2:
            value = weighted_kappa(both[x], both[y], scale=scale, weights=weights)
            if not math.isnan(value):
                kappas.append(value)
                items += len(both)
    return {"kappa": float(np.mean(kappas)) if kappas else float("nan"), "pairs": len(kappas), "items": items,
            "weights": weights}


METHOD_NAMES = {"wilson": "Wilson", "t": "t"}


def with_interval(summary: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    """'42.0 [32.8, 51.8] Wilson 95%': a score_summary's mean with its interval, named; '-' for none."""
    if not summary:
        return "-"
    mean, low, high = (scale * summary[k] for k in ("mean", "ci_low", "ci_high"))
    if math.isnan(low) or math.isnan(high):
        return f"{mean:.{digits}f} (no interval: n={summary['n']})"
    method = METHOD_NAMES.get(summary["ci_method"], summary["ci_method"])
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] {method} 95%"
