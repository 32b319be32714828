import pytest

from helpers.config import ConfigError, build_config
from helpers.tasks.addition import (
    INSTRUCTION,
    AdditionConfig,
    Problem,
    eval_prompts,
    extract_sum,
    make_problems,
    per_k,
    prompt,
    range_mean,
    score,
    target,
    training_pairs,
    worked_examples,
)


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
    ({"prompt_style": "fancy"}, "prompt_style must be one of 'instruct', 'bare', got 'fancy'"),
    ({"n_shots": -1}, "n_shots must be >= 0"),
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
    assert prompt(p, "bare") == "Q: 12+30=? A:" and target(p) == " 42"  # the former default, kept as an option
    assert prompt(p) == f"{INSTRUCTION}\n\nQuestion: 12+30=?\nAnswer:"
    assert prompt(p, "bare", [Problem(1, 2, 1)]) == "Q: 1+2=? A: 3\nQ: 12+30=? A:"
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


def test_default_prompt_is_the_instruction_then_worked_examples_never_from_the_test_set():
    cfg = make()
    assert (cfg.prompt_style, cfg.n_shots) == ("instruct", 3)
    _, test = make_problems(cfg)
    shots = worked_examples(cfg)
    assert [s.k for s in shots] == [1, 4, 7]  # spread over the training digits
    held = {(p.a, p.b) for p in test}
    assert not any((s.a, s.b) in held or (s.b, s.a) in held for s in shots)
    text = eval_prompts(test[:1], cfg)[0]
    expected = "".join(f"Question: {s.a}+{s.b}=?\nAnswer: {s.answer}\n\n" for s in shots)
    assert text == f"{INSTRUCTION}\n\n{expected}Question: {test[0].a}+{test[0].b}=?\nAnswer:"
    # seeded, and from their own stream: more examples change neither data set
    assert worked_examples(make()) == shots and worked_examples(make(seed=1)) != shots
    assert make_problems(make(n_shots=8)) == make_problems(cfg) and worked_examples(make(n_shots=8))[0] == shots[0]
    assert eval_prompts(test[:1], make(prompt_style="bare", n_shots=0)) == [f"Q: {test[0].a}+{test[0].b}=? A:"]


def test_training_prompts_have_the_style_but_no_worked_examples():
    p = Problem(12, 30, 2)
    assert training_pairs([p], make()) == [(f"{INSTRUCTION}\n\nQuestion: 12+30=?\nAnswer:", " 42")]
    assert training_pairs([p], make(prompt_style="bare")) == [("Q: 12+30=? A:", " 42")]


def test_too_few_problems_left_for_the_worked_examples_fail_with_one_line():
    cfg = make(train_digits_max=1, test_digits_max=1, n_train=10, n_test_per_k=90, n_shots=20)
    with pytest.raises(ConfigError, match="lower n_shots or n_test_per_k"):
        worked_examples(cfg)


@pytest.mark.parametrize("generation, expected", [
    (" 101", "101"),
    ("101\nQuestion: 5+6=?\nAnswer: 11", "101"),       # a continued few-shot pattern: the first integer
    ("31+70=101", "101"),                              # an echoed equation: after the '=', not the 31
    (" 31 + 70 = 101.", "101"),
    ("Sure: 31+70=100+1=101\nQuestion: 2+2=4", "101"),  # the last '=' of the echoed line only
    ("31+70=\n101", "101"),                            # nothing after the '=' on its line: the next integer
    ("310+70=380", "310"),                             # not this problem: the first integer
    ("I think 1,234", "1234"),
    ("no idea", ""),
])
def test_extract_sum_reads_past_an_echoed_problem(generation, expected):
    assert extract_sum(Problem(31, 70, 2), generation) == expected


def test_an_echoed_equation_scores_its_sum():
    p = Problem(31, 70, 2)
    assert score(p, "31+70=101") == {"exact_match": 1.0, "digit_accuracy": 1.0, "edit_distance": 0, "parsed": "101"}
    assert score(p, "31+70=102")["digit_accuracy"] == pytest.approx(2 / 3)
