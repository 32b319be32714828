"""The four studies' published numbers beside a run's own: ours with its interval, the difference,
whether the published value lies inside our interval, and which rows can be compared at all.

The published numbers, what each ± means, the sample sizes and the stated settings are data
(`data/published/seed_results.json`, keyed by a file-like id per study). A row is comparable only
when the model, n and the key settings the paper states match the run's; a setting the paper does
not state is not checked and is listed under the table instead.

    >>> rows = published_rows("forgetting")              # what the paper printed
    >>> table = compare("forgetting", metrics, cfg)       # one row per published number
    >>> write_comparison(table, run_dir)                  # published_vs_ours.md and .png
    {'published_vs_ours_md': '.../published_vs_ours.md', 'published_vs_ours_png': '.../published_vs_ours.png'}
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from pathlib import Path

import yaml

from helpers.config import CONFIG_DIR, REPO_ROOT, ConfigError
from helpers.stats import proportion_interval

PUBLISHED_FILE = REPO_ROOT / "data" / "published" / "seed_results.json"
COMPARISON_STEM = "published_vs_ours"

# The seed's ids of the four studies
SMALL_VS_LARGE = "000_946d573d9e224735.txt"
SEVEN_MODELS = "001_78860f88f7d455dc.txt"
FORGETTING = "002_3c84c8b3bdabdc7d.txt"
GENERALIST = "004_335a8a5d71be8d32.txt"  # MMLU teacher + k-digit addition
SOURCE_OF = {"addition": GENERALIST, "mmlu_teacher": GENERALIST, "forgetting": FORGETTING,
             "small_vs_large": SMALL_VS_LARGE, "train_math": SEVEN_MODELS, "train_bio": SEVEN_MODELS,
             "benchmark": SEVEN_MODELS, "compile_ratings": SEVEN_MODELS}

COLUMNS = ["table", "row", "column", "ours_from", "unit", "published", "published_pm", "pm_meaning", "ours",
           "ours_low", "ours_high", "interval", "difference", "inside", "comparable", "reason", "n_ours",
           "n_study", "note"]
# A paper's rounded n (HellaSwag "n = 10,000") against the split's true size (10,042) is the same n.
N_TOLERANCE = 0.01


@functools.cache
def load_published(path: str | None = None) -> dict:
    return json.loads(Path(path or PUBLISHED_FILE).read_text())


def _source(study: str) -> dict:
    if study not in SOURCE_OF:
        raise ConfigError(f"unknown study '{study}'; known: {', '.join(SOURCE_OF)}")
    return load_published()[SOURCE_OF[study]]


def _table(source: dict, prefix: str) -> dict:
    return next(t for t in source["tables"] if t["name"].startswith(prefix))


# the tables of each study's source that hold its published numbers (by the start of the table's name)
_TABLES = {"addition": ["Text-only: k-digit addition"], "mmlu_teacher": ["Table 2: Accuracy", "Table 3: Accuracy"],
           "forgetting": ["Table 2: Base vs fine-tuned"], "small_vs_large": ["Results table"],
           "train_math": ["Text-only headline"], "benchmark": ["Text-only headline"],
           "compile_ratings": ["Text-only headline"], "train_bio": []}
# "percent (dA and dK ...)" -> the unit each row is printed in
_SHORT_UNIT = {"fraction (0-1)": "fraction", "number of digits k": "k"}


def _unit(table: dict, row: str) -> str:
    unit = table["unit"]
    if unit.startswith("percent"):
        return "%" if not re.search(r"\(d[AK]\b", row) else "points"
    if unit.startswith("human-rated"):
        return "rating"
    return _SHORT_UNIT.get(unit, unit)


def _base_label(label: str) -> str:
    # pm_check names "MMLU CS | Knowledge Loss (dK)" what the table calls "... (dK, percentage points)"
    return label.split(" (")[0]


def _pm_meaning(table: dict, row: str, column: str) -> tuple[str, dict | None]:
    """What a printed ± is, from the seed's check of it against n; compare shows it as it is and never
    uses it as an interval."""
    for check in table.get("pm_check", []):
        if _base_label(check["row"]) == _base_label(row) and check["column"] == column:
            matches = check["matches"]
            if matches == "1 SE":
                return "1 SE: the paper calls it a 95% CI, but it equals one standard error", check
            if "RSS" in matches:
                return "root-sum-square of two 1-SE values, not a 95% interval", check
            return matches, check
    return "not stated", None


def published_rows(study: str) -> list[dict]:
    """Every number the study's paper prints for `study` (addition, mmlu_teacher, forgetting,
    small_vs_large, train_math, train_bio, benchmark, compile_ratings): table, row, column, value,
    unit, the printed ± and what it means, and n with where it comes from (None where the paper is silent).

        >>> published_rows("forgetting")[0]["row"], published_rows("forgetting")[0]["pm_meaning"][:4]
        ('GSM8K | Flexible Accuracy', '1 SE')
    """
    source = _source(study)
    rows = []
    for prefix in _TABLES[study]:
        table = _table(source, prefix)
        for entry in table["rows"]:
            for column, value in entry["values"].items():
                if value is None:
                    continue
                pm = entry.get("plusminus", {}).get(column)
                meaning, check = _pm_meaning(table, entry["row"], column) if pm is not None else ("", None)
                rows.append({"study": study, "source": SOURCE_OF[study], "paper": source["study"],
                             "table": table["name"], "row": entry["row"], "column": column, "value": value,
                             "unit": _unit(table, entry["row"]), "pm": pm, "pm_meaning": meaning,
                             "n": (check or {}).get("n_assumed"), "n_basis": (check or {}).get("n_basis")})
    return rows


# ------------------------------------------------------------------------------------ models

@dataclasses.dataclass(frozen=True)
class StudyModel:
    """A model as a paper names it, and the pattern our model names / hub ids must match to be it."""

    label: str
    pattern: str
    hints: tuple = ()  # (pattern, why): a near miss worth explaining

    def matches(self, model: str | None) -> bool:
        return bool(model) and any(re.search(self.pattern, m) for m in _model_ids(model))

    def mismatch(self, model: str | None, role: str = "model") -> str | None:
        if self.matches(model) or model == "":  # "": the run has none (e.g. no large model), said elsewhere
            return None
        if model is None:
            return f"{role} unknown (no run.json), the study used {self.label}"
        embedded = " (the embedded model)" if _is_embedded(model) else ""
        hint = next((why for pattern, why in self.hints if any(re.search(pattern, m) for m in _model_ids(model))), "")
        return f"{role} {model}{embedded}, the study used {self.label}" + (f" ({hint})" if hint else "")


def _model_ids(model: str) -> list[str]:
    """The run's model name and, for a registry name, its hub id, lower case."""
    from helpers.registry import load_registry

    ids = [str(model).lower()]
    spec = load_registry().get(str(model))
    if spec and spec.hub_id:
        ids.append(spec.hub_id.lower())
    return ids


