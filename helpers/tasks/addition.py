"""k-digit addition: train on k in [train_digits_min, train_digits_max], test on
[test_digits_min, test_digits_max]; k above the training range tests length generalisation.

The prompt (`prompt_style`): "instruct", the study's form (its Listing 4, our wording), an
instruction to output only the sum, then `n_shots` worked examples and the problem as Question /
Answer pairs; the examples are training-range problems that are never test problems. "bare" is the
plain `Q: a+b=? A:`. Training prompts are the same without the worked examples (see `training_pairs`).

The answer read from a generation (`extract_sum`): the first integer, unless the generation echoes
the problem ("31+70=101"): then the integer after the last "=" of the echoed line, so the echo's
first operand is never taken for the answer.

    >>> cfg = AdditionConfig(n_train=70, n_test_per_k=5, n_shots=1)
    >>> train, test = make_problems(cfg)
    >>> eval_prompts(test[:1], cfg)[0], test[0].answer
    ('Add the two numbers. Reply with the sum only, in digits, and nothing else.\\n\\nQuestion: 7054+7729=?\\n'
     'Answer: 14783\\n\\nQuestion: 1+0=?\\nAnswer:', '1')
"""

from __future__ import annotations

import dataclasses
import math
import random
import re

from helpers.config import ConfigError, StudyConfig
from helpers.metrics import digit_accuracy, edit_distance, exact_match, extract_integer
from helpers.stats import paired_comparison, score_summary, with_interval

VERSION = "addition-v2"  # v2: instruction + worked examples by default, echo-aware answer extraction
MAX_DIGITS = 30  # operands up to 10^30; generation lengths grow with k
PROMPT_STYLES = ("instruct", "bare")
INSTRUCTION = "Add the two numbers. Reply with the sum only, in digits, and nothing else."


@dataclasses.dataclass
class AdditionConfig(StudyConfig):
    # the study's model (LLaMA 2 7B, base); the presets for a CPU name the embedded smollm2-135m
    model: str = "llama-2-7b"
    train_digits_min: int = 1
    train_digits_max: int = 7
    test_digits_min: int = 1
    test_digits_max: int = 12
    n_train: int = 10000
    n_test_per_k: int = 50
    prompt_style: str = "instruct"
    n_shots: int = 3
    max_seq_length: int = 64
    max_new_tokens: int = 24
    # Unsloth's per-layer CUDA graphs (GPU only; batches padded to 64 tokens, one shape here): the 135M demo's
    # training 1.70x faster on an H200, the same losses (PERFORMANCE.md); off by default: a 7B step is GPU-bound
    cuda_graphs: bool = False

    def validate(self) -> None:
        super().validate()
        for name in ("train_digits", "test_digits"):
            lo, hi = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            if not 1 <= lo <= hi <= MAX_DIGITS:
                raise ConfigError(f"{name}_min/{name}_max must satisfy 1 <= min <= max <= {MAX_DIGITS}, got {lo}..{hi}")
        if not (self.test_digits_min <= self.train_digits_min and self.train_digits_max <= self.test_digits_max):
            raise ConfigError(
                f"test digits {self.test_digits_min}..{self.test_digits_max} must cover the training digits "
                f"{self.train_digits_min}..{self.train_digits_max} to compare in-range accuracy"
            )
        if self.n_train < self.train_digits_max - self.train_digits_min + 1:
            raise ConfigError(f"n_train={self.n_train} is smaller than the number of training digit counts")
        if self.n_test_per_k < 1:
            raise ConfigError(f"n_test_per_k must be >= 1, got {self.n_test_per_k}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ConfigError(f"prompt_style must be one of {', '.join(map(repr, PROMPT_STYLES))}, "
                              f"got {self.prompt_style!r}")
        if self.n_shots < 0:
            raise ConfigError(f"n_shots must be >= 0 (0 = no worked examples), got {self.n_shots}")
        if self.max_new_tokens < self.test_digits_max + 1:
            raise ConfigError(f"max_new_tokens={self.max_new_tokens} cannot hold a {self.test_digits_max + 1}-digit "
                              f"sum: set it to at least {self.test_digits_max + 2}")


@dataclasses.dataclass(frozen=True)
class Problem:
    a: int
    b: int
    k: int

    @property
    def answer(self) -> str:
        return str(self.a + self.b)


