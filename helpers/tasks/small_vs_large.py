"""Small vs large with demonstration retrieval (Dr.ICL): five configurations of one small model and
a large model's row, on GSM8K, open-answer medical QA and beer-style classification.

Dr.ICL: the training pool is embedded with a sentence encoder; each test question gets its k most
similar pool examples (cosine) prepended as demonstrations. The configurations, on one test set:

    base               the model as it is, zero-shot
    base+icl           retrieved demonstrations in the prompt
    qlora              QLoRA-tuned on the pool (plain prompts), zero-shot
    icl+qlora          the same adapter, demonstrations at test time only
    icl-train+qlora    QLoRA on prompts that carry retrieved demonstrations (an example is never its
                       own demonstration), tested with demonstrations

No example is ever its own demonstration, nor a copy of itself (same query text, case and spacing
aside: GSM8K has verbatim duplicates); test questions that are also pool questions are dropped from
the test set (`prepare_task` counts both). The large model's row answers zero-shot by default, as
the study's did (`large_model_demos`). Each task x configuration's answers are kept in the run folder as
soon as they are generated (`run_configurations`): a "Run all" after a disconnect answers only what is missing,
and one that finds every answer kept loads no model (`kept_configurations`).

    >>> task = TASKS["gsm8k"]
    >>> pool, test = load_task_data(task, cfg)
    >>> prompt = build_prompt(task, test[0], demos=[pool[i] for i in demo_ids[0]], labels=labels)
    >>> scores, per_item = score_task(task, responses, test, cfg, labels)
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, ClassVar

from helpers.config import ConfigError, InstructConfig, check_secret_env_params, config_hash
from helpers.data import HubData, load_records
from helpers.encoders import bertscore
from helpers.metrics import classification_scores, gsm8k_extract, gsm8k_score, match_label
from helpers.runs import files_digest, json_digest, kept, kept_result, write_json
from helpers.stats import paired_comparison, score_summary, with_interval

CONFIGURATIONS = ["base", "base+icl", "qlora", "icl+qlora", "icl-train+qlora"]
WITH_DEMOS = {"base+icl", "icl+qlora", "icl-train+qlora"}
ADAPTER = {"qlora": "plain", "icl+qlora": "plain", "icl-train+qlora": "icl"}  # which training each uses


@dataclasses.dataclass(frozen=True)
class DrTask:
    name: str
    version: str
    pool: HubData
    test: HubData | None        # None: the test items are the rows after the pool in the same data
    query: Callable[[dict], str]
    target: Callable[[dict], str]
    instruction: str            # {labels} is filled with the label set (classification)
    query_label: str
    answer_label: str
    metric: str                 # gsm8k | bertscore | classification


TASKS = {
    "gsm8k": DrTask(
        "gsm8k", "gsm8k-drcl-v1",
        pool=HubData("openai/gsm8k", "gsm8k_train_sample.jsonl", ("question", "answer"), config="main"),
        test=HubData("openai/gsm8k", "gsm8k_test_sample.jsonl", ("question", "answer"), config="main", split="test"),
        query=lambda r: r["question"].strip(), target=lambda r: r["answer"].strip(),
        instruction="Solve the math word problem step by step. Write the final answer on its own last line "
                    "as '#### <number>'.",
        query_label="Question", answer_label="Answer", metric="gsm8k"),
    "medqa": DrTask(
        "medqa", "healthcaremagic-drcl-v1",
        pool=HubData("lavita/ChatDoctor-HealthCareMagic-100k", "healthcaremagic_sample.jsonl",
                     ("instruction", "input", "output")),
        test=None, query=lambda r: r["input"].strip(), target=lambda r: r["output"].strip(),
        instruction="If you are a doctor, please answer the medical questions based on the patient's description.",
        query_label="Patient", answer_label="Doctor", metric="bertscore"),
    "beer": DrTask(
        "beer", "beeradvocate-style-v1",
        pool=HubData(None, "beeradvocate_sample.jsonl", ("review/text", "beer/style")),
        test=None, query=lambda r: r["review/text"].strip(), target=lambda r: r["beer/style"].strip(),
        instruction="Which beer style is this review about? Answer with the style only, one of: {labels}.",
        query_label="Review", answer_label="Style", metric="classification"),
}


def get_task(name: str) -> DrTask:
    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'; known: {', '.join(TASKS)}")
    return TASKS[name]


def load_task_data(task: DrTask, cfg) -> tuple[list[dict], list[dict]]:
    """(pool, test): the first n_pool training rows and n_test test rows. Datasets with one split
    (HealthCareMagic, BeerAdvocate) give the n_test rows that follow the pool."""
    src = dict(source=cfg.data_source, param="data_source")
    if task.test is not None:
        return load_records(task.pool, n=cfg.n_pool, **src), load_records(task.test, n=cfg.n_test, **src)
    rows = load_records(task.pool, n=cfg.n_pool + cfg.n_test, **src)
    if len(rows) < cfg.n_pool + 1:
        raise ConfigError(f"{task.name}: {len(rows)} rows leave no test items after n_pool={cfg.n_pool}: "
                          "lower n_pool")
    return rows[:cfg.n_pool], rows[cfg.n_pool:]


def labels_of(task: DrTask, pool: list[dict], test: list[dict]) -> list[str]:
    """The label set the prompt lists and the answer matcher looks for (scores use the classes present:
    helpers.metrics.classification_scores)."""
    return sorted({task.target(r) for r in pool + test}) if task.metric == "classification" else []


def same_text_key(text: str) -> str:
    """What makes two queries copies of each other: the text casefolded, whitespace collapsed."""
    return " ".join((text or "").casefold().split())


def retrieve_demos(retriever, queries: list[str], k: int, banned: list[set] | None = None) -> list[list[int]]:
    """For each query, the pool indices of its k most similar pool texts (most similar first), never
    one in `banned[i]` (the example itself and its copies). `retriever`: anything with
    `top_k(queries, k) -> [[index, ...], ...]` (helpers.encoders.Retriever)."""
    if k <= 0:
        return [[] for _ in queries]
    banned = banned or [set() for _ in queries]
    wider = k + max((len(b) for b in banned), default=0)  # room for the banned ones that rank high
    return [[j for j in ids if j not in ban][:k] for ids, ban in zip(retriever.top_k(queries, wider), banned)]


def build_prompt(task: DrTask, row: dict, demos: list[dict] = (), labels=()) -> str:
    """Instruction, the demonstrations (most similar first), then the question."""
    blocks = [task.instruction.format(labels=", ".join(labels))]
    blocks += [f"{task.query_label}: {task.query(d)}\n{task.answer_label}: {task.target(d)}" for d in demos]
    blocks.append(f"{task.query_label}: {task.query(row)}\n{task.answer_label}:")
    return "\n\n".join(blocks)


def _with_summaries(values: dict[str, list[float]]) -> dict:
    """{key: mean, key_summary: helpers.stats.score_summary} of each item-score list: Wilson 95% for
    0/1 scores (accuracies), Student's t for means of other scores (BERTScore)."""
    out = {}
    for key, items in values.items():
        summary = score_summary(items)
        out |= {key: summary["mean"], f"{key}_summary": summary}
    return out


