"""Estimated T4 hours of each study's training at its notebook's defaults (issue 16). Prints one
markdown table; no GPU, no network.

For each study: the defaults of its config (helpers.studies.STUDIES: model, rows, epochs, batch,
max_seq_length, LoRA), the model's parameters doing matrix work (scripts/perf_bench.py `memory_floor`
of the public config numbers in scripts/make_random_checkpoint.py), the training tokens (rows x mean
tokens a row x epochs) and

    FLOPs = 6 x params x tokens,   T4 hours = FLOPs / (T4 fp16 dense rate x share of peak) / 3600

6 = forward 2, the backward through the frozen weights 2 (input gradients only: QLoRA trains no
base weight) and gradient checkpointing's recomputed forward 2, per parameter and token. The share of
peak a T4 reaches is an ASSUMPTION (no T4 was available): `--share` and the range `--low` .. `--high`
(defaults: SHARE, LOW, HIGH). Training only: evaluation and generation are not counted.

Mean tokens a row come from the embedded model's tokenizer with the study model's chat template
(scripts/make_random_checkpoint.py `arch_tokenizer`; the template's markers that are one token in the
real vocabulary are made one token here too), on the study's own prompt format (helpers.sft), over the
rows each study row names: generated (addition), the project's offline rows (benchmark_data/data:
written for this project, not samples of the real data), or perf_bench's length models (Orca-Math:
our lognormal; Alpaca: the published means).

    python scripts/t4_hours.py                     # share 0.25, range 0.15-0.40
    python scripts/t4_hours.py --share 0.3 --low 0.2 --high 0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_bench import (  # noqa: E402
    T4_FP16_DENSE,
    alpaca_lengths,
    memory_floor,
    orca_lengths,
    public_config,
    template_tokens,
)

from helpers.config import ConfigError  # noqa: E402
from helpers.studies import STUDIES  # noqa: E402

SHARE, LOW, HIGH = 0.25, 0.15, 0.40
# Registry names whose shapes are those of an architecture in make_random_checkpoint.ARCHITECTURES
# (an instruct or chat checkpoint has its base model's shapes).
ARCH_OF = {"mistral-7b-instruct-v3": "mistral-7b-v3", "llama-3.2-1b-instruct": "llama-3.2-1b",
           "tinyllama-1.1b-chat": "tinyllama-1.1b"}
# Template markers that are one id in the real vocabulary (Llama 3's added tokens 128000-128009;
# Mistral v0.3's control tokens [INST] = 3, [/INST] = 4); the embedded vocabulary would split them.
ONE_TOKEN_MARKERS = {"llama-3": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                     "mistral": ["[INST]", "[/INST]"]}
# The forgetting study's second run, whose time the study reports (the notebook's parameters comment
# names it); not the notebook's default, so it is its own row.
FORGETTING_TINYLLAMA = {"model": "tinyllama-1.1b", "n_train": 50_000}


@dataclasses.dataclass
class Estimate:
    study: str
    setting: str                   # the defaults read from the study's config
    model: str | None = None       # None: the study trains nothing
    rows: int = 0                  # rows a training epoch goes through, summed over the study's trainings
    epochs: float = 0.0
    tokens_per_row: float = 0.0
    source: str = ""               # where tokens_per_row comes from
    not_counted: str = ""
    reported: str = "not reported"
    upper_bound: bool = False      # rows a bound, not a count
    flop_params: int = 0

    @property
    def tokens(self) -> float:
        return self.rows * self.tokens_per_row * self.epochs

    @property
    def flops(self) -> float:
        return training_flops(self.flop_params, self.tokens)


def training_flops(params: int, tokens: float) -> float:
    """QLoRA with gradient checkpointing: forward 2N, recomputed forward 2N, backward to the inputs 2N
    a token (Kaplan et al. 2020's 6N counts the weight gradients instead of the recompute)."""
    return 6 * params * tokens


def t4_hours(flops: float, share: float) -> float:
    return flops / (T4_FP16_DENSE * share) / 3600


@functools.lru_cache(maxsize=None)
def flop_params(model: str) -> int:
    """Parameters doing matrix work (no input-embedding lookup) of `model`'s public config."""
    return memory_floor(public_config(ARCH_OF.get(model, model)))["flop_params"]


def embedded_tokenizer_dir() -> str:
    from helpers.modeling import embedded_checkpoint
    from helpers.registry import resolve_model

    return str(embedded_checkpoint(resolve_model("smollm2-135m")))


@functools.lru_cache(maxsize=None)
def study_tokenizer(model: str, tokenizer_dir: str):
    """The embedded tokenizer with `model`'s chat template, its markers one token each as in its vocabulary."""
    from make_random_checkpoint import arch_tokenizer

    from helpers.registry import load_registry

    tokenizer = arch_tokenizer(model, tokenizer_dir)
    tokenizer.add_tokens(ONE_TOKEN_MARKERS.get(load_registry()[model].family, []), special_tokens=True)
    return tokenizer


def mean_tokens(tokenizer, pairs, *, chat: bool, max_length: int) -> float:
    """Mean tokens a training row computes: prompt and answer as helpers.sft tokenizes them, cut at max_length."""
    from helpers.sft import tokenize_example

    return statistics.mean(len(tokenize_example(tokenizer, p, a, chat=chat, max_length=max_length)["input_ids"])
                           for p, a in pairs)


def modelled_tokens(tokenizer, lengths, n: int, max_length: int) -> float:
    """Mean tokens a row of perf_bench's length model `lengths` (content tokens), plus the chat template's."""
    extra = template_tokens(tokenizer)
    return statistics.mean(p + a for p, a in lengths(n, max_length - sum(extra))) + sum(extra)


def default_config(study: str, **overrides):
    """The study's config at its defaults (the notebook's parameters cell mirrors them; not validated:
    mmlu_teacher's checks want an API key, which changes no training)."""
    entry = STUDIES[study]
    return entry.config(**{**entry.fixed, **overrides})


def settings(cfg, rows: str) -> str:
    return (f"{cfg.model}; {rows} x {cfg.epochs:g} epoch{'s' * (cfg.epochs != 1)}; batch {cfg.batch_size} x "
            f"{cfg.grad_accum}; max {cfg.max_seq_length:,} tokens; LoRA r {cfg.lora_r}")


def local_rows(data) -> list[dict]:
    """Every row of the project's offline copy (benchmark_data/data/) of `data`."""
    from helpers.data import load_records

    return load_records(data, source="local", n=0)


# ---------------------------------------------------------------------------------------- the studies

def addition(tok_dir: str) -> list[Estimate]:
    from helpers.tasks import addition as task

    cfg = default_config("addition")
    train, _ = task.make_problems(cfg)
    tokens = mean_tokens(study_tokenizer(cfg.model, tok_dir), task.training_pairs(train, cfg), chat=False,
                         max_length=cfg.max_seq_length)
    return [Estimate("addition", settings(cfg, f"{len(train):,} problems"), cfg.model, len(train), cfg.epochs, tokens,
                     "measured: the generated training problems (exact); digits one token each, as Llama 2's",
                     f"base and fine-tuned evaluation: {cfg.test_digits_max - cfg.test_digits_min + 1} x "
                     f"{cfg.n_test_per_k} problems, {cfg.n_shots}-shot, up to {cfg.max_new_tokens} new tokens")]


def train_math(tok_dir: str) -> list[Estimate]:
    cfg = default_config("train_math")
    tokens = modelled_tokens(study_tokenizer(cfg.model, tok_dir), orca_lengths, cfg.n_samples, cfg.max_seq_length)
    return [Estimate("train_math", settings(cfg, f"{cfg.n_samples:,} rows"), cfg.model, cfg.n_samples, cfg.epochs,
                     tokens, "modelled: perf_bench orca_lengths (our lognormal, prompt median 90, answer median "
                     "180 tokens) + the chat template's tokens", "benchmark.ipynb answers the questions after")]


def train_bio(tok_dir: str) -> list[Estimate]:
    from helpers.data import HubData
    from helpers.tasks.instruct import TASKS

    cfg = default_config("train_bio")
    task = TASKS["bio"]
    pairs = [task.to_pair(r) for r in local_rows(HubData(task.hub_id, task.local_file, task.columns))]
    tokens = mean_tokens(study_tokenizer(cfg.model, tok_dir), pairs, chat=True, max_length=cfg.max_seq_length)
    return [Estimate("train_bio", settings(cfg, f"{cfg.n_samples:,} rows"), cfg.model, cfg.n_samples, cfg.epochs,
                     tokens, f"measured: the {len(pairs)} offline rows ({task.local_file}, written for this project)",
                     "benchmark.ipynb answers the questions after")]


def mmlu_teacher(tok_dir: str) -> list[Estimate]:
    from helpers.published import MMLU_SUBJECTS
    from helpers.tasks import mmlu

    cfg = default_config("mmlu_teacher")
    test_size = dict(MMLU_SUBJECTS.values())
    unknown = [s for s in cfg.subjects if s not in test_size]
    if unknown:
        raise ConfigError(f"no MMLU test size known for {', '.join(unknown)}: "
                          "add it to helpers.published.MMLU_SUBJECTS")
    n_eval = sum(min(cfg.max_questions or test_size[s], test_size[s]) for s in cfg.subjects)
    # finetune_variants: each method trains one student on every subject and, with domain_models and more
    # than one subject, one per subject (the same rows again); method 2 at most one item a test question
    copies = 2 if cfg.domain_models and len(cfg.subjects) > 1 else 1
    method1 = cfg.n_generate * len(cfg.subjects) * copies if cfg.method1 else 0
    method2 = n_eval * copies if cfg.method2 else 0
    questions = mmlu.load_mmlu(cfg.subjects, source="local")
    tokens = mean_tokens(study_tokenizer(cfg.model, tok_dir), mmlu.training_pairs(questions), chat=True,
                         max_length=cfg.max_seq_length)
    students = (1 + (len(cfg.subjects) if copies > 1 else 0)) * (cfg.method1 + cfg.method2)
    return [Estimate("mmlu_teacher", settings(cfg, f"at most {method1 + method2:,} rows"), cfg.model,
                     method1 + method2, cfg.epochs, tokens,
                     f"measured: the {len(questions)} offline MMLU questions of {', '.join(cfg.subjects)} "
                     "(mmlu_fixture.jsonl, written for this project) in the study prompt. Rows an upper bound "
                     "(the teacher decides): every teacher item kept, "
                     f"{cfg.n_generate} a subject, and one targeted item for each of the {n_eval:,} test questions; "
                     "the students of one subject train on the same rows again",
                     f"the teacher's requests; the vanilla and {students} fine-tuned students each answer "
                     f"{n_eval:,} questions", upper_bound=True)]


def forgetting(tok_dir: str) -> list[Estimate]:
    from helpers.published import FORGETTING, load_published

    out = []
    published = load_published()[FORGETTING]["settings"]
    for overrides in ({}, FORGETTING_TINYLLAMA):
        cfg = default_config("forgetting", **overrides)
        tokens = modelled_tokens(study_tokenizer(cfg.model, tok_dir), alpaca_lengths, cfg.n_train, cfg.max_seq_length)
        label = "forgetting" if not overrides else "forgetting, the study's TinyLlama run (not the default)"
        row = Estimate(label, settings(cfg, f"{cfg.n_train:,} rows"), cfg.model, cfg.n_train, cfg.epochs, tokens,
                       "modelled: perf_bench alpaca_lengths (Alpaca's published means, 27.8 prompt + 64.6 answer "
                       "tokens) + the chat template's tokens",
                       "base and fine-tuned HellaSwag, GSM8K (5-shot, up to 256 new tokens), MMLU CS")
        row.reported = (f"{published['tinyllama_finetune_time']} ({published['hardware']})" if overrides
                        else "not reported (the study times its TinyLlama run: next row)")
        out.append(row)
    return out


def small_vs_large(tok_dir: str) -> list[Estimate]:
    from helpers.tasks import small_vs_large as task

    cfg = default_config("small_vs_large")
    tokenizer = study_tokenizer(cfg.model, tok_dir)
    per_row, measured = [], []
    for name in cfg.tasks:
        dr = task.TASKS[name]
        rows = local_rows(dr.pool)
        labels = task.labels_of(dr, rows, [])
        plain = [(task.build_prompt(dr, r, labels=labels), dr.target(r)) for r in rows]
        # the k demonstrations: the next k rows (retrieval picks similar texts, not longer or shorter ones)
        icl = [(task.build_prompt(dr, r, [rows[(i + j) % len(rows)] for j in range(1, cfg.k_demos + 1)], labels),
                dr.target(r)) for i, r in enumerate(rows)]
        for pairs in (plain, icl):
            per_row.append(mean_tokens(tokenizer, pairs, chat=True, max_length=cfg.max_seq_length))
        measured.append(f"{len(rows)} {dr.pool.local_file}")
    trainings = [c for c in ("plain", "icl") if any(task.ADAPTER.get(x) == c for x in cfg.configurations)]
    kept = [t for i, t in enumerate(per_row) if ("plain", "icl")[i % 2] in trainings]
    return [Estimate("small_vs_large", settings(cfg, f"{len(cfg.tasks)} tasks x {len(trainings)} trainings x "
                                                     f"{cfg.n_pool:,} rows"),
                     cfg.model, len(kept) * cfg.n_pool, cfg.epochs, statistics.mean(kept),
                     f"measured: the offline rows ({', '.join(measured)}; written for this project), plain and "
                     f"with {cfg.k_demos} demonstrations (the next rows standing in for retrieved ones); the beer "
                     "prompt lists every style present, 5 offline, likely more in the real data",
                     f"5 configurations x {cfg.n_test} test items a task, up to {cfg.max_new_tokens} new tokens; "
                     "retrieval; BERTScore")]


def benchmark(tok_dir: str) -> list[Estimate]:
    cfg = default_config("benchmark")
    return [Estimate("benchmark", f"{cfg.model}; stages {', '.join(cfg.stages)}; up to {cfg.max_new_tokens} new "
                     "tokens", not_counted="generation only: no training to estimate")]


def compile_ratings(tok_dir: str) -> list[Estimate]:
    return [Estimate("compile_ratings", "reads the rating workbooks", not_counted="no model (CPU, seconds)")]


ESTIMATES = {"addition": addition, "train_math": train_math, "train_bio": train_bio, "benchmark": benchmark,
             "compile_ratings": compile_ratings, "mmlu_teacher": mmlu_teacher, "forgetting": forgetting,
             "small_vs_large": small_vs_large}


def estimates(tokenizer_dir: str | None = None) -> list[Estimate]:
    missing = sorted(set(STUDIES) - set(ESTIMATES))
    if missing:
        raise ConfigError(f"no T4 estimate for {', '.join(missing)}: add it to ESTIMATES in scripts/t4_hours.py")
    tok_dir = tokenizer_dir or embedded_tokenizer_dir()
    out = [row for name in STUDIES for row in ESTIMATES[name](tok_dir)]
    for row in out:
        if row.model:
            row.flop_params = flop_params(row.model)
    return out


def reported_hours(text: str) -> float | None:
    found = re.search(r"([0-9]+(?:\.[0-9]+)?)\s*hours?", text)
    return float(found.group(1)) if found else None


def check_shares(share: float, low: float, high: float) -> None:
    for name, value in (("share", share), ("low", low), ("high", high)):
        if not 0 < value <= 1:
            raise ConfigError(f"--{name} is a share of the T4's peak in (0, 1], got {value}")
    if not low <= share <= high:
        raise ConfigError(f"--low {low} <= --share {share} <= --high {high} please")


def hours_text(hours: float) -> str:
    return f"{hours:.2f}" if hours < 1 else f"{hours:.1f}" if hours < 10 else f"{hours:.0f}"


def table(rows: list[Estimate], share: float = SHARE, low: float = LOW, high: float = HIGH) -> str:
    """The markdown table, then its numbered notes (where each row's tokens a row come from)."""
    check_shares(share, low, high)
    lines = [f"| study | defaults | FLOP params | tokens a row | training tokens | PFLOP | T4 h at {share:.0%} "
             f"(ASSUMED) | T4 h at {high:.0%}-{low:.0%} (ASSUMED) | counted | study's own time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    notes: dict[str, int] = {}
    for row in rows:
        if not row.model:
            lines.append(f"| {row.study} | {row.setting} |{' - |' * 6} {row.not_counted} | {row.reported} |")
            continue
        note = notes.setdefault(row.source, len(notes) + 1)
        at_most = "≤ " if row.upper_bound else ""
        reported, hours = row.reported, reported_hours(row.reported)
        if hours:
            reported += f"; implies {row.flops / (T4_FP16_DENSE * hours * 3600):.1%} of peak"
        lines.append(f"| {row.study} | {row.setting} | {row.flop_params / 1e9:.2f}B | {row.tokens_per_row:,.0f} "
                     f"[{note}] | {at_most}{row.tokens / 1e6:,.2f}M | {at_most}{row.flops / 1e15:,.1f} | "
                     f"{at_most}{hours_text(t4_hours(row.flops, share))} | {at_most}"
                     f"{hours_text(t4_hours(row.flops, high))}-{hours_text(t4_hours(row.flops, low))} | "
                     f"training only; not counted: {row.not_counted} | {reported} |")
    return "\n".join(lines + [""] + [f"[{i}] {text}." for text, i in notes.items()])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--share", type=float, default=SHARE,
                        help=f"assumed share of the T4's {T4_FP16_DENSE / 1e12:.0f} TFLOP/s fp16")
    parser.add_argument("--low", type=float, default=LOW, help="low end of the assumed share")
    parser.add_argument("--high", type=float, default=HIGH, help="high end of the assumed share")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the embedded model's)")
    args = parser.parse_args(argv)
    try:
        check_shares(args.share, args.low, args.high)  # before the tokenizing: a typo costs no wait
        print(table(estimates(args.tokenizer), args.share, args.low, args.high))
    except ConfigError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