def prompt(problem: Problem, style: str = "instruct", shots=()) -> str:
    """The text before the answer, which follows after a space (`target`). "instruct": the
    instruction, the worked examples `shots`, then the problem, as Question/Answer pairs; "bare":
    `Q: a+b=? A:` lines, the examples first.

        >>> prompt(Problem(12, 30, 2), "bare", shots=[Problem(1, 2, 1)])
        'Q: 1+2=? A: 3\\nQ: 12+30=? A:'
    """
    if style == "bare":
        return "".join(f"Q: {s.a}+{s.b}=? A: {s.answer}\n" for s in shots) + f"Q: {problem.a}+{problem.b}=? A:"
    if style == "instruct":
        examples = "".join(f"Question: {s.a}+{s.b}=?\nAnswer: {s.answer}\n\n" for s in shots)
        return f"{INSTRUCTION}\n\n{examples}Question: {problem.a}+{problem.b}=?\nAnswer:"
    raise ConfigError(f"prompt_style must be one of {', '.join(map(repr, PROMPT_STYLES))}, got {style!r}")


def target(problem: Problem) -> str:
    return " " + problem.answer


def training_pairs(problems: list[Problem], cfg: AdditionConfig) -> list[tuple[str, str]]:
    """(prompt, target) to fine-tune on: the configured style without worked examples. Examples
    only show the answer format, which the fine-tuning itself teaches, and they would triple every
    training example's length (max_seq_length holds a training-range problem with the instruction)."""
    return [(prompt(p, cfg.prompt_style), target(p)) for p in problems]


def worked_examples(cfg: AdditionConfig, test: list[Problem] | None = None) -> list[Problem]:
    """The `n_shots` examples of the test prompt: training-range problems whose digit counts are
    spread evenly from train_digits_min to train_digits_max, never a test problem in either order
    (`test` defaults to make_problems(cfg)'s). Seeded by cfg.seed, from their own random stream, so
    that the number of examples changes neither the training nor the test set."""
    test = make_problems(cfg)[1] if test is None else test
    held = {(p.a, p.b) for p in test} | {(p.b, p.a) for p in test}
    lo, hi, n = cfg.train_digits_min, cfg.train_digits_max, cfg.n_shots
    ks = [lo + round(i * (hi - lo) / (n - 1)) for i in range(n)] if n > 1 else [round((lo + hi) / 2)] * n
    rng = random.Random(f"addition-shots-{cfg.seed}")
    shots: list[Problem] = []
    for k in ks:
        taken = sum(1 for a, b in held | {(s.a, s.b) for s in shots} if len(str(a)) == k and len(str(b)) == k)
        if _distinct_pairs(k) - taken <= 0:
            raise ConfigError(f"no {k}-digit problem is left for a worked example: lower n_shots or n_test_per_k")
        while True:
            pair = (sample_operand(rng, k), sample_operand(rng, k))
            if pair not in held and pair not in {(s.a, s.b) for s in shots}:
                shots.append(Problem(*pair, k))
                break
    return shots


def eval_prompts(problems: list[Problem], cfg: AdditionConfig, shots: list[Problem] | None = None) -> list[str]:
    """The prompts the models are tested with: cfg.prompt_style with the worked examples."""
    shots = worked_examples(cfg) if shots is None else shots
    return [prompt(p, cfg.prompt_style, shots) for p in problems]


def sample_operand(rng: random.Random, k: int) -> int:
    """Uniform over the integers with exactly k digits (k = 1 includes 0)."""
    return rng.randint(0 if k == 1 else 10 ** (k - 1), 10 ** k - 1)


def _distinct_pairs(k: int) -> int:
    n = 10 if k == 1 else 9 * 10 ** (k - 1)
    return n * n


def make_problems(cfg: AdditionConfig) -> tuple[list[Problem], list[Problem]]:
    """Disjoint train and test sets. The test set is drawn first (distinct pairs per k); training
    pairs that occur in it (as a+b or b+a) are redrawn. Training pairs may repeat when k is small."""
    rng = random.Random(cfg.seed)
    test: list[Problem] = []
    for k in range(cfg.test_digits_min, cfg.test_digits_max + 1):
        if cfg.n_test_per_k > _distinct_pairs(k):
            raise ConfigError(f"k={k} has only {_distinct_pairs(k)} distinct problems: lower n_test_per_k")
        seen: set = set()
        while len(seen) < cfg.n_test_per_k:
            pair = (sample_operand(rng, k), sample_operand(rng, k))
            if pair not in seen:
                seen.add(pair)
                test.append(Problem(*pair, k))
    held_out = {(p.a, p.b) for p in test} | {(p.b, p.a) for p in test}

    train: list[Problem] = []
    ks = list(range(cfg.train_digits_min, cfg.train_digits_max + 1))
    for i, k in enumerate(ks):
        free = _distinct_pairs(k) - sum(1 for a, b in held_out if len(str(a)) == k and len(str(b)) == k)
        if free <= 0:
            raise ConfigError(f"the test set uses every {k}-digit problem, none left to train on: lower n_test_per_k")
        count = cfg.n_train // len(ks) + (1 if i < cfg.n_train % len(ks) else 0)
        while count:
            pair = (sample_operand(rng, k), sample_operand(rng, k))
            if pair not in held_out:
                train.append(Problem(*pair, k))
                count -= 1
    rng.shuffle(train)
    assert not {(p.a, p.b) for p in train} & held_out, "train and test overlap"
    return train, test