def _is_embedded(model: str) -> bool:
    from helpers.registry import load_registry

    spec = load_registry().get(str(model))
    return bool(spec and spec.embedded)


LLAMA2_7B = StudyModel("LLaMA 2 7B", r"llama-2-7b")  # base vs chat not stated: both count
GPT4O = StudyModel("GPT-4o", r"(^|/)gpt-4o(-20\d\d-\d\d-\d\d)?$")
LLAMA32_1B = StudyModel("Llama 3.2 1B (base)", r"llama-3\.2-1b(?!-instruct)",
                        hints=((r"llama-3\.2-1b-instruct", "the study names the base model; its base GSM8K of 33.5% "
                                "is nearer what the instruct model scores: docs/fidelity.md"),))
TINYLLAMA = StudyModel("TinyLlama 1.1B", r"tinyllama")  # base vs chat not stated: both count
MISTRAL_7B_INSTRUCT = StudyModel("Mistral-7B-Instruct", r"mistral-7b-instruct")  # version not stated
LLAMA3_70B = StudyModel("Llama 3(.3) 70B", r"llama-?3(\.\d)?-70b")
LLAMA31_8B = StudyModel("Llama 3.1 8B", r"llama-3\.1-8b")


# ------------------------------------------------------------------------------------ settings

@dataclasses.dataclass(frozen=True)
class Setting:
    """A setting the paper states: our config key, its value in our terms, how the paper says it."""

    key: str | tuple  # a tuple: several config keys that together hold the value (a range's min and max)
    value: object
    stated: str

    def mismatch(self, cfg: dict) -> str | None:
        if not cfg:
            return None  # a run without run.json is reported once, by compare
        if isinstance(self.key, tuple):
            ours, name = [cfg.get(k) for k in self.key], "/".join(self.key)
        else:
            ours, name = cfg.get(self.key), self.key
        if _same(ours, self.value):
            return None
        return f"{name} {_show(ours)}, the study used {self.stated}"