# the per-item score behind each score key that is a mean over items, by task metric: what is compared
# configuration against configuration (P/R/F1 of the beer styles are no means over items)
ITEM_SCORES = {"gsm8k": {"strict_match": "strict_match", "flexible_extract": "flexible_match"},
               "bertscore": {f"bertscore_{k}": f"bertscore_{k}" for k in ("precision", "recall", "f1")},
               "classification": {"accuracy": "correct"}}


def score_task(task: DrTask, responses: list[str], test: list[dict], cfg, labels) -> tuple[dict, list[dict]]:
    """(mean scores, per-item scores) of one configuration's responses. Every score that is a mean
    over the items (GSM8K strict/flexible, BERTScore P/R/F1, beer accuracy) also gets `<key>_summary`
    (helpers.stats.score_summary: n, lm-eval's stderr and a named 95% interval)."""
    refs = [task.target(r) for r in test]
    if task.metric == "gsm8k":
        strict = [gsm8k_score(x, ref, "strict") for x, ref in zip(responses, refs)]
        flexible = [gsm8k_score(x, ref, "flexible") for x, ref in zip(responses, refs)]
        items = [{"strict": gsm8k_extract(x, "strict"), "flexible": gsm8k_extract(x, "flexible"), "strict_match": s,
                  "flexible_match": f} for x, s, f in zip(responses, strict, flexible)]
        scores = _with_summaries({"strict_match": strict, "flexible_extract": flexible})
    elif task.metric == "bertscore":
        bs = bertscore(responses, refs, model=cfg.bertscore_model, num_layers=cfg.bertscore_layers)
        items = [{"bertscore_precision": p, "bertscore_recall": r, "bertscore_f1": f}
                 for p, r, f in zip(bs["precision"], bs["recall"], bs["f1"])]
        scores = _with_summaries({f"bertscore_{k}": [float(x) for x in v] for k, v in bs.items()})
    else:
        predicted = [match_label(x, labels) for x in responses]
        items = [{"predicted": p, "correct": float(p == ref)} for p, ref in zip(predicted, refs)]
        scores = classification_scores(refs, predicted, labels, average=cfg.f1_average)
        scores["accuracy_summary"] = score_summary([i["correct"] for i in items])
    return scores, items