def extract_sum(problem: Problem, generation: str) -> str:
    """The sum a generation states, as a digit string ('' if none): the first integer; but when the
    generation starts by echoing the problem ("31+70=101", "31 + 70 = 100 + 1 = 101"), the integer
    after the last "=" on the echoed line (or, with none there, the next one after it).

        >>> extract_sum(Problem(31, 70, 2), "31+70=101"), extract_sum(Problem(31, 70, 2), " 101\\nQuestion: 5+6=?")
        ('101', '101')
    """
    text = generation or ""
    echo = re.match(rf"\D*?(?<!\d){problem.a}\s*\+\s*{problem.b}\s*=", text)
    if not echo:
        return extract_integer(text)
    line = text[echo.end():].split("\n", 1)[0]
    return extract_integer(text[echo.end() + line.rfind("=") + 1:])


def score(problem: Problem, generation: str) -> dict:
    predicted = extract_sum(problem, generation)
    return {
        "exact_match": exact_match(predicted, problem.answer),
        "digit_accuracy": digit_accuracy(predicted, problem.answer),
        "edit_distance": edit_distance(predicted, problem.answer),
        "parsed": predicted,
    }


METRICS = ("exact_match", "digit_accuracy", "edit_distance")


def per_k(problems: list[Problem], scores: list[dict]) -> dict[int, dict]:
    """Per digit count k: the mean of each metric (`exact_match`, ...), its `<metric>_summary`
    (helpers.stats.score_summary: n, lm-eval's stderr, a 95% interval, Wilson for 0/1 scores, else t),
    `n`, and the item scores (`items`), which the in-range summaries and the paired comparison of
    base and fine-tuned need item by item."""
    table: dict[int, dict] = {}
    for k in sorted({p.k for p in problems}):
        rows = [s for p, s in zip(problems, scores) if p.k == k]
        items = {m: [float(r[m]) for r in rows] for m in METRICS}
        table[k] = {}
        for m in METRICS:
            table[k] |= {m: sum(items[m]) / len(rows), f"{m}_summary": score_summary(items[m])}
        table[k] |= {"n": len(rows), "items": items}
    return table


def range_mean(table: dict[int, dict], lo: int, hi: int, metric: str = "exact_match") -> float | None:
    """Item-weighted mean of `metric` over k in [lo, hi] (None if no k falls there)."""
    rows = [v for k, v in table.items() if lo <= k <= hi]
    total = sum(v["n"] for v in rows)
    return sum(v[metric] * v["n"] for v in rows) / total if total else None


def range_items(table: dict, lo: int, hi: int, metric: str) -> list[float]:
    """The item scores of `metric` over k in [lo, hi], in k order (a table read back from metrics.json
    has its k as text)."""
    return [x for k in sorted(table, key=int) if lo <= int(k) <= hi for x in table[k]["items"][metric]]


def evaluate(model, tokenizer, info, problems: list[Problem], cfg: AdditionConfig, *, desc: str,
             keep: tuple | None = None):
    """Generate answers to `problems` and score them. Returns (generations, item scores, per-k table).
    `keep` (path, identity): the generations are kept at path and reused while identity holds
    (helpers.runs.kept_result), so a re-run after a disconnect scores them without generating again."""
    from helpers.generation import generate
    from helpers.runs import kept_result

    def answer():
        return generate(model, tokenizer, eval_prompts(problems, cfg), chat=False, stop_token_ids=info.stop_token_ids,
                        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size, desc=desc)

    generations = kept_result(*keep, answer) if keep else answer()
    scores = [score(p, g) for p, g in zip(problems, generations)]
    return generations, scores, per_k(problems, scores)


def _ranges(cfg) -> dict[str, tuple[int, int]]:
    """In range: the training digit counts; out of range: the longer ones."""
    lo, hi = cfg["train_digits"] if isinstance(cfg, dict) else (cfg.train_digits_min, cfg.train_digits_max)
    top = cfg["test_digits"][1] if isinstance(cfg, dict) else cfg.test_digits_max
    return {"in_range": (lo, hi), "out_of_range": (hi + 1, top)}


