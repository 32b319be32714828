"""helpers.stats against hand-computed values: lm-eval's stderr, Wilson and t intervals, McNemar,
the paired bootstrap, the forgetting study's measures and weighted kappa."""

import math

import pandas as pd
import pytest

from helpers.stats import (
    forgetting_measures,
    mcnemar_exact,
    paired_bootstrap_interval,
    paired_comparison,
    proportion_interval,
    reviewer_kappa,
    score_summary,
    stderr,
    t_interval,
    weighted_kappa,
)

Z = 1.959963984540054  # the 97.5% point of the standard normal


def ones(k, n):
    return [1.0] * k + [0.0] * (n - k)


def wilson(k, n, z=Z):
    """Wilson's score interval written out (Wilson 1927), to check statsmodels' against."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_stderr_is_lm_evals_with_n_minus_1_as_the_forgetting_study_prints_it():
    # the study's MMLU CS row: 47.00 ± 5.02, 34.00 ± 4.76, 27.00 ± 4.46 at n = 100
    assert 100 * stderr(ones(47, 100)) == pytest.approx(5.016, abs=5e-4)
    assert 100 * stderr(ones(34, 100)) == pytest.approx(4.761, abs=5e-4)
    assert 100 * stderr(ones(27, 100)) == pytest.approx(4.462, abs=5e-4)
    assert stderr(ones(47, 100)) == pytest.approx(math.sqrt(0.47 * 0.53 / 99))  # n - 1, not n (0.0499)
    assert math.isnan(stderr([1.0]))


def test_a_proportion_gets_a_wilson_interval_and_its_stderr_side_by_side():
    s = score_summary(ones(47, 100))
    assert (s["mean"], s["n"], s["ci_method"]) == (0.47, 100, "wilson")
    assert s["stderr"] == pytest.approx(0.05016, abs=5e-6)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(wilson(47, 100), abs=1e-9)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((0.3751, 0.5671), abs=1e-4)


def test_zero_of_n_is_not_zero_plus_minus_zero():
    s = score_summary(ones(0, 20))
    assert s["stderr"] == 0.0 and s["ci_low"] == 0.0
    assert s["ci_high"] == pytest.approx(wilson(0, 20)[1]) and s["ci_high"] == pytest.approx(0.1611, abs=1e-4)
    assert score_summary(ones(20, 20))["ci_low"] == pytest.approx(1 - 0.1611, abs=1e-4)
    # the exact (Clopper-Pearson) interval on request: 0/20 -> [0, 1 - 0.025^(1/20)]
    assert proportion_interval(0, 20, method="beta")[1] == pytest.approx(1 - 0.025 ** (1 / 20))


def test_the_interval_always_holds_the_observed_proportion():
    """Rounding put Wilson's bound past the proportion (0 of 6: a low of 2.8e-17), and the published-vs-ours
    plot's error bar below 0 stopped the mmlu_teacher notebook of a model that got every question wrong."""
    assert proportion_interval(0, 6)[0] == 0.0 and proportion_interval(6, 6)[1] == 1.0
    for n in range(1, 121):
        for k in range(n + 1):
            low, high = proportion_interval(k, n)
            assert low <= k / n <= high, (k, n)


def test_a_rating_mean_gets_a_t_interval():
    # 1..5: mean 3, s = sqrt(2.5), se = sqrt(0.5), t(0.975, 4) = 2.776445
    mean, low, high = t_interval([1, 2, 3, 4, 5])
    assert mean == 3.0 and (low, high) == pytest.approx((3 - 2.776445 * math.sqrt(0.5), 3 + 2.776445 * math.sqrt(0.5)))
    s = score_summary([1, 2, 3, 4, 5])
    assert s["ci_method"] == "t" and (s["ci_low"], s["ci_high"]) == pytest.approx((low, high))
    assert t_interval([4, 4, 4]) == (4.0, 4.0, 4.0)
    assert math.isnan(t_interval([4])[1])


def test_exact_mcnemar_on_the_discordant_items():
    # 13 items only the base got right, none the other way: p = 2 * 0.5^13
    out = mcnemar_exact(ones(47, 100), ones(34, 100))
    assert out == {"first_only": 13, "second_only": 0, "p_value": pytest.approx(2 * 0.5 ** 13)}
    # 6 against 2: two-sided binomial p = 2 * P(X <= 2 | 8, 0.5) = 2 * 37/256
    base = [1] * 6 + [0] * 2 + [1] * 10 + [0] * 5
    tuned = [0] * 6 + [1] * 2 + [1] * 10 + [0] * 5
    assert mcnemar_exact(base, tuned)["p_value"] == pytest.approx(2 * 37 / 256)
    with pytest.raises(ValueError, match="same items"):
        mcnemar_exact([1, 0], [1])