def comparison_pairs(configs: list[str]) -> list[tuple[str, str]]:
    """(first, second) pairs the study's table sets side by side: each Dr.ICL / QLoRA configuration
    against the zero-shot base, and the large model's row against each configuration of the small one."""
    small = [c for c in configs if c in CONFIGURATIONS]
    large = [c for c in configs if c not in CONFIGURATIONS]
    pairs = [(c, "base") for c in small if c != "base" and "base" in small]
    return pairs + [(big, c) for big in large for c in small]


def paired_scores(task: DrTask, items_by_config: dict[str, list[dict]], *, seed: int = 0) -> dict:
    """{first: {second: {score key: helpers.stats.paired_comparison(first's items, second's items)}}}
    over comparison_pairs: first − second on the same test items, a paired bootstrap 95% interval and,
    for 0/1 scores, the exact McNemar test."""
    out: dict = {}
    for first, second in comparison_pairs(list(items_by_config)):
        out.setdefault(first, {})[second] = {
            key: paired_comparison([i[item] for i in items_by_config[first]],
                                   [i[item] for i in items_by_config[second]], seed=seed)
            for key, item in ITEM_SCORES[task.metric].items()}
    return out


def prepare_task(task: DrTask, cfg, encoder) -> dict:
    """Data, Dr.ICL retrieval and every prompt of one task: test prompts without ("plain") and with
    ("demos") retrieved demonstrations, training pairs without ("plain") and with ("icl") them.
    A test question that is also a pool question (`same_text_key`) is dropped; a training example's
    demonstrations are never itself nor a copy of it. "retrieval" counts both: test_in_pool_removed,
    self_copies_excluded (pool copies kept out of a copy's demonstrations), self_in_own_demos (0).
    `encoder`: a sentence-transformers name or model (helpers.encoders.Retriever)."""
    from helpers.encoders import Retriever

    pool, test = load_task_data(task, cfg)
    keys = [same_text_key(task.query(r)) for r in pool]
    in_pool = set(keys)
    kept = [r for r in test if same_text_key(task.query(r)) not in in_pool]
    if not kept:
        raise ConfigError(f"{task.name}: every one of the {len(test)} test questions is also in the pool: "
                          "raise n_test or use other data")
    removed, test = len(test) - len(kept), kept
    labels = labels_of(task, pool, test)
    copies = {}
    for j, key in enumerate(keys):
        copies.setdefault(key, set()).add(j)
    retriever = Retriever(encoder, [task.query(r) for r in pool])
    test_demos = retrieve_demos(retriever, [task.query(r) for r in test], cfg.k_demos)
    train_demos = retrieve_demos(retriever, [task.query(r) for r in pool], cfg.k_demos,
                                 banned=[copies[key] for key in keys])

    def with_demos(row, ids):
        return build_prompt(task, row, [pool[j] for j in ids], labels)

    return {
        "pool": pool, "test": test, "labels": labels, "test_demos": test_demos, "train_demos": train_demos,
        "retrieval": {"test_in_pool_removed": removed,
                      "self_copies_excluded": sum(len(copies[key]) - 1 for key in keys),
                      "self_in_own_demos": sum(any(keys[j] == key for j in ids)
                                               for key, ids in zip(keys, train_demos))},
        "prompts": {"plain": [build_prompt(task, r, labels=labels) for r in test],
                    "demos": [with_demos(r, ids) for r, ids in zip(test, test_demos)]},
        "train_pairs": {"plain": [(build_prompt(task, r, labels=labels), task.target(r)) for r in pool],
                        "icl": [(with_demos(r, ids), task.target(r)) for r, ids in zip(pool, train_demos)]},
    }