def _same(a, b) -> bool:
    if isinstance(b, float) and isinstance(a, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9)
    if isinstance(b, (list, tuple)) and isinstance(a, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _show(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(_show, value)) + "]"
    return "unset" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _digits_setting(which: str, text: str) -> Setting:
    """`which` digits (train/test) as the paper states them ("k in 1-7") against <which>_digits_min/max."""
    lo, hi = re.search(r"k in (\d+)-(\d+)", text).groups()
    return Setting((f"{which}_digits_min", f"{which}_digits_max"), [int(lo), int(hi)], f"k in {lo}-{hi}")


def _first_samples(text: str) -> int:
    return int(re.search(r"first ([\d,]+) samples", text).group(1).replace(",", ""))


def _qlora_settings(s: dict) -> list[Setting]:
    """LoRA rank, dropout, epochs and 4-bit loading, where the paper states them (null: not checked)."""
    out = []
    if "4-bit" in (s.get("quantisation") or ""):
        out.append(Setting("load_in_4bit", True, s["quantisation"]))
    if s.get("lora_rank") is not None:
        out.append(Setting("lora_r", int(s["lora_rank"]), f"r={s['lora_rank']}"))
    if s.get("lora_dropout") is not None:
        out.append(Setting("lora_dropout", float(s["lora_dropout"]), f"dropout {s['lora_dropout']}"))
    if s.get("epochs") is not None and re.fullmatch(r"\d+", str(s["epochs"])):
        out.append(Setting("epochs", float(s["epochs"]), f"{s['epochs']} epoch(s)"))
    return out


def unstated_settings(study: str) -> list[str]:
    """The settings of the study's paper that are null: not checked when comparing."""
    return sorted(k for k, v in _source(study)["settings"].items() if v is None)


def detect_preset(study: str, cfg: dict) -> str | None:
    """The preset a run used: recorded in its config ("preset"), else the one under configs/presets/
    whose every value the config holds."""
    if not cfg:
        return None
    if cfg.get("preset"):
        return str(cfg["preset"])
    for folder in sorted((CONFIG_DIR / "presets").iterdir()):
        path = folder / f"{study}.yaml"
        if path.is_file():
            values = yaml.safe_load(path.read_text()) or {}
            if values and all(k in cfg and _same(cfg[k], _preset_value(v, cfg[k])) for k, v in values.items()):
                return folder.name
    return None


def _preset_value(value, ours):
    # PyYAML reads 1e-4 (no dot) as text; the config holds it as a float (helpers.config._from_text)
    if isinstance(ours, float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return float(value) if isinstance(value, float) else value


# ------------------------------------------------------------------------------------ our numbers

@dataclasses.dataclass
class Ours:
    """One number of the run, in the published unit, with its interval and where it comes from."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
    interval: str = ""
    n: int | None = None
    source: str = ""
    missing: str = ""  # why there is no value


def _finite(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


VALUE_KEYS = ("mean", "accuracy", "value", "mean_rating")


def measure(entry, *, key: str | None = None, scale: float = 1.0, proportion: bool = False,
            half: float | None = None, n: int | None = None, source: str = "") -> Ours:
    """A run's number as `Ours`: the run's own 95% interval when it has one, else, for a proportion
    whose n is known, a Wilson 95% interval from its count; else no interval, and the reason says so.

    `entry` is a number or a dict. A dict holds the number under `key` (default: the first of
    VALUE_KEYS it has) and its interval in one of the layouts runs have written: `<key>_summary`
    (helpers.stats.score_summary: n, ci_low, ci_high, ci_method; how every study writes it now), the
    summary's fields in the dict itself, or, in older runs, `<key>_ci95` / `ci95` as [low, high] or
    as a half-width (`half` given also counts as one)."""
    if entry is None or (key and isinstance(entry, dict) and key not in entry):
        return Ours(missing=f"{source or 'the metric'} is not in the run's metrics", source=source)
    method = None
    if isinstance(entry, dict):
        key = key or next((k for k in VALUE_KEYS if k in entry), None)
        value = entry.get(key) if key else None
        summary = entry.get(f"{key}_summary") if key else None
        held = summary if isinstance(summary, dict) else entry  # where the interval is
        n = held.get("n", entry.get("n", n))
        count = entry.get("count", entry.get("correct"))
        low, high, method = held.get("ci_low"), held.get("ci_high"), held.get("ci_method")
        ci = entry.get(f"{key}_ci95", entry.get("ci95")) if key else entry.get("ci95")
        if low is None and isinstance(ci, (list, tuple)) and len(ci) == 2:
            low, high = ci
        elif low is None and half is None:
            half = ci
    else:
        value, count, low, high = entry, None, None, None
    value = _finite(value)
    if value is None:
        return Ours(missing=f"{source or 'the metric'} is undefined in the run", n=n, source=source)
    low, high, half = _finite(low), _finite(high), _finite(half)
    out = Ours(value=value * scale, n=n, source=source)
    if low is not None and high is not None:
        out.low, out.high, out.interval = low * scale, high * scale, f"95% {method} (the run's)" if method \
            else "95% (the run's)"
    elif half is not None:
        out.low, out.high, out.interval = (value - half) * scale, (value + half) * scale, "95% (the run's)"
    elif proportion and n:
        count = round(value * n) if count is None else count
        lo, hi = proportion_interval(int(count), int(n))  # Wilson, helpers/stats.py
        out.low, out.high, out.interval = lo * scale, hi * scale, f"Wilson 95% from {int(count)}/{int(n)}"
    else:
        out.interval = "no interval: the run has none for it, and it is not a count out of n"
    return out


# ------------------------------------------------------------------------------------ per study

@dataclasses.dataclass
class Match:
    """A published row and what stands for it in the run, with what must agree to compare them."""

    published: dict
    ours: Ours
    models: list = dataclasses.field(default_factory=list)  # (StudyModel, our model, role)
    settings: list = dataclasses.field(default_factory=list)  # Setting
    n_study: int | None = None
    n_basis: str = ""
    n_what: str = "items"
    reasons: list = dataclasses.field(default_factory=list)  # other differences, said as they are
    notes: list = dataclasses.field(default_factory=list)


def _data_reason(cfg: dict, key: str) -> str | None:
    source = cfg.get(key)
    if cfg and source != "hub":
        return f"{key} {source}: not the study's data (the hub's)"
    return None


def _addition(rows, metrics, cfg):
    s = _source("addition")["settings"]
    test = _digits_setting("test", s["arithmetic_test"])
    train = [_digits_setting("train", s["arithmetic_train"]), *_qlora_settings(s)]
    per_k = {stage: {int(k): v["exact_match"] for k, v in (metrics.get(stage) or {}).get("per_k", {}).items()}
             for stage in ("base", "finetuned")}
    readouts = {"sharp accuracy drop beyond k": ("base", sharpest_drop),
                "improved accuracy up to k": ("finetuned", lambda t: improved_up_to(per_k["base"], t)),
                "accuracy near 0% beyond k": ("finetuned", near_zero_beyond)}
    out = []
    for row in rows:
        stage, readout = readouts[row["column"]]
        value = readout(per_k[stage]) if per_k[stage] else None
        source = f"{stage}.per_k exact_match: {row['column']}"
        ours = Ours(value=value, n=None, source=source,
                    interval="no interval: a digit count read off the per-k curve" if value is not None else "",
                    missing="" if value is not None else f"no per-k {stage} results in the run")
        fine_tuned = stage == "finetuned"
        out.append(Match(row, ours, models=[(LLAMA2_7B, cfg.get("model") or metrics.get("model"), "model")],
                         settings=[test, *(train if fine_tuned else [])],
                         notes=[READOUT_RULES[row["column"]]]))
    return out


# How a digit count is read off our per-k exact-match curve (the paper's words are the column names).
NEAR_ZERO = 0.05
READOUT_RULES = {
    "sharp accuracy drop beyond k": "ours: the k after which exact match falls most from one k to the next",
    "improved accuracy up to k": f"ours: the largest k at which the fine-tuned model's exact match is more than "
                                 f"{NEAR_ZERO:.0%} above the base's",
    "accuracy near 0% beyond k": f"ours: the largest k with exact match above {NEAR_ZERO:.0%}",
}


def sharpest_drop(table: dict[int, float]) -> int | None:
    """The k after which exact match falls most between consecutive digit counts (k, k+1)."""
    drops = [(table[k] - table[k + 1], k) for k in sorted(table) if k + 1 in table]
    return max(drops, key=lambda d: (d[0], -d[1]))[1] if drops else None


def improved_up_to(base: dict[int, float], tuned: dict[int, float]) -> int | None:
    """The largest k at which the fine-tuned model's exact match is more than NEAR_ZERO above the base's
    (a margin, so that one lucky item at a long k is no improvement)."""
    better = [k for k in tuned if k in base and tuned[k] - base[k] > NEAR_ZERO]
    return max(better) if better else None


def near_zero_beyond(table: dict[int, float]) -> int | None:
    """The largest k whose exact match is above NEAR_ZERO (beyond it, accuracy is near 0%)."""
    above = [k for k, v in table.items() if v > NEAR_ZERO]
    return max(above) if above else None


# Table 2 / Table 3 of the MMLU study: which subject each evaluates, n of the full test split (the
# paper states none; the seed's own calculation assumes the full split).
MMLU_SUBJECTS = {"Table 2": ("machine_learning", 112), "Table 3": ("professional_psychology", 612)}
MMLU_ROWS = {"GPT-4o": "teacher", "LLaMA (Vanilla)": "vanilla student", "LLaMA (General FT)": "General FT",
             "LLaMA (ML FT)": "machine_learning FT", "LLaMA (Psychology FT)": "professional_psychology FT"}


def _mmlu_teacher(rows, metrics, cfg):
    s = _source("mmlu_teacher")["settings"]
    table = ((metrics.get("tables") or {}).get("generate")) or {}
    out = []
    for row in rows:
        subject, n_full = MMLU_SUBJECTS[row["table"][:7]]
        label = next(v for k, v in MMLU_ROWS.items() if row["row"].startswith(k))
        cell = (table.get(label) or {}).get(subject)
        ours = measure(cell, proportion=True, source=f"tables.generate['{label}']['{subject}'].accuracy")
        if label not in table:
            ours.missing = f"no '{label}' row in this run"
        elif subject not in (table.get(label) or {}):
            ours.missing = f"{subject} is not among this run's subjects"
        student = cfg.get("model") or metrics.get("model")
        teacher = cfg.get("teacher_model") or (metrics.get("teacher") or {}).get("model")
        m = Match(row, ours, n_study=n_full, n_what=f"{subject} questions",
                  n_basis=f"not stated; the full {subject} test split, as the seed's own calculation assumes",
                  reasons=[r for r in [_data_reason(cfg, "dataset_source")] if r])
        if label == "teacher":
            m.models = [(GPT4O, teacher, "teacher")]
        else:
            m.models = [(LLAMA2_7B, student, "model")]
        if label.endswith("FT"):
            m.models.append((GPT4O, teacher, "teacher (the author of the training data)"))
            m.settings = _qlora_settings(s)
        if label in ("machine_learning FT", "professional_psychology FT"):
            m.notes.append("the paper implies its domain FT data were targeted (test-derived); ours too: method 2's "
                           "data of that subject (optimistic, see the leakage caveat)")
        out.append(m)
    return out


FORGETTING_ROWS = {"GSM8K | Flexible Accuracy": ("gsm8k_flexible", "GSM8K"),
                   "GSM8K | Strict Accuracy": ("gsm8k_strict", "GSM8K"),
                   "GSM8K | Forgetting Rate (FR)": ("forgetting_rate", "GSM8K"),
                   "HellaSwag | Accuracy": ("hellaswag_acc", "HellaSwag"),
                   "HellaSwag | Normalized Accuracy": ("hellaswag_acc_norm", "HellaSwag"),
                   "HellaSwag | Ability Augmentation (dA, percentage points)": ("ability_augmentation", "HellaSwag"),
                   "MMLU CS | Accuracy": ("mmlu_acc", "MMLU CS"),
                   "MMLU CS | Knowledge Loss (dK, percentage points)": ("knowledge_loss", "MMLU CS")}
# FR, ΔA and ΔK are computed from these accuracies: their n is theirs
FORGETTING_FROM = {"forgetting_rate": "gsm8k_flexible", "ability_augmentation": "hellaswag_acc_norm",
                   "knowledge_loss": "mmlu_acc"}
# column -> (model, stage, Alpaca examples)
FORGETTING_COLUMNS = {"Base Llama 3.2 1B": (LLAMA32_1B, "base", None),
                      "Fine-tuned Llama 3.2 1B (2k)": (LLAMA32_1B, "finetuned", 2000),
                      "TinyLlama 1.1B (50k)": (TINYLLAMA, "finetuned", 50000)}


def _forgetting(rows, metrics, cfg):
    s = _source("forgetting")["settings"]
    model = cfg.get("model") or metrics.get("model")
    columns = [c for c, (m, _, _) in FORGETTING_COLUMNS.items() if m.matches(model)]
    columns = columns or [c for c, (m, _, _) in FORGETTING_COLUMNS.items() if m is LLAMA32_1B]
    # the n the paper's ± implies, per accuracy (from the seed's check of the ±)
    n_of = {(FORGETTING_ROWS[r["row"]][0], r["column"]): (r["n"], r["n_basis"]) for r in rows if r["n"]}
    out = []
    for row in rows:
        if row["column"] not in columns:
            continue
        key, bench = FORGETTING_ROWS[row["row"]]
        study_model, stage, n_train = FORGETTING_COLUMNS[row["column"]]
        basis_key = FORGETTING_FROM.get(key, key)
        if key in FORGETTING_FROM:
            ours = measure((metrics.get("summary") or {}).get(key), source=f"summary.{key}")
            n_ours = ((metrics.get("base") or {}).get(basis_key) or {}).get("n")
            ours.n = n_ours
        else:
            ours = measure((metrics.get(stage) or {}).get(key), scale=100, proportion=True,
                           source=f"{stage}.{key}")
        n_study, basis = n_of.get((basis_key, row["column"]), (None, ""))
        settings = []
        if stage == "finetuned" or key in FORGETTING_FROM:
            settings.append(Setting("n_train", n_train, f"{n_train} Alpaca examples"))
            settings += _qlora_settings(s)
        out.append(Match(row, ours, models=[(study_model, model, "model")], settings=settings, n_study=n_study,
                         n_basis=basis, n_what=f"{bench} items",
                         reasons=[r for r in [_data_reason(cfg, "data_source")] if r]))
    return out


SVL_CONFIGS = {"Mistral Base": "base", "Base+ICL": "base+icl", "Base+QLoRA": "qlora", "Base+ICL+QLoRA": "icl+qlora",
               "Base ICL train+QLoRA": "icl-train+qlora", "Llama 3.3 70B": "large"}
SVL_TASKS = {"Healthcare": ("medqa", {"Precision": "bertscore_precision", "Recall": "bertscore_recall",
                                      "F1 Score": "bertscore_f1"}),
             "Beer": ("beer", {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F1 Score": "f1"}),
             "Math": ("gsm8k", {"Accuracy": "flexible_extract"})}


def _small_vs_large(rows, metrics, cfg):
    s = _source("small_vs_large")["settings"]
    results = metrics.get("results") or {}
    large_row = metrics.get("large_model")
    out = []
    for row in rows:
        config_label, dataset = row["row"].split(" | ")
        config = SVL_CONFIGS[config_label]
        task, keys = SVL_TASKS[dataset]
        key = keys[row["column"]]
        run_row = large_row if config == "large" else config
        scores = (results.get(task) or {}).get(run_row) if run_row else None
        n_test = (metrics.get("n_test") or {}).get(task)
        source = f"results.{task}['{run_row or config}'].{key}"
        if scores is None:
            why = ("the run has no large model" if config == "large" and not run_row
                   else f"{task} / {run_row or config} is not in this run")
            ours = Ours(missing=why, source=source)
        else:
            # <key>_summary (runs now) or <key>_ci95 (older runs); neither: Wilson from n for a proportion
            proportion = key in ("accuracy", "flexible_extract")
            ours = measure(scores, key=key, proportion=proportion, n=n_test, source=source)
        m = Match(row, ours, reasons=[r for r in [_data_reason(cfg, "data_source")] if r])
        if config == "large":
            m.models = [(LLAMA3_70B, cfg.get("large_model"), "large model")]
            if cfg and cfg.get("large_model_demos"):
                m.reasons.append("large_model_demos True: the large model got retrieved demonstrations, "
                                 f"the study's was {s['baseline_prompting']}")
        else:
            m.models = [(MISTRAL_7B_INSTRUCT, cfg.get("model") or metrics.get("model"), "model")]
            if "qlora" in config:
                m.settings = _qlora_settings(s)
        if "icl" in config and cfg and "gtr-t5" not in str(cfg.get("retriever", "")).lower():
            m.reasons.append(f"retriever {cfg.get('retriever')}, the study used {s['icl_retriever']}")
        if task == "gsm8k":
            m.notes.append("the paper's 'final-answer accuracy'; ours flexible-extract (the last number)")
        if task == "beer" and row["column"] != "Accuracy":
            m.notes.append(f"the paper does not state its averaging; ours {cfg.get('f1_average', '?')}")
        out.append(m)
    return out


def _seven_models(study):
    def match(rows, metrics, cfg):
        s = _source(study)["settings"]
        out = []
        for row in rows:
            if study == "compile_ratings":
                found = [r for r in metrics.get("summary") or [] if r.get("task") == "math"
                         and r.get("stage") == "epoch3"]
                if not found:
                    out.append(Match(row, Ours(missing="no math ratings of epoch 3 in this summary",
                                               source="summary[task=math, stage=epoch3]")))
                # a summary holds every model's ratings: each stands beside the one published number
                for r in found:
                    ours = measure({"mean": r.get("mean_rating"), "ci_low": r.get("ci_low"),
                                    "ci_high": r.get("ci_high"), "n": r.get("rated_items", r.get("ratings"))},
                                   source=f"summary[{r.get('model')}, math, epoch3].mean_rating")
                    out.append(Match(row, ours, models=[(LLAMA31_8B, r.get("model"), "model")]))
                continue
            why = {"train_math": "a training run holds no ratings: compare compile_ratings' summary",
                   "benchmark": "ratings are compiled from the workbook by compile_ratings"}[study]
            m = Match(row, Ours(missing=why), models=[(LLAMA31_8B, cfg.get("model") or metrics.get("model"),
                                                       "model")])
            if study == "train_math":
                m.settings = [Setting("n_samples", _first_samples(s["math_train_data"]), s["math_train_data"]),
                              Setting("epochs", 3.0, s["epochs"]), *_qlora_settings({**s, "epochs": None})]
                if cfg and 1 not in (cfg.get("stage_epochs") or []):
                    m.reasons.append(f"stage_epochs {cfg.get('stage_epochs')}: the study kept epoch 1 and epoch 3")
                m.reasons += [r for r in [_data_reason(cfg, "dataset_source")] if r]
            out.append(m)
        return out
    return match


# what holds for every row of a study, said once under its table
SEVEN_NOTE = ("The paper states no rating scale, question count or raters; ours are 1-5 ratings of "
              "questions/math.yaml, compiled by compile_ratings.")
STUDY_NOTES = {
    "addition": ["The paper prints no per-k accuracy, only these read-outs of its Figure 2, and no n per k."],
    "mmlu_teacher": ["Ours: accuracy by the generated letter (tables.generate), the paper's zero-shot prompt "
                     "(Listing 1). Its question counts are not stated; n is checked against the full test split."],
    "small_vs_large": ["The paper states no n, no decoding and no averaging of P/R/F1. Ours: accuracies with a "
                       "Wilson 95% interval, BERTScore with a t interval over the items (runs that wrote "
                       "<score>_summary); P/R/F1 are no means over items, so they have no interval here."],
    "train_math": [SEVEN_NOTE],
    "benchmark": [SEVEN_NOTE], "compile_ratings": [SEVEN_NOTE], "train_bio": [], "forgetting": [],
}

MATCHERS = {"addition": _addition, "mmlu_teacher": _mmlu_teacher, "forgetting": _forgetting,
            "small_vs_large": _small_vs_large, "train_math": _seven_models("train_math"),
            "benchmark": _seven_models("benchmark"), "compile_ratings": _seven_models("compile_ratings"),
            "train_bio": lambda rows, metrics, cfg: []}


def _as_dict(cfg) -> dict:
    if cfg is None:
        return {}
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return dict(cfg)


def _n_reason(m: Match) -> str | None:
    n = m.ours.n
    if m.n_study is None or n is None:
        return None
    if abs(n - m.n_study) > N_TOLERANCE * m.n_study:
        return f"n={n} {m.n_what}, the study used {m.n_study} ({m.n_basis})"
    return None


def compare(study: str, metrics: dict, cfg=None):
    """Published vs this run, one row per published number (columns: COLUMNS). `metrics` is the run's
    metrics.json, `cfg` its config (the study's dataclass, or run.json's "config"). A row is
    comparable only when the run has the number, the model, n and every setting the paper states
    match; `reason` says what differs. Values are in the paper's unit (`unit`); `inside` is whether
    the published value lies in our interval (None without one); `difference` is ours - published.
    The printed ± is shown as it is, with `pm_meaning`, and never used as a 95% interval.

        >>> table = compare("forgetting", json.load(open(run_dir / "metrics.json")), cfg)
        >>> table[["row", "column", "published", "ours", "inside", "comparable", "reason"]]
    """
    import pandas as pd

    cfg = _as_dict(cfg)
    rows = published_rows(study)
    matches = MATCHERS[study](rows, metrics or {}, cfg)
    preset = detect_preset(study, cfg)
    records = []
    for m in matches:
        p, ours = m.published, m.ours
        reasons = [] if ours.value is not None else [ours.missing or "the run has no such number"]
        reasons += [r for study_model, model, role in m.models if (r := study_model.mismatch(model, role))]
        if not cfg and study != "compile_ratings":
            reasons.append("no run.json: the run's settings are unknown")
        reasons += [r for r in [_n_reason(m)] if r]
        reasons += [r for s in m.settings if (r := s.mismatch(cfg))]
        reasons += m.reasons
        if preset:
            reasons.append(f"preset {preset}")
        has_interval = ours.low is not None and ours.high is not None
        inside = bool(ours.low <= p["value"] <= ours.high) if has_interval else None
        records.append({
            "table": p["table"], "row": p["row"], "column": p["column"], "ours_from": ours.source, "unit": p["unit"],
            "published": p["value"], "published_pm": p["pm"], "pm_meaning": p["pm_meaning"], "ours": ours.value,
            "ours_low": ours.low, "ours_high": ours.high,
            "interval": ours.interval if ours.value is not None else "",
            "difference": ours.value - p["value"] if ours.value is not None else None,
            "inside": inside, "comparable": not reasons, "reason": "; ".join(dict.fromkeys(reasons)),
            "n_ours": ours.n, "n_study": m.n_study, "note": "; ".join(m.notes),
        })
    table = pd.DataFrame(records, columns=COLUMNS)
    source = _source(study)
    table.attrs.update({"study": study, "paper": source["study"], "source": SOURCE_OF[study],
                        "unstated": unstated_settings(study), "preset": preset, "notes": STUDY_NOTES[study],
                        "empty": "" if rows else f"the paper publishes no number for {study}"})
    return table


# ------------------------------------------------------------------------------------ output

def _num(x, unit: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if unit == "k":
        return f"{x:g}"
    digits = {"fraction": 3, "rating": 2}.get(unit, 2)
    return f"{x:.{digits}f}"


def comparison_cells(table) -> tuple[list[str], list[list[str]]]:
    """The comparison as text cells (header, rows): what the markdown file and the HTML report show."""
    header = ["published (table: row, column)", "published", "± (what it is)", "ours [95% interval]",
              "ours − published", "published inside ours", "comparable", "why not / note"]
    rows = []
    for r in table.to_dict(orient="records"):
        unit = r["unit"]
        pm = f"± {_num(r['published_pm'], unit)} ({r['pm_meaning']})" if _finite(r["published_pm"]) is not None \
            else ""
        if _finite(r["ours"]) is None:
            ours = "-"
        elif _finite(r["ours_low"]) is not None:
            ours = f"{_num(r['ours'], unit)} [{_num(r['ours_low'], unit)}, {_num(r['ours_high'], unit)}]"
        else:
            ours = f"{_num(r['ours'], unit)} (no interval)"
        inside = {True: "yes", False: "no"}.get(r["inside"], "-")
        # the interval's kind only where it is not the run's own (Wilson, or none)
        kind = r["interval"] if _finite(r["ours"]) is not None and not r["interval"].startswith("95%") else ""
        why = "; ".join(x for x in [r["reason"], kind, r["note"]] if x)
        short_table = r["table"].split(":")[0]
        rows.append([f"{short_table}: {r['row']}, {r['column']} ({unit})", _num(r["published"], unit), pm, ours,
                     _signed(r["difference"], unit), inside, "yes" if r["comparable"] else "no", why])
    return header, rows


def _signed(x, unit: str) -> str:
    text = _num(x, unit)
    if not text:
        return text
    if float(text) == 0:
        return text.lstrip("-")  # "-0.00": a difference that rounds to nothing has no sign
    return text if text.startswith("-") else "+" + text


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def comparison_markdown(table) -> str:
    a = table.attrs
    lines = [f"# Published vs this run: {a.get('study', '')}", "",
             f"Paper: {a.get('paper', '')} (seed id `{a.get('source', '')}`, data/published/seed_results.json).", ""]
    if table.empty:
        lines.append(a.get("empty") or "No published number to compare.")
    else:
        header, rows = comparison_cells(table)
        lines += ["| " + " | ".join(map(_md_cell, header)) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
        comparable = int(table["comparable"].sum())
        lines += ["", f"{comparable} of {len(table)} rows comparable. A printed ± is shown as the paper gives it "
                  "and is never taken for a 95% interval; 'inside' asks whether the published value lies in ours."]
    lines += [x for note in a.get("notes", []) for x in ("", note)]
    if a.get("unstated"):
        lines += ["", "Settings the paper does not state (not checked): " + ", ".join(a["unstated"]) + "."]
    return "\n".join(lines) + "\n"


def _plot_label(text: str, width: int = 60) -> str:
    text = str(text).replace("$", r"\$")  # matplotlib would read text between two $ as mathtext
    return text if len(text) <= width else text[:width - 1] + "…"


def comparison_figure(table):
    """Published value (x) and ours with its interval (dot and bar) per row, one panel per unit;
    rows that are not comparable in grey."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    units = list(dict.fromkeys(table["unit"])) or [""]
    heights = [max(1, int((table["unit"] == u).sum())) for u in units]
    fig = Figure(figsize=(9, 1.2 + 0.32 * sum(heights) + 0.6 * len(units)))
    FigureCanvasAgg(fig)  # tight_layout and savefig draw through it; pyplot's global backend is left alone
    if table.empty:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, _plot_label(table.attrs.get("empty") or "no published number", 80), ha="center")
        return fig
    axes = fig.subplots(len(units), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    labelled = set()

    def label(name):  # each legend entry once
        return None if name in labelled or labelled.add(name) else name

    for ax, unit in zip(axes, units):
        part = table[table["unit"] == unit].reset_index(drop=True)
        for y, r in part.iterrows():
            colour = "tab:blue" if r["comparable"] else "0.6"
            if _finite(r["ours"]) is not None:
                err = None
                if _finite(r["ours_low"]) is not None:
                    err = [[r["ours"] - r["ours_low"]], [r["ours_high"] - r["ours"]]]
                ax.errorbar([r["ours"]], [y], xerr=err, fmt="o", color=colour, capsize=3,
                            label=label("ours (95% interval)" if r["comparable"] else "ours, not comparable"))
            ax.plot([r["published"]], [y], "x", color="tab:red", markersize=8, label=label("published"))
        ax.set_yticks(range(len(part)))
        ax.set_yticklabels([_plot_label(f"{r} · {c}") for r, c in zip(part["row"], part["column"])], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(unit)
        ax.grid(axis="x", alpha=0.3)
    handles = [hl for ax in axes for hl in zip(*ax.get_legend_handles_labels())]
    axes[0].legend(*zip(*handles), fontsize=7, loc="best")
    axes[0].set_title(_plot_label(f"published vs this run: {table.attrs.get('study', '')} (grey: not comparable)", 90),
                      fontsize=9)
    fig.tight_layout()
    return fig


def write_comparison(table, run_dir) -> dict:
    """published_vs_ours.md and published_vs_ours.png in `run_dir`; returns their paths under keys that
    do not clash with a study's own `files` (its "md" is its results table), so they can join them:

        >>> metrics["files"] |= write_comparison(compare("forgetting", metrics, cfg), run_dir)
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    md = run_dir / f"{COMPARISON_STEM}.md"
    png = run_dir / f"{COMPARISON_STEM}.png"
    md.write_text(comparison_markdown(table))
    comparison_figure(table).savefig(png, dpi=120)
    return {f"{COMPARISON_STEM}_md": str(md), f"{COMPARISON_STEM}_png": str(png)}


def add_comparison(study: str, metrics: dict, cfg, run_dir) -> str:
    """What a study notebook's last cell calls before write_metrics: compares, writes the md and png into
    `run_dir`, adds their paths to metrics["files"] and returns the markdown to display."""
    table = compare(study, metrics, cfg)
    metrics.setdefault("files", {}).update(write_comparison(table, run_dir))
    return comparison_markdown(table)