def test_paired_bootstrap_interval_of_a_difference():
    # 5 of 100 items flipped from right to wrong, nothing else differs: the paired difference is a
    # mean of Bernoulli(0.05) values, so the interval follows Binomial(100, 0.05) / 100: [0.01, 0.10]
    base, tuned = ones(50, 100), ones(45, 100)
    low, high = paired_bootstrap_interval(base, tuned, seed=0)
    assert low == pytest.approx(0.01, abs=0.005) and high == pytest.approx(0.10, abs=0.011)
    assert paired_bootstrap_interval(base, tuned, seed=0) == (low, high)  # seeded
    # treated as independent samples, the same difference would look like noise
    cmp = paired_comparison(base, tuned, seed=0)
    assert cmp["difference"] == pytest.approx(0.05) and cmp["stderr_rss"] * Z > 0.05
    assert cmp["mcnemar_p"] == pytest.approx(2 * 0.5 ** 5)


def test_knowledge_loss_with_the_studys_convention_and_a_95_interval():
    base = {"gsm8k_flexible": ones(442, 1319), "hellaswag_acc_norm": ones(60, 100), "mmlu_acc": ones(47, 100)}
    tuned = {"gsm8k_flexible": ones(49, 1319), "hellaswag_acc_norm": ones(61, 100), "mmlu_acc": ones(34, 100)}
    out = forgetting_measures(base, tuned, seed=0, n_resamples=2000)
    dk = out["knowledge_loss"]
    assert dk["value"] == pytest.approx(13.0)
    assert dk["pm_study"] == pytest.approx(6.916, abs=5e-4)  # the study prints 13.00 ± 6.93 (from rounded SEs)
    # 13 discordant items of 100: the resampled difference is about Binomial(100, 0.13) points
    assert dk["ci_low"] == pytest.approx(7.0, abs=1.0) and dk["ci_high"] == pytest.approx(20.0, abs=1.0)
    assert out["ability_augmentation"]["value"] == pytest.approx(1.0)
    fr = out["forgetting_rate"]
    assert fr["value"] == pytest.approx(100 * (1 - 49 / 442))  # 88.91; the study prints 88.92
    assert 85 < fr["ci_low"] < fr["value"] < fr["ci_high"] < 92


def test_forgetting_rate_is_undefined_when_the_base_gets_nothing_right():
    zero = {"gsm8k_flexible": ones(0, 10), "hellaswag_acc_norm": ones(5, 10), "mmlu_acc": ones(5, 10)}
    out = forgetting_measures(zero, zero, seed=0, n_resamples=200)
    assert all(math.isnan(out["forgetting_rate"][k]) for k in ("value", "ci_low", "ci_high"))


def test_weighted_kappa_by_hand():
    # one disagreement (5 vs 4); expected quadratic disagreement (sum_ij w_ij r_i c_j / n) = 85 / 5
    assert weighted_kappa([1, 2, 3, 4, 5], [1, 2, 3, 4, 4]) == pytest.approx(1 - 1 / 17)
    assert weighted_kappa([1, 2, 3, 4, 5], [1, 2, 3, 4, 4], weights="linear") == pytest.approx(1 - 1 / 7.4)
    # the full 1-5 scale weighs 2 vs 4 as two steps even when 3 is never used: observed 4 / expected 32/4
    assert weighted_kappa([2, 4, 5, 5], [4, 4, 5, 5]) == pytest.approx(0.5)
    # scikit-learn left to the labels it sees would count one step (1 / (16/4)): what `scale` prevents
    from sklearn.metrics import cohen_kappa_score

    assert cohen_kappa_score([2, 4, 5, 5], [4, 4, 5, 5], weights="quadratic") == pytest.approx(0.75)
    assert math.isnan(weighted_kappa([3, 3], [3, 3]))


def test_reviewer_kappa_over_the_items_each_pair_shares():
    rows = [("q1", "ann", 1), ("q2", "ann", 2), ("q3", "ann", 3), ("q4", "ann", 4), ("q5", "ann", 5),
            ("q1", "bob", 1), ("q2", "bob", 2), ("q3", "bob", 3), ("q4", "bob", 4), ("q5", "bob", 4),
            ("q1", "cy", 5), ("q9", "cy", None)]
    frame = pd.DataFrame(rows, columns=["item", "reviewer", "rating"])
    out = reviewer_kappa(frame)
    assert out == {"kappa": pytest.approx(1 - 1 / 17), "pairs": 1, "items": 5, "weights": "quadratic"}
    assert math.isnan(reviewer_kappa(frame[frame["reviewer"] == "ann"])["kappa"])