def prompt_kind(config: str, large_model_demos: bool = False) -> str:
    if config.startswith("large"):
        return "demos" if large_model_demos else "plain"
    return "demos" if config in WITH_DEMOS else "plain"


def responses_path(run_dir, task: str, config: str):
    """Where one task x configuration's answers are kept: run_dir/responses/<task>.<config>.json."""
    return Path(run_dir) / "responses" / f"{task}.{config}.json"


def response_identity(task: str, config: str, prompts: list[str], cfg, adapter_digest: str | None = None) -> dict:
    """What one task x configuration's kept answers stand for: the settings (config_hash), the task's
    version, the prompts asked (a digest: the data, the retrieval and the prompt format) and, for a
    configuration with an adapter, the digest of the adapter's files (helpers.runs.files_digest of its
    folder), so an adapter trained again is answered again."""
    identity = {"task": task, "version": get_task(task).version, "configuration": config,
                "settings": config_hash(cfg),
                "prompts": json_digest(prompts)}
    if adapter_digest is not None:
        identity["adapter"] = adapter_digest
    return identity


TRAINED_ON = "trained_on.json"  # beside an adapter: the digest of its training pairs and the data's description


def adapter_folder(run_dir, task: str, kind: str) -> Path:
    """Where the adapter trained on `kind` ("plain" or "icl") pairs of `task` lives (train_sft's run_dir)."""
    return Path(run_dir) / "adapters" / task / kind


def _finished_training(folder: Path, pairs: list) -> dict | None:
    """What run_configurations reports of the finished adapter in `folder` when train_sft reuses it
    (helpers.sft.finished_training, and the data's description), if that adapter was trained on `pairs`
    (TRAINED_ON, written after its training); else None."""
    from helpers.sft import finished_training

    try:
        marked = json.loads((folder / TRAINED_ON).read_text())
    except (OSError, ValueError):
        return None
    reused = finished_training(folder) if marked.get("pairs") == json_digest(pairs) else None
    return None if reused is None else reused | {"data": marked.get("data")}


def _configured(cfg) -> list[str]:
    return [c for c in CONFIGURATIONS if c in cfg.configurations]


def _identity(prepared: dict, cfg, run_dir, name: str, config: str, digests: dict) -> dict:
    """response_identity of one task x configuration as run_configurations asks it. `digests`: the adapters'
    files digests already taken in this call (two configurations answer with each adapter: read it once)."""
    kind = ADAPTER.get(config)
    if kind and (name, kind) not in digests:
        digests[name, kind] = files_digest(adapter_folder(run_dir, name, kind) / "adapter")
    return response_identity(name, config, prepared[name]["prompts"][prompt_kind(config)], cfg,
                             digests[name, kind] if kind else None)


