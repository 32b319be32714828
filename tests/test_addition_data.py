import pytest

from helpers.config import ConfigError, build_config
from helpers.tasks.addition import AdditionConfig, Problem, make_problems, per_k, prompt, range_mean, score, target


def make(**overrides):
    return build_config(AdditionConfig, {"n_train": 700, "n_test_per_k": 20, **overrides})


def test_operands_have_exactly_k_digits_and_counts_are_exact():
    cfg = make()
    train, test = make_problems(cfg)
    assert len(train) == 700 and len(test) == 20 * 12
    for p in train + test:
        assert len(str(p.a)) == p.k and len(str(p.b)) == p.k
    assert {p.k for p in train} == set(range(1, 8))
    assert {p.k for p in test} == set(range(1, 13))
    assert all(sum(p.k == k for p in train) == 100 for k in range(1, 8))


def test_train_and_test_never_overlap_in_either_order():
    train, test = make_problems(make(n_train=3500, n_test_per_k=60))
    held = {(p.a, p.b) for p in test}
    assert not any((p.a, p.b) in held or (p.b, p.a) in held for p in train)
    assert len(held) == len(test)  # test problems are distinct


def test_same_seed_same_data_other_seed_other_data():
    assert make_problems(make()) == make_problems(make())
    assert make_problems(make(seed=1))[1] != make_problems(make())[1]


def test_k1_test_set_cannot_take_every_problem():
    with pytest.raises(ConfigError, match="lower n_test_per_k"):
        make_problems(make(n_test_per_k=100))
    with pytest.raises(ConfigError, match="only 100 distinct"):
        make_problems(make(n_test_per_k=101))


@pytest.mark.parametrize("overrides, message", [
    ({"train_digits_min": 0}, "1 <= min <= max"),
    ({"test_digits_max": 31}, "1 <= min <= max"),
    ({"train_digits_min": 5, "train_digits_max": 3}, "1 <= min <= max"),
    ({"train_digits_max": 13}, "must cover the training digits"),
    ({"n_train": 3}, "n_train=3"),
    ({"n_test_per_k": 0}, "n_test_per_k"),
    ({"max_new_tokens": 10}, "at least 14"),
    ({"epochs": 0.0, "max_steps": -1}, "nothing to train"),
    ({"lora_targets": []}, "lora_targets is empty"),
    ({"lora_r": 0}, "lora_r must be > 0"),
    ({"model": " "}, "model is empty"),
])
def test_bad_settings_fail_with_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        make(**overrides)
    assert "\n" not in str(err.value)


def test_prompt_format_and_scoring():
    p = Problem(12, 30, 2)
    assert prompt(p) == "Q: 12+30=? A:" and target(p) == " 42"
    assert score(p, " 42") == {"exact_match": 1.0, "digit_accuracy": 1.0, "edit_distance": 0, "parsed": "42"}
    assert score(p, " 43 and more")["digit_accuracy"] == 0.5
    assert score(p, "I don't know")["exact_match"] == 0.0


def test_per_k_and_range_mean_weight_by_items():
    problems = [Problem(1, 2, 1), Problem(3, 4, 1), Problem(10, 20, 2)]
    scores = [score(p, g) for p, g in zip(problems, [" 3", " 0", " 30"])]
    table = per_k(problems, scores)
    assert table[1]["exact_match"] == 0.5 and table[1]["n"] == 2
    assert table[2]["exact_match"] == 1.0
    assert range_mean(table, 1, 2) == pytest.approx(2 / 3)
    assert range_mean(table, 3, 9) is None