def summarize(table: dict[int, dict], cfg: AdditionConfig) -> dict:
    """Per-k table plus in-range (training digits) and out-of-range means of every metric, each with
    its `<key>_summary` over the items of those k (None where no k falls in the range)."""
    out = {"per_k": table}
    for where, (lo, hi) in _ranges(cfg).items():
        for metric in METRICS:
            items = range_items(table, lo, hi, metric)
            out[f"{where}_{metric}"] = range_mean(table, lo, hi, metric)
            out[f"{where}_{metric}_summary"] = score_summary(items) if items else None
    return out


PAIRED_METRICS = ("exact_match", "digit_accuracy")


def paired(metrics: dict, *, seed: int = 0) -> dict:
    """Fine-tuned − base on the same test items (helpers.stats.paired_comparison: the difference, a
    paired bootstrap 95% interval and, for exact match, the exact McNemar test), per k and over the
    in-range and out-of-range k, for exact match and digit accuracy. `metrics` holds summarize's
    "base" and "finetuned" and the run's "train_digits" and "test_digits"; the result goes to
    metrics["paired"]:

        >>> metrics["paired"] = paired(metrics)
        >>> metrics["paired"]["in_range"]["exact_match"]["mcnemar_p"]
    """
    base, tuned = metrics["base"]["per_k"], metrics["finetuned"]["per_k"]
    if set(map(int, base)) != set(map(int, tuned)):
        raise ValueError(f"base and fine-tuned were tested on other digit counts: {sorted(base)} vs {sorted(tuned)}")

    def compare(lo, hi):
        pairs = {m: (range_items(tuned, lo, hi, m), range_items(base, lo, hi, m)) for m in PAIRED_METRICS}
        return {m: paired_comparison(t, b, seed=seed) if t else None for m, (t, b) in pairs.items()}

    out = {"direction": "fine-tuned minus base", "per_k": {int(k): compare(int(k), int(k)) for k in tuned}}
    return out | {where: compare(lo, hi) for where, (lo, hi) in _ranges(metrics).items()}


def difference_text(cmp: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    """'+12.0 [4.0, 20.0] paired bootstrap 95%, McNemar p=0.0312' of a paired_comparison."""
    if not cmp:
        return "-"
    text = f"{scale * cmp['difference']:+.{digits}f}"
    if not (math.isnan(cmp["ci_low"]) or math.isnan(cmp["ci_high"])):
        text += f" [{scale * cmp['ci_low']:.{digits}f}, {scale * cmp['ci_high']:.{digits}f}] paired bootstrap 95%"
    if "mcnemar_p" in cmp:
        text += f", McNemar p={cmp['mcnemar_p']:.3g}"
    return text


def comparison_table(metrics: dict):
    """Base vs fine-tuned per k, as a pandas DataFrame of text: each score in % (edit distance in
    characters) with its 95% interval, named, and, where metrics holds `paired`, the fine-tuned − base
    exact-match difference with its paired interval and McNemar's p."""
    import pandas as pd

    differences = ((metrics.get("paired") or {}).get("per_k")) or {}
    rows = []
    for k, base in metrics["base"]["per_k"].items():
        tuned = metrics["finetuned"]["per_k"][k]
        row = {"k": int(k), "in training range": metrics["train_digits"][0] <= int(k) <= metrics["train_digits"][1],
               "n": base["n"]}
        for metric, title, scale in (("exact_match", "exact %", 100), ("digit_accuracy", "digit %", 100),
                                     ("edit_distance", "edit dist", 1)):
            row[f"base {title}"] = with_interval(base.get(f"{metric}_summary"), scale)
            row[f"tuned {title}"] = with_interval(tuned.get(f"{metric}_summary"), scale)
        if differences:
            cmp = differences.get(k, differences.get(str(k))) or {}
            row["tuned − base exact (points)"] = difference_text(cmp.get("exact_match"))
        rows.append(row)
    return pd.DataFrame(rows).set_index("k")


def report(metrics: dict) -> str:
    """The base vs fine-tuned table the demo prints."""
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 60):
        lines = [comparison_table(metrics).to_string(), ""]
    for stage in ("base", "finetuned"):
        m = metrics[stage]
        out = m.get("out_of_range_exact_match_summary")
        lines.append(f"{stage:>10}: exact match {with_interval(m['in_range_exact_match_summary'])} in range (k <= "
                     f"{metrics['train_digits'][1]}), " + (f"{with_interval(out)} beyond" if out else "-"))
    gain = metrics["in_range_exact_match_gain_points"]
    in_range = ((metrics.get("paired") or {}).get("in_range") or {}).get("exact_match")
    lines.append("in-range exact-match gain (points): " + (difference_text(in_range) if in_range else f"{gain:+.1f}"))
    return "\n".join(lines)