def kept_configurations(prepared: dict, cfg, run_dir) -> tuple[dict, dict] | None:
    """(responses, trained) as run_configurations returns them on a re-run that finds everything kept, found
    without a model: with `cfg.resume`, every configured task x configuration's answers kept under their identity
    and every adapter they need finished on this run's training pairs. Else None: load the model and run
    run_configurations (it answers only what is missing). Saves a 7B model's download and load after a
    disconnect that came after the last answer."""
    if not cfg.resume:
        return None
    responses, trained, digests = {}, {}, {}
    for name, p in prepared.items():
        responses[name] = {}
        for config in _configured(cfg):
            kind = ADAPTER.get(config)
            if kind and f"{name}/{kind}" not in trained:
                trained[f"{name}/{kind}"] = _finished_training(adapter_folder(run_dir, name, kind),
                                                               p["train_pairs"][kind])
                if trained[f"{name}/{kind}"] is None:
                    return None
            found = kept(responses_path(run_dir, name, config),
                         _identity(prepared, cfg, run_dir, name, config, digests))
            if found is None:
                return None
            responses[name][config] = found
    print(f"every answer is kept in {Path(run_dir) / 'responses'} from an earlier run of these settings: the small "
          "model is not loaded (delete a file there to answer it again)")
    return responses, trained


def run_configurations(llm, tokenizer, info, prepared: dict, cfg, run_dir) -> tuple[dict, dict]:
    """Responses of the small model in each configuration, per task: adapters off for base and
    base+icl; fresh adapters trained on the plain and on the demonstration-carrying pairs for the
    others (run_dir/adapters/<task>/<plain|icl>; a finished one is reused with resume).
    Each task x configuration's answers are kept as soon as they are generated
    (`responses_path`, helpers.runs.kept_result, keyed by `response_identity`): a "Run all" after a
    disconnect answers only what is missing, and returns what the first run returned.
    Returns (responses[task][config], training results[task/kind])."""
    from helpers.generation import generate
    from helpers.modeling import reset_lora
    from helpers.sft import build_sft_dataset, train_sft

    def respond(name, config):
        """One configuration's answers, generated or kept from an earlier run of the same identity."""
        prompts = prepared[name]["prompts"][prompt_kind(config)]
        responses[name][config] = kept_result(
            responses_path(run_dir, name, config), _identity(prepared, cfg, run_dir, name, config, digests),
            lambda: generate(llm, tokenizer, prompts, chat=True, stop_token_ids=info.stop_token_ids,
                             max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size,
                             desc=f"{name} {config}"))

    responses, trained, digests = {}, {}, {}  # digests: of each adapter once trained (or reused) here
    for name, p in prepared.items():
        responses[name] = {}
        base_configs = [c for c in ("base", "base+icl") if c in cfg.configurations]
        if base_configs:
            with llm.disable_adapter():
                for config in base_configs:
                    respond(name, config)
        for kind in ("plain", "icl"):
            configs = [c for c in cfg.configurations if ADAPTER.get(c) == kind]
            if not configs:
                continue
            reset_lora(llm, cfg.seed)
            dataset = build_sft_dataset(tokenizer, p["train_pairs"][kind], chat=True, max_length=cfg.max_seq_length)
            folder = adapter_folder(run_dir, name, kind)
            trained[f"{name}/{kind}"] = train_sft(llm, tokenizer, dataset, run_dir=folder, settings=cfg,
                                                  backend=info.backend, resume=cfg.resume)
            trained[f"{name}/{kind}"]["data"] = dataset.info.description
            write_json(folder / TRAINED_ON, {"pairs": json_digest(p["train_pairs"][kind]),
                                             "data": dataset.info.description})
            for config in configs:
                respond(name, config)
    responses = {name: {c: by_config[c] for c in _configured(cfg) if c in by_config}
                 for name, by_config in responses.items()}
    return responses, trained


def score_all(responses: dict, prepared: dict, cfg) -> tuple[dict, list[dict]]:
    """(results[task][config] = mean scores, one record per item x configuration with its prompt,
    response, reference and scores). results[task][config]["paired"][other][key]: config − other on
    the same items (`paired_scores`), for the pairs of `comparison_pairs`."""
    results, records = {}, []
    for name, by_config in responses.items():
        task, p = get_task(name), prepared[name]
        results[name], items_by_config = {}, {}
        for config, texts in by_config.items():
            results[name][config], items = score_task(task, texts, p["test"], cfg, p["labels"])
            items_by_config[config] = items
            prompts = p["prompts"][prompt_kind(config, cfg.large_model_demos)]
            for i, (row, prompt, text, item) in enumerate(zip(p["test"], prompts, texts, items)):
                records.append({"task": name, "configuration": config, "item": i, "prompt": prompt,
                                "response": text, "reference": task.target(row), **item})
        for config, against in paired_scores(task, items_by_config, seed=cfg.seed).items():
            results[name][config]["paired"] = against
    return results, records


def rating_rows(prepared_task: dict, task: DrTask, responses: dict) -> tuple[list[dict], dict]:
    """Rows of the open-answer rating workbook (one per test item, one answer column per
    configuration) and the answer -> rating column map."""
    answers = {f"answer_{c}": f"rating_{c}" for c in responses}
    rows = [{"id": i, "question": task.query(row), "reference": task.target(row),
             **{f"answer_{c}": texts[i] for c, texts in responses.items()}}
            for i, row in enumerate(prepared_task["test"])]
    return rows, answers


# the table's columns: (task, score key, column title); beer's P/R/F1 are of `f1_average`, besides the
# other average's F1 ("macro" / "weighted" in metrics.json hold both in full)
COLUMNS = [("gsm8k", "strict_match", "GSM8K strict-match"), ("gsm8k", "flexible_extract", "GSM8K flexible-extract"),
           ("medqa", "bertscore_precision", "MedQA BERTScore P"), ("medqa", "bertscore_recall", "MedQA BERTScore R"),
           ("medqa", "bertscore_f1", "MedQA BERTScore F1"), ("beer", "precision", "Beer P"),
           ("beer", "recall", "Beer R"), ("beer", "f1", "Beer F1"), ("beer", "f1_from_pr", "Beer F1 from P, R"),
           ("beer", "other_f1", "Beer F1"), ("beer", "accuracy", "Beer accuracy")]


def results_table(results: dict, average: str):
    """Rows = configurations (+ the large model), columns = task metrics, in percent. Beer: P, R and
    F1 (per-class F1 averaged, the one compared with the study's F1) of `average`, "F1 from P, R" (their
    harmonic mean: the study does not say which F1 it prints), the other average's F1, accuracy."""
    import pandas as pd

    other = "weighted" if average == "macro" else "macro"
    rows = {}
    for task, by_config in results.items():
        for config, scores in by_config.items():
            for t, key, title in COLUMNS:
                if t != task:
                    continue
                if key == "other_f1":
                    rows.setdefault(config, {})[f"{title} ({other})"] = 100 * scores[other]["f1"]
                    continue
                title = f"{title} ({average})" if task == "beer" and key != "accuracy" else title
                rows.setdefault(config, {})[title] = 100 * scores[key]
    order = [c for c in CONFIGURATIONS if c in rows] + [c for c in rows if c not in CONFIGURATIONS]
    table = pd.DataFrame.from_dict(rows, orient="index").loc[order]
    table.index.name = "configuration"
    return table


def interval_table(results: dict, average: str):
    """results_table as text: each score that has a `<key>_summary` with its 95% interval, named
    ("42.0 [32.8, 51.8] Wilson 95%"); the others (beer P/R/F1) as the number alone."""
    import pandas as pd

    numbers = results_table(results, average)
    titles = {}  # column title -> (task, score key)
    for task in results:
        for t, key, title in COLUMNS:
            if t == task and key != "other_f1":
                titles[f"{title} ({average})" if task == "beer" and key != "accuracy" else title] = (task, key)
    cells = {}
    for config in numbers.index:
        for column in numbers.columns:
            task, key = titles.get(column, (None, None))
            summary = (results.get(task, {}).get(config) or {}).get(f"{key}_summary") if task else None
            value = numbers.loc[config, column]
            cells.setdefault(config, {})[column] = (with_interval(summary) if summary
                                                    else "-" if pd.isna(value) else f"{value:.1f}")
    table = pd.DataFrame.from_dict(cells, orient="index")[list(numbers.columns)]
    table.index.name = "configuration"
    return table


def paired_table(results: dict):
    """One row per compared pair and score: first − second in points, its paired bootstrap 95%
    interval and McNemar's exact p (0/1 scores only)."""
    import pandas as pd

    rows = []
    for task, by_config in results.items():
        for first, scores in by_config.items():
            for second, by_key in (scores.get("paired") or {}).items():
                for key, cmp in by_key.items():
                    rows.append({"task": task, "comparison": f"{first} − {second}", "score": key, "n": cmp["n"],
                                 "difference (points)": round(100 * cmp["difference"], 1),
                                 "paired bootstrap 95%": "" if math.isnan(cmp["ci_low"]) else
                                 f"[{100 * cmp['ci_low']:.1f}, {100 * cmp['ci_high']:.1f}]",
                                 "McNemar p": f"{cmp['mcnemar_p']:.3g}" if "mcnemar_p" in cmp else ""})
    return pd.DataFrame(rows, columns=["task", "comparison", "score", "n", "difference (points)",
                                       "paired bootstrap 95%", "McNemar p"])


def plot_results(table, path):
    """One panel per task: its metrics by configuration."""
    from helpers.plots import save_figure, subplots

    groups = {}
    for column in table.columns:
        groups.setdefault(column.split(" ")[0], []).append(column)
    fig, axes = subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (task, columns) in zip(axes[0], groups.items()):
        table[columns].plot.bar(ax=ax, rot=30)
        ax.set_title(task)
        ax.set_ylabel("score (%)")
        ax.set_xlabel("")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def large_backend(cfg, cache_dir):
    """The large model's chat backend (helpers/backends.py): a registry model or hub id answering
    through helpers.generation ("local"), or an OpenAI-compatible endpoint ("openai", key read from
    the environment variable `large_api_key_env`). Replies are cached under `cache_dir`."""
    from helpers.backends import make_backend

    if cfg.large_backend == "openai":
        return make_backend("openai", base_url=cfg.large_base_url, model=cfg.large_model,
                            api_key_env=cfg.large_api_key_env, cache_dir=cache_dir)
    return make_backend("local", model=cfg.large_model, cache_dir=cache_dir, load_in_4bit=cfg.load_in_4bit,
                        batch_size=cfg.eval_batch_size, seed=cfg.seed)


def answer_all(backend, prompts: list[str], max_tokens: int) -> tuple[list[str], int]:
    """(replies in order, how many requests failed) for single-turn prompts, greedy. Any object with
    `.chat(messages, max_tokens, temperature) -> str` works; `.chat_many` (batched) is used when there
    is one. A failed request leaves an empty answer, which scores as wrong."""
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    if hasattr(backend, "chat_many"):
        replies = backend.chat_many(conversations, max_tokens=max_tokens, temperature=0.0)
    else:
        replies = [backend.chat(c, max_tokens=max_tokens, temperature=0.0) for c in conversations]
    return [r or "" for r in replies], sum(r is None for r in replies)


@dataclasses.dataclass
class SmallVsLargeConfig(InstructConfig):
    """small_vs_large: the five Dr.ICL configurations and a large model's row on three tasks."""

    # optim "auto" on a GPU: the study trained with "a paged optimizer", 8- or 32-bit not stated; paged AdamW 8-bit
    # computes what adamw_8bit (the default before `optim` existed) computed, so earlier runs resume unchanged
    STATED_OPTIM: ClassVar[str] = "paged_adamw_8bit"
    model: str = "mistral-7b-instruct-v3"  # the study's small model; the CPU presets name the embedded one
    # beer style has no hub copy (BeerAdvocate is not on the hub under a stable id): by default the two
    # tasks the hub has; add "beer" with data_source set to a folder holding your copy
    tasks: list = dataclasses.field(default_factory=lambda: [t for t in TASKS if TASKS[t].pool.hub_id])
    configurations: list = dataclasses.field(default_factory=lambda: list(CONFIGURATIONS))
    data_source: str = "hub"
    n_pool: int = 1000
    n_test: int = 200
    k_demos: int = 4
    retriever: str = "sentence-transformers/gtr-t5-base"
    bertscore_model: str = "roberta-large"
    bertscore_layers: int = 17
    f1_average: str = "macro"
    large_model: str = ""
    large_backend: str = "local"
    large_base_url: str = ""
    large_api_key_env: str = "OPENAI_API_KEY"
    large_model_demos: bool = False  # the study asked its large model zero-shot (baseline_prompting)
    max_seq_length: int = 2048
    eval_batch_size: int = 16
    max_new_tokens: int = 256

    def validate(self) -> None:
        super().validate()
        if not self.tasks:
            raise ConfigError(f"tasks is empty: pick from {', '.join(TASKS)}")
        for name in self.tasks:
            get_task(name)
        offline_only = [t for t in self.tasks if self.data_source == "hub" and not TASKS[t].pool.hub_id]
        if offline_only:  # before the encoder and the model load, not at the data cell
            raise ConfigError(f"task(s) {', '.join(offline_only)} have no hub copy: drop them from tasks or set "
                              "data_source to 'local' or a folder holding your copy (benchmark_data/data/: the files)")
        unknown = [c for c in self.configurations if c not in CONFIGURATIONS]
        if unknown or not self.configurations:
            raise ConfigError(f"configurations {unknown or '[]'}: pick from {', '.join(CONFIGURATIONS)}")
        if self.n_pool < 1 or self.n_test < 1:
            raise ConfigError(f"n_pool and n_test must be >= 1, got {self.n_pool} and {self.n_test}")
        if not 0 <= self.k_demos < self.n_pool:
            raise ConfigError(f"k_demos must be in 0..n_pool-1 (an example is not its own demonstration), "
                              f"got {self.k_demos} with n_pool={self.n_pool}")
        if self.k_demos == 0 and WITH_DEMOS & set(self.configurations):
            raise ConfigError("k_demos = 0 leaves the ICL configurations without demonstrations: set k_demos >= 1 "
                              "or drop them from configurations")
        if self.f1_average not in ("macro", "weighted"):
            raise ConfigError(f"f1_average must be 'macro' or 'weighted', got {self.f1_average!r}")
        if self.bertscore_layers < 1:
            raise ConfigError(f"bertscore_layers must be >= 1, got {self.bertscore_layers}")
        if not self.data_source.strip():
            raise ConfigError("data_source is empty: use 'hub', 'local' or a folder with the data files")
        if self.large_backend not in ("local", "openai"):
            raise ConfigError(f"large_backend must be 'local' or 'openai', got {self.large_backend!r}")
        if self.large_backend == "openai" and self.large_model and not self.large_base_url:
            raise ConfigError("large_backend 'openai' needs large_base_url, e.g. https://api.openai.com/v1")
        # an endpoint given means a large-model row wanted: without a model name it would silently not run
        if self.large_base_url and not self.large_model:
            raise ConfigError("large_base_url is set but large_model is empty: name the model the endpoint serves "
                              "(large_model), or clear large_base_url for no large-model row")
        if self.large_base_url and self.large_backend != "openai":
            raise ConfigError(f"large_base_url is set but large_backend is {self.large_backend!r}: set large_backend "
                              "to 'openai' to use the endpoint, or clear large_base_url")
        # last, so a wrong setting elsewhere is reported first; before papermill writes any parameter
        check_secret_env_params(self, in_use={"large_api_key_env": self.large_backend == "openai"
                                              and bool(self.large_model)})


def report(metrics: dict) -> str:
    """The scores with their named 95% intervals, then the paired comparisons, from the run's metrics."""
    import pandas as pd

    lines = [f"small vs large on {metrics['model']} (pool {metrics['n_pool']}, k={metrics['k_demos']}, "
             f"retriever {metrics['retriever']}):"]
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 40):
        lines.append(interval_table(metrics["results"], metrics["f1_average"]).to_string())
        pairs = paired_table(metrics["results"])
        if not pairs.empty:
            lines += ["", "paired, on the same test items:", pairs.to_string(index=False)]
    return "\n".join(lines)
