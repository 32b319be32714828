"""scripts/perf_bench.py: the reduction of repeated rounds (the median per architecture and path, the
failed rounds left out, the table's ratios taken from those medians), the short-sample measurement on
the embedded model (each batching what it says, all over the same rows), the forgetting study's
architectures and Alpaca-like lengths, the addition demo's preset and rows (--demo), the step breakdown
on a CPU; helpers.sft's trainer without TRL's
per-step metrics (the same adapters as with them; tests/tiny_training.py)."""

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import perf_bench  # noqa: E402
import tiny_training  # noqa: E402
from tiny_training import train_tiny  # noqa: E402


def row(path, tokens, peak, round_, arch="llama"):
    return {"arch": arch, "path": path, "part": "train", "tokens_per_s": tokens, "peak_gib": peak,
            "flop_params": 10**9, "round": round_}


def test_median_over_rounds_skips_failures():
    rows = [row("repo", 100, 3.0, 0), row("repo", 400, 3.5, 1), row("repo", 200, 3.2, 2),
            {"arch": "llama", "path": "repo", "part": "train", "error": "timed out after 70 s", "round": 3},
            row("plain", 50, 9.0, 0)]
    merged = {r["path"]: r for r in perf_bench._over_rounds(rows, "tokens_per_s")}
    assert merged["repo"]["tokens_per_s"] == 200
    assert merged["repo"]["rounds"] == [100, 400, 200]
    assert merged["repo"]["peak_gib"] == 3.5
    assert merged["plain"]["rounds"] == [50]


def test_every_round_failed_keeps_the_error():
    rows = [{"arch": "gemma", "path": "repo", "part": "train", "error": "timed out after 70 s", "round": r}
            for r in range(2)]
    (merged,) = perf_bench._over_rounds(rows, "tokens_per_s")
    assert merged["error"] == "timed out after 70 s" and merged["rounds"] == []


def test_table_ratios_use_the_medians(capsys):
    rows = [row("repo", 90, 3.0, 0), row("repo", 130, 3.0, 1), row("repo", 100, 3.0, 2),
            row("unsloth", 100, 3.0, 0), row("plain", 40, 10.0, 0)]
    args = argparse.Namespace(layers=4, batch=4, seq=1024, short_batch=8, new_tokens=256)
    perf_bench.print_table(rows, args)
    lines = capsys.readouterr().out.splitlines()
    repo_line = next(line for line in lines if line.startswith("llama") and " repo " in line)
    assert " 1.00x " in repo_line and " 2.50x " in repo_line and " 30% " in repo_line
    assert "rounds: [90, 130, 100]" in repo_line


def test_short_table_gains_over_padded_and_tokens_computed(capsys):
    short = [{"arch": "llama", "part": "short", "path": k, "useful_tokens_per_s": v, "computed_per_useful": c,
              "peak_gib": 1.0, "round": 0, "step_s": steps}
             for k, v, c, steps in (("padded", 100, 1.6, [0.3, 0.5, 0.4]), ("grouped", 150, 1.03, [0.2, 0.9]),
                                    ("padding_free", 80, 1.0, [0.7]))]
    args = argparse.Namespace(layers=None, batch=4, seq=1024, short_batch=8, short_steps=40, new_tokens=256)
    perf_bench.print_table(short, args)
    lines = capsys.readouterr().out.splitlines()
    llama = next(line for line in lines if line.startswith("llama"))
    assert llama.split() == ["llama", "100", "150", "1.50x", "80", "0.80x"]
    assert "padded 1.6, grouped 1.03, padding_free 1.0" in lines[lines.index(llama) + 1]
    assert "median step s: padded 0.400, grouped 0.550, padding_free 0.700" in lines[lines.index(llama) + 2]


@pytest.mark.slow
def test_short_batchings_are_what_they_say_and_see_the_same_tokens(embedded_tokenizer, tiny_model):
    """The padded row once came out length-grouped (the training default) and the grouped row was
    timed on its longest batches only: each batching must set both switches, and every one must
    train on the same rows, all of them timed. (The tiny model: the embedded model's tokenizer.)"""
    from helpers.registry import resolve_model

    folder = resolve_model(tiny_model).local_path
    spec = {**perf_bench.run_spec(preset([]), "short"), "seq": 256, "short_batch": 2, "short_steps": 4}
    got = perf_bench.child_repo(folder, spec)
    assert set(got) == {"padded", "grouped", "padding_free"}
    assert {k: (v["sampling"], v["padding_free_used"]) for k, v in got.items()} == {
        "padded": ("random", False), "grouped": ("group_by_length", False), "padding_free": ("random", True)}
    rows = perf_bench.length_rows(embedded_tokenizer, 2 * 4, 256)
    assert all(v["steps_timed"] == 4 and v["useful_tokens"] == sum(len(r["input_ids"]) for r in rows)
               for v in got.values())
    assert got["padding_free"]["computed_per_useful"] == 1.0 < got["padded"]["computed_per_useful"]


def test_padding_overhead_by_hand_and_grouping_lowers_it():
    assert perf_bench.padding_overhead([1, 3], 2, grouped=False) == 1.5  # one batch: 2 x 3 tokens for 4 useful
    assert perf_bench.padding_overhead([5] * 64, 8, grouped=False) == 1.0
    lengths = [p + a for p, a in perf_bench.orca_lengths(2000, 1024)]
    assert all(p <= 512 and p + a <= 1024 for p, a in perf_bench.orca_lengths(2000, 1024))
    rand, grouped = (perf_bench.padding_overhead(lengths, 8, grouped=g) for g in (False, True))
    assert 1.4 < rand < 1.9 and 1.0 < grouped < 1.1


def preset(argv: list[str]) -> argparse.Namespace:
    """perf_bench's settings after main() resolves them, for a command line `argv`."""
    ns = argparse.Namespace(forgetting="--forgetting" in argv, demo="--demo" in argv, batch=None, accum=None,
                            seq=None, steps=None,
                            lengths=None, variants=None, breakdown="--breakdown" in argv, short_batch=8,
                            short_steps=40, timeout=9, cold=False, budget_s=None,
                            bf16_weights="--bf16-weights" in argv)
    for flag, value in zip(argv, argv[1:]):
        if flag in ("--batch", "--steps", "--budget-s"):
            setattr(ns, flag[2:].replace("-", "_"), int(value))
        elif flag == "--variants":
            ns.variants = value
    perf_bench._resolve_preset(ns, argparse.ArgumentParser())
    return ns


def fake_children(monkeypatch, answer=None):
    calls = []

    def fake_child(args, timeout, cold=False, env_extra=None):
        calls.append(args)
        return answer or {"error": "timed out after 9 s"}

    monkeypatch.setattr(perf_bench, "run_child", fake_child)
    return calls


def train_children(monkeypatch):
    """run_child replaced: records (args, env_extra) of each child; the repository's answers one 8x1 grouped row,
    raw Unsloth's its notebook batching."""
    calls = []

    def fake_child(args, timeout, cold=False, env_extra=None):
        calls.append((args, env_extra))
        return {"8x1 grouped": {"useful_tokens_per_s": 10}} if args[0] == "repo" else {"batching": "notebook"}

    monkeypatch.setattr(perf_bench, "run_child", fake_child)
    return calls


def test_train_and_short_are_separate_children(monkeypatch):
    calls = fake_children(monkeypatch)
    ns = preset([])
    train = perf_bench._train_rows("ckpt", ["repo", "plain"], ns, "train")
    assert calls[0][:2] == ["repo", "ckpt"] and json.loads(calls[0][2])["part"] == "train"
    assert calls[1][0] == "train:plain"
    assert [(r["part"], r["path"]) for r in train] == [("train", "repo"), ("train", "plain")]
    short = perf_bench._train_rows("ckpt", ["repo"], ns, "short")
    assert json.loads(calls[2][2])["part"] == "short"
    assert [(r["part"], r["path"]) for r in short] == [("short", k) for k in perf_bench.SHORT]
    assert all(r["error"] == "timed out after 9 s" for r in train + short)


def test_forgetting_preset_is_the_study_default_and_flags_override_it():
    from helpers.tasks.forgetting import ForgettingConfig

    f, ns = ForgettingConfig(), preset(["--forgetting"])
    spec = perf_bench.run_spec(ns, "train")
    assert (spec["batch"], spec["accum"], spec["seq"], spec["lengths"]) == (f.batch_size, f.grad_accum,
                                                                            f.max_seq_length, "alpaca") == (8, 1, 1024,
                                                                                                            "alpaca")
    assert spec["lora"] == {"r": 16, "alpha": 16, "dropout": 0.0, "targets": perf_bench.SEVEN}
    assert spec["variants"] == [{"batch": 8, "accum": 1, "batching": "grouped"}]  # the notebook's group_by_length
    # raw Unsloth keeps its notebook's 2 x 4 (the baseline): the same 8 examples an update
    assert perf_bench.UNSLOTH_NOTEBOOK_BATCH == (2, 4)
    assert perf_bench.run_spec(ns, "short")["lengths"] == "alpaca"
    ns = preset(["--forgetting", "--batch", "2", "--variants", "2x4:grouped,8x1:padding_free"])
    assert ns.batch == 2 and ns.accum == 1
    assert [v["batching"] for v in ns.variants] == ["grouped", "padding_free"]
    plain = perf_bench.run_spec(preset([]), "train")
    assert (plain["batch"], plain["accum"], plain["lengths"], plain["lora"]["r"]) == (4, 1, "full", 16)


def test_forgetting_rows_are_named_after_their_batching_and_data(monkeypatch):
    calls = fake_children(monkeypatch)
    ns = preset(["--forgetting", "--variants", "2x4:grouped,8x1:grouped"])
    rows = perf_bench._train_rows("ckpt", ["repo", "unsloth"], ns, "train")
    assert [(r["path"], r["run"]) for r in rows] == [("repo", "2x4 grouped"), ("repo", "8x1 grouped"),
                                                     ("unsloth", "notebook")]
    assert all((r["lengths"], r["seq"]) == ("alpaca", 1024) for r in rows)
    assert json.loads(calls[1][2])["lengths"] == "alpaca" and calls[1][0] == "train:unsloth"


def demo_config(**overrides):
    """The addition notebook's config under `make demo`, built as helpers.run_notebook builds it."""
    from helpers.config import build_config, load_preset
    from helpers.tasks.addition import AdditionConfig

    return build_config(AdditionConfig, {**load_preset("addition", "demo"), **overrides})


def test_demo_preset_is_the_addition_demos_config_and_flags_override_it():
    cfg, ns = demo_config(), preset(["--demo"])
    spec = perf_bench.run_spec(ns, "train")
    assert (spec["batch"], spec["accum"], spec["seq"], spec["steps"], spec["lengths"]) == (
        cfg.batch_size, cfg.grad_accum, cfg.max_seq_length, 30, "addition") == (8, 1, 64, 30, "addition")
    assert spec["lora"] == {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                            "targets": cfg.lora_targets} == {"r": 16, "alpha": 16, "dropout": 0.0,
                                                             "targets": perf_bench.SEVEN}
    assert spec["variants"] == [{"batch": 8, "accum": 1, "batching": "grouped"}]  # the notebook's group_by_length
    # the demo trains without gradient checkpointing: so does the repository's path
    assert cfg.gradient_checkpointing is False and ns.no_gc is True and spec["gc"] is False
    # raw Unsloth's notebook batching (2 x 4) takes the same 8 examples an update as the demo's 8 x 1
    assert spec["batch"] * spec["accum"] == math.prod(perf_bench.UNSLOTH_NOTEBOOK_BATCH) == 8
    assert perf_bench.run_spec(ns, "short")["lengths"] == "addition"
    ns = preset(["--demo", "--batch", "2", "--steps", "5"])
    assert (ns.batch, ns.accum, ns.seq, ns.steps) == (2, 1, 64, 5)
    assert perf_bench.run_spec(preset([]), "train")["gc"] is True  # without --demo: checkpointing on


def test_demo_and_forgetting_together_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["perf_bench.py", "--tokenizer", "x", "--demo", "--forgetting"])
    with pytest.raises(SystemExit) as err:
        perf_bench.main()
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and "--demo" in lines[-1] and "--forgetting" in lines[-1]
    assert lines[-1].startswith("perf_bench.py: error: ")  # argparse's usage, then the one line


def test_addition_rows_are_the_demos_notebook_rows(embedded_tokenizer):
    """--demo's rows are the addition notebook's (make_problems, training_pairs, build_sft_dataset at
    max_seq_length, plain text): real prompts and sums, loss on the answer and its end-of-text token."""
    from helpers.sft import build_sft_dataset
    from helpers.tasks import addition

    tok = embedded_tokenizer
    rows = perf_bench.length_rows(tok, 16, 64, "addition")
    cfg = demo_config(n_train=16)
    train, _ = addition.make_problems(cfg)
    pairs = addition.training_pairs(train, cfg)
    notebook = build_sft_dataset(tok, pairs, chat=False, max_length=cfg.max_seq_length)
    assert len(rows) == len(notebook) == 16
    assert [r["input_ids"] for r in rows] == notebook["input_ids"]
    assert [r["labels"] for r in rows] == notebook["labels"]
    assert all(len(r["input_ids"]) == len(r["labels"]) <= 64 for r in rows)
    for r, (prompt, answer) in zip(rows, pairs):
        n = len(tok(prompt)["input_ids"])
        assert r["labels"][:n] == [-100] * n and -100 not in r["labels"][n:]  # loss on the answer only
        assert tok.decode(r["input_ids"][n:]) == answer + tok.eos_token  # the whole sum: no row was cut
        a, b = prompt.rsplit("Question: ", 1)[1].split("=")[0].split("+")
        assert answer == f" {int(a) + int(b)}"  # a real problem and its sum
    # fewer rows than training digit counts (1..7): the first of the smallest set the config allows
    assert perf_bench.length_rows(tok, 3, 64, "addition") == perf_bench.length_rows(tok, 7, 64, "addition")[:3]
    with pytest.raises(ValueError, match="raise --seq"):  # a cut that leaves no answer token: no rows
        perf_bench.length_rows(tok, 4, 8, "addition")


def test_demo_rows_are_named_after_their_batching_and_data_and_the_speed_table_takes_them(monkeypatch, capsys):
    calls = fake_children(monkeypatch)
    rows = perf_bench._train_rows("ckpt", ["repo", "unsloth"], preset(["--demo"]), "train")
    assert [(r["path"], r["run"]) for r in rows] == [("repo", "8x1 grouped"), ("unsloth", "notebook")]
    assert all((r["lengths"], r["seq"]) == ("addition", 64) for r in rows)
    assert json.loads(calls[1][2])["lengths"] == "addition" and calls[1][0] == "train:unsloth"

    perf_bench.print_speed_table([speed_row("repo", "8x1 grouped", 6000, "addition", 64, 30.0),
                                  speed_row("unsloth", "notebook padded", 2000, "addition", 64, 30.0)])
    out = capsys.readouterr().out
    repo = next(line for line in out.splitlines() if line.startswith("tinyllama-1.1b") and " repo " in line)
    assert repo.split()[4:7] == ["6000", "3.64%", "3.00x"]
    assert "T4 estimate" not in out  # the estimate is the forgetting study's run (Alpaca-like rows)


@pytest.mark.slow
def test_demo_train_part_runs_the_demos_config_on_its_rows(embedded_tokenizer, tiny_model):
    """The repository path's child at --demo's settings on a CPU: the demo's config (8 x 1, length-grouped)
    trains on the addition rows, every step timed over them."""
    from helpers.registry import resolve_model

    folder = resolve_model(tiny_model).local_path
    spec = {**perf_bench.run_spec(preset(["--demo"]), "train"), "steps": 3}
    got = perf_bench.child_repo(folder, spec)
    assert set(got) == {"8x1 grouped"}
    run = got["8x1 grouped"]
    assert "error" not in run, run
    assert (run["batch"], run["accum"], run["batching"], run["sampling"], run["padding_free_used"]) == (
        8, 1, "grouped", "group_by_length", False)
    rows = perf_bench.length_rows(embedded_tokenizer, 8 * 3, 64, "addition")
    assert run["tokens_per_row"] == round(sum(len(r["input_ids"]) for r in rows) / len(rows), 1)
    assert run["breakdown"]["steps"] == 2 and all(math.isfinite(x) for x in run["breakdown"]["losses"])


def test_a_spent_budget_skips_the_measurement(monkeypatch):
    calls = fake_children(monkeypatch, {"tokens_per_s": 1})
    ns = preset(["--budget-s", "10"])  # under the 20 s a measurement needs at least
    rows = perf_bench._train_rows("ckpt", ["repo", "unsloth"], ns, "train")
    assert calls == [] and all(r["error"] == "skipped: --budget-s spent" for r in rows)
    ns = preset(["--budget-s", "100"])
    assert perf_bench._timeout(ns) == 9  # --timeout when less than what is left
    perf_bench._train_rows("ckpt", ["unsloth"], ns, "train")
    assert len(calls) == 1


@pytest.mark.parametrize("bad", ["2x4:groupd", "2:grouped", "0x4:grouped", "2x4", ""])
def test_bad_variants_are_a_one_line_error(monkeypatch, capsys, bad):
    monkeypatch.setattr(sys, "argv", ["perf_bench.py", "--tokenizer", "x", "--forgetting", "--variants", bad])
    with pytest.raises(SystemExit) as err:
        perf_bench.main()
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.value.code == 2 and "--variants" in message and "2x4:grouped" in message


def test_unknown_part_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["perf_bench.py", "--parts", "train,shrot", "--tokenizer", "x"])
    with pytest.raises(SystemExit) as err:
        perf_bench.main()
    assert err.value.code == 2 and "unknown --parts ['shrot']" in capsys.readouterr().err


def test_memory_floor_counts_smollm2_by_hand():
    # SmolLM2-135M: hidden 576, MLP 1536, 30 layers, 9 heads of 64, 3 key/value heads, 49,152 tied tokens.
    f = perf_bench.memory_floor(perf_bench.public_config("smollm2-135m"))
    per_layer = 576 * (576 + 192 + 192 + 576) + 3 * 576 * 1536  # q k v o, gate up down
    assert f["quantized"] == 30 * per_layer == 106_168_320
    assert f["adapter_params"] == 30 * 16 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))
    embedding, norms = 49152 * 576, 30 * 2 * 576 + 576  # lm_head shares the embedding: counted once
    assert f["params"] == f["quantized"] + embedding + norms == 134_515_008
    nf4 = 0.5 + 1 / 64 + 4 / (64 * 256)
    assert f["floor_gib"] * 2**30 == pytest.approx(f["quantized"] * nf4 + (embedding + norms) * 2
                                                   + f["adapter_params"] * 10)


def test_floor_of_a_built_checkpoint_counts_its_embedding_rows():
    from make_random_checkpoint import arch_tokenizer, full_vocab_size

    from helpers.modeling import embedded_checkpoint
    from helpers.registry import resolve_model

    folder = embedded_checkpoint(resolve_model("smollm2-135m"))  # .gpu/tokenizer is copied from here
    assert full_vocab_size("mistral-7b-v3", arch_tokenizer("mistral-7b-v3", folder)) == 49_154  # 49,152 + <s>, </s>
    assert full_vocab_size("llama-3.1-8b", arch_tokenizer("llama-3.1-8b", folder)) == 128_256


def test_flop_params_leave_out_only_an_untied_input_embedding():
    tied = perf_bench.memory_floor(perf_bench.public_config("smollm2-135m"))
    assert tied["flop_params"] == tied["params"]  # the shared matrix is still multiplied as the head
    untied = perf_bench.memory_floor(perf_bench.public_config("mistral-7b-v3"))
    assert untied["flop_params"] == untied["params"] - 32_768 * 4096


def test_forgetting_architectures_count_their_parameters_by_hand():
    # TinyLlama-1.1B: hidden 2048, MLP 5632, 22 layers, 32 heads of 64, 4 key/value heads, 32,000 untied tokens
    f = perf_bench.memory_floor(perf_bench.public_config("tinyllama-1.1b"))
    layer = 2048 * (2048 + 256 + 256 + 2048) + 3 * 2048 * 5632
    embedding, norms = 32_000 * 2048, 22 * 2 * 2048 + 2048
    assert f["params"] == 22 * layer + 2 * embedding + norms == 1_100_048_384  # ~1.10B
    assert f["flop_params"] == f["params"] - embedding  # the untied input embedding is a lookup
    # Llama-3.2-1B: MLP 8192, 16 layers, 8 key/value heads, 128,256 tokens tied to the head
    f = perf_bench.memory_floor(perf_bench.public_config("llama-3.2-1b"))
    layer = 2048 * (2048 + 512 + 512 + 2048) + 3 * 2048 * 8192
    assert f["params"] == f["flop_params"] == 16 * layer + 128_256 * 2048 + 16 * 2 * 2048 + 2048 == 1_235_814_400
    rope = perf_bench.public_config("llama-3.2-1b").rope_parameters
    assert (rope["rope_type"], rope["factor"], rope["rope_theta"]) == ("llama3", 32.0, 500000.0)


def test_tinyllama_checkpoints_get_its_chat_family_on_the_embedded_vocabulary():
    from make_random_checkpoint import arch_tokenizer, full_vocab_size

    from helpers.modeling import embedded_checkpoint
    from helpers.registry import resolve_model

    folder = embedded_checkpoint(resolve_model("smollm2-135m"))
    tokenizer = arch_tokenizer("tinyllama-1.1b", folder)  # the registry's zephyr family
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<s>", "</s>")
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True) == "<|user|>\nhi</s>\n<|assistant|>\n"
    assert full_vocab_size("tinyllama-1.1b", tokenizer) == 49_154  # more than its 32,000: the tokenizer's
    assert full_vocab_size("llama-3.2-1b", arch_tokenizer("llama-3.2-1b", folder)) == 128_256


def test_alpaca_lengths_have_the_published_means_and_the_stated_spread():
    pairs = perf_bench.alpaca_lengths(52_002, 1024)
    prompts, answers = [p for p, _ in pairs], [a for _, a in pairs]
    assert abs(statistics.mean(prompts) - 27.8) < 0.6 and abs(statistics.mean(answers) - 64.6) < 1.5
    assert 0.03 < sum(a < 10 for a in answers) / len(pairs) < 0.07  # the docstring's 5% under 10 tokens
    assert 0.004 < sum(a > 400 for a in answers) / len(pairs) < 0.015  # and 1% over 400
    assert all(1 <= p <= 512 and 1 <= a and p + a <= 1024 for p, a in pairs)
    assert all(p + a <= 128 for p, a in perf_bench.alpaca_lengths(500, 128))
    assert perf_bench.alpaca_lengths(100, 1024, seed=3) == perf_bench.alpaca_lengths(100, 1024, seed=3)


def test_length_table_prints_the_quantiles_and_the_padding(capsys):
    perf_bench.print_length_table("alpaca", n=4000)
    lines = capsys.readouterr().out.splitlines()
    answer = next(line.split() for line in lines if line.startswith("answer"))
    pairs = perf_bench.alpaca_lengths(4000, 1024)
    cuts = statistics.quantiles([a for _, a in pairs], n=100, method="inclusive")
    assert answer[1] == f"{statistics.mean(a for _, a in pairs):.1f}" and answer[4] == f"{cuts[49]:.0f}"  # mean, p50
    run_table = next(i for i, line in enumerate(lines) if line.startswith("A run over all 4000 rows"))
    padding = {int(line.split()[0]): [float(x.rstrip("x")) for x in line.split()[1:]] for line in lines[:run_table]
               if line.split() and line.split()[0] in ("2", "8", "32")}
    assert set(padding) == {2, 8, 32} and all(grouped < rand for rand, grouped, _ in padding.values())
    assert padding[2][0] < padding[8][0] < padding[32][0]  # larger batches in random order pad more
    # a run's padding, and what the benchmark's ten steps compute with --pool and without it
    runs = {int(line.split()[0]): [float(x) for x in line.split()[1:]] for line in lines[run_table + 2:]}
    assert set(runs) == {8, 64}
    for run, median, _first, pooled, alone in runs.values():
        assert 1 <= median < run < alone and abs(pooled - run) < 0.15 and pooled < alone


def test_alpaca_rows_add_the_chat_template_to_the_published_lengths():
    from make_random_checkpoint import arch_tokenizer

    from helpers.modeling import embedded_checkpoint
    from helpers.registry import resolve_model

    # a random smollm2-135m checkpoint's tokenizer: configs/chat_templates/chatml.jinja, no system turn
    tokenizer = arch_tokenizer("smollm2-135m", embedded_checkpoint(resolve_model("smollm2-135m")))
    # <|im_start|> user \n <|im_end|> \n <|im_start|> assistant \n, then the answer's <|im_end|> \n
    assert perf_bench.template_tokens(tokenizer) == (9, 2)
    rows = perf_bench.length_rows(tokenizer, 300, 1024, "alpaca")
    pairs = perf_bench.alpaca_lengths(300, 1024 - 11)
    assert [(r["labels"].count(-100), len(r["input_ids"])) for r in rows] == [(p + 9, p + a + 11) for p, a in pairs]


def test_kernel_busy_time_counts_overlapping_kernels_once():
    assert perf_bench.kernel_busy_us([(0, 10), (5, 15), (20, 30)]) == 25
    assert perf_bench.kernel_busy_us([(10, 20), (0, 100), (50, 60)]) == 100
    assert perf_bench.kernel_busy_us([]) == 0


def test_kernel_table_counts_kinds_and_the_longest_kernels_a_step(capsys):
    names = {"nvjet_tst_128x256_64x4_2x1_v_bz_coopA_TNN": "matmul", "sm90_xmma_gemm_bf16bf16_bf16f32": "matmul",
             "triton_poi_fused_add_mul_silu_0": "compiled (Inductor)", "kDequantizeBlockwise<__nv_bfloat16, 512>":
             "4-bit dequantize", "void kOptimizer8bit2StateBlockwise<...>": "optimizer",
             "void at::native::vectorized_elementwise_kernel<4, ...>": "elementwise",
             "pytorch_flash::flash_fwd_kernel<...>": "attention", "_rms_layernorm_forward": "other"}
    assert {name: perf_bench.kernel_kind(name) for name in names} == names
    kernels = [("triton_poi_fused_add_0", 10.0)] * 6 + [("nvjet_tst_gemm", 100.0)] * 2 + [("kOptimizer8bit", 4.0)] * 2
    table = perf_bench.kernel_table(kernels, n_steps=2, top=2)
    assert table["kernels_per_step"] == 5 and table["mean_kernel_us"] == 26.8
    assert table["kind_ms_per_step"] == {"matmul": 0.1, "compiled (Inductor)": 0.03, "optimizer": 0.0}
    assert table["top_kernels"] == [["nvjet_tst_gemm", 0.1, 1.0], ["triton_poi_fused_add_0", 0.03, 3.0]]
    row = {"arch": "tiny", "part": "train", "path": "repo", "run": "8x1 grouped", "breakdown": {"gpu": table}}
    perf_bench.print_kernel_tables([row])
    out = capsys.readouterr().out
    assert "tiny repo 8x1 grouped: 5.0 kernels of 26.8 us on average; ms: matmul 0.1, compiled (Inductor) 0.03" in out


def test_trainer_without_trl_step_metrics_trains_the_same_losses(embedded_tokenizer, tmp_path):
    """helpers.sft leaves out TRL's per-step metrics (host work at every micro-batch) and computes the output
    layer only where a label follows: the trained adapters must be bit-identical to the reference path that
    keeps both, the losses the same up to the order of float32 sums (a mean of about 10.8: 1e-6)."""
    ref_losses, ref, ref_state, ref_lora = train_tiny(embedded_tokenizer, tmp_path / "ref", trl_step_metrics=True)
    losses, lean, state, lora = train_tiny(embedded_tokenizer, tmp_path / "lean")
    assert len(losses) == len(ref_losses) == 8  # 4 steps x 2 micro-batches
    assert torch.allclose(torch.stack(losses), torch.stack(ref_losses), rtol=0, atol=4e-6)
    assert [h["loss"] for h in state["log_history"] if "loss" in h] == pytest.approx(
        [h["loss"] for h in ref_state["log_history"] if "loss" in h], rel=0, abs=4e-6)
    assert [lean[k] for k in ("train_loss", "loss_first", "loss_last")] == pytest.approx(
        [ref[k] for k in ("train_loss", "loss_first", "loss_last")], rel=0, abs=4e-6)
    assert all(torch.equal(lora[k], ref_lora[k]) for k in ref_lora)
    assert state["total_flos"] == ref_state["total_flos"] > 0  # counted once instead of at every micro-batch
    assert "mean_token_accuracy" in ref_state["log_history"][0]  # the switch does take TRL's metrics out
    assert "mean_token_accuracy" not in state["log_history"][0] and "entropy" not in state["log_history"][0]


def test_a_nan_loss_is_reported(embedded_tokenizer, tmp_path, monkeypatch):
    """transformers' logging_nan_inf_filter replaced a NaN loss by the running mean in the logged losses,
    so train_sft's check never saw it; the reference path (trl_step_metrics) still filters."""
    real = tiny_training.tiny_lora_model

    def poisoned(tokenizer, *args):
        model, calls = real(tokenizer, *args), []

        def nan_at_third(module, args, out):
            calls.append(1)
            if len(calls) == 3:
                out.loss = out.loss * float("nan")
            return out

        model.register_forward_hook(nan_at_third)
        return model

    monkeypatch.setattr(tiny_training, "tiny_lora_model", poisoned)
    with pytest.raises(FloatingPointError, match="training loss became nan"):
        train_tiny(embedded_tokenizer, tmp_path / "lean")
    _, report, _, _ = train_tiny(embedded_tokenizer, tmp_path / "ref", trl_step_metrics=True)
    assert math.isfinite(report["loss_last"])  # the filter hid the NaN


def test_step_breakdown_on_a_cpu_and_its_table_line(embedded_tokenizer, tmp_path, capsys):
    from transformers import Trainer

    original = Trainer.__dict__["_maybe_log_save_evaluate"]
    breakdown = perf_bench.StepBreakdown(profile=(1, 3))  # a CPU has no GPU to profile: ignored
    with breakdown.instrument():
        train_tiny(embedded_tokenizer, tmp_path, callbacks=[breakdown.callback()])
    assert Trainer.__dict__["_maybe_log_save_evaluate"] is original  # the wrappers are gone after the block
    assert [s["step"] for s in breakdown.steps] == [1, 2, 3, 4]
    rows = perf_bench.length_rows(embedded_tokenizer, 16, 128, "alpaca")
    assert sum(s["useful_tokens"] for s in breakdown.steps) == sum(len(r["input_ids"]) for r in rows)
    assert all(s["computed_tokens"] >= s["useful_tokens"] for s in breakdown.steps)
    for s in breakdown.steps:
        assert s["wall"] == pytest.approx(sum(s[k] for k in perf_bench.PHASES))
        assert min(s["data"], s["forward"], s["backward"], s["optimizer"], s["loss"]) > 0 and s["gpu_wait"] == 0
    assert breakdown.steps[1]["log_save"] > 0 and not any(s["profiled"] for s in breakdown.steps)
    summary = breakdown.summary(skip=1)  # steps 2 and 3: the first warms up, the last saves the final checkpoint
    assert summary["steps"] == 2 and "gpu" not in summary
    timed = breakdown.steps[1:3]
    assert summary["useful_tokens_per_s"] == round(sum(s["useful_tokens"] for s in timed)
                                                   / sum(s["wall"] for s in timed))
    row = {"arch": "tiny", "part": "train", "path": "repo", "run": "2x2 grouped", "flop_params": 10**6,
           "lengths": "alpaca", "seq": 128, "tokens_per_row": 100.0, "breakdown": summary}
    perf_bench.print_speed_table([row])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny"))
    cells = line.split()
    assert cells[:5] == ["tiny", "repo", "2x2", "grouped", str(summary["useful_tokens_per_s"])]
    step, gpu, phases = float(cells[7]), cells[8], [float(x) for x in cells[9:17]]
    assert gpu == "-" and step == round(summary["ms"]["wall"], 1) and sum(phases) == pytest.approx(step, abs=0.5)
    assert set(summary["growth"]) == {"py_blocks"} and set(summary["drift_ms"]) == set(perf_bench.PHASES)


def speed_row(path, run, tokens, lengths="alpaca", seq=1024, tokens_per_row=110.0):
    """A training row of the speed table: a 1B model's useful tokens/s on `lengths` rows."""
    return {"arch": "tinyllama-1.1b", "part": "train", "path": path, "run": run, "flop_params": 10**9,
            "lengths": lengths, "seq": seq, "tokens_per_row": tokens_per_row, "useful_tokens_per_s": tokens}


def test_speed_table_ratios_share_of_peak_and_t4_estimate(capsys):
    perf_bench.print_speed_table([speed_row("repo", "2x4 grouped", 6000),
                                  speed_row("unsloth", "notebook padded", 2000)])
    out = capsys.readouterr().out
    repo = next(line for line in out.splitlines() if line.startswith("tinyllama-1.1b") and " repo " in line)
    assert repo.split()[4:7] == ["6000", "3.64%", "3.00x"]  # 6 x 1e9 x 6000 / 989e12; 6000 / 2000
    n = perf_bench.memory_floor(perf_bench.public_config("tinyllama-1.1b"))["flop_params"]
    hours = {k: 6 * n * 50_000 * 110 / (65e12 * (6 * 10**9 * v / 989e12)) / 3600 for k, v in (("repo", 6000),
                                                                                               ("unsloth", 2000))}
    assert f"repo 2x4 grouped {hours['repo']:.1f} h; unsloth notebook padded {hours['unsloth']:.1f} h" in out


def test_compile_modes_run_in_their_own_children_with_their_switches(monkeypatch):
    """--compile: the repository path once per mode, each child with the environment that switches it
    (Unsloth reads it at import), rows named after the buckets and the mode; raw Unsloth stays as shipped."""
    calls = train_children(monkeypatch)
    ns = preset(["--forgetting"])
    ns.compile, ns.pad_multiple = perf_bench.parse_compile("unsloth,graphs,model"), 64
    rows = perf_bench._train_rows("ckpt", ["repo", "unsloth"], ns, "train")
    assert [env for _, env in calls] == [{}, {"UNSLOTH_BLOCK_CUDAGRAPHS": "1",
                                              "UNSLOTH_BLOCK_CUDAGRAPHS_MAX_SHAPES": "16"},
                                         {"ACCELERATE_DYNAMO_BACKEND": "INDUCTOR"}, None]
    assert all(json.loads(args[2])["pad_multiple"] == 64 for args, _ in calls)
    assert [(r["path"], r["run"], r.get("compile")) for r in rows] == [
        ("repo", "8x1 grouped pad64", "unsloth"), ("repo", "8x1 grouped pad64 graphs", "graphs"),
        ("repo", "8x1 grouped pad64 model", "model"), ("unsloth", "notebook", None)]


def test_optimizers_train_in_their_own_children_with_the_optimizer_in_the_spec(monkeypatch):
    """--optim: the repository path once per optimizer (and per --compile mode), the row named after it;
    "auto" keeps the study's name, and raw Unsloth keeps its notebook's optimizer."""
    recorded = train_children(monkeypatch)
    ns = preset(["--demo"])
    ns.compile, ns.optim = perf_bench.parse_compile("unsloth,graphs"), perf_bench.parse_optim("auto,adamw_torch_fused")
    rows = perf_bench._train_rows("ckpt", ["repo", "unsloth"], ns, "train")
    calls = [args for args, _ in recorded]
    assert [(a[0], json.loads(a[2]).get("optim")) for a in calls] == [
        ("repo", "auto"), ("repo", "adamw_torch_fused"), ("repo", "auto"), ("repo", "adamw_torch_fused"),
        ("train:unsloth", None)]  # raw Unsloth: its notebooks' optimizer
    assert [r["run"] for r in rows] == ["8x1 grouped", "8x1 grouped adamw_torch_fused", "8x1 grouped graphs",
                                        "8x1 grouped graphs adamw_torch_fused", "notebook"]


@pytest.mark.parametrize("flag,bad,hint", [("--compile", "unsloth,graph", "unsloth,graphs"),
                                           ("--optim", "adamw_fused", "auto,adamw_torch_fused"),
                                           ("--compile", ",", "unsloth,graphs"), ("--pad-multiple", "0", "64"),
                                           ("--warm-passes", "0", "1 or more")])
def test_bad_compile_pad_multiple_or_warm_passes_is_a_one_line_error(monkeypatch, capsys, flag, bad, hint):
    monkeypatch.setattr(sys, "argv", ["perf_bench.py", "--tokenizer", "x", "--forgetting", flag, bad])
    with pytest.raises(SystemExit) as err:
        perf_bench.main()
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.value.code == 2 and flag in message and hint in message


def test_warm_passes_train_the_same_pass_before_the_timed_one():
    calls = []
    summary, _ = perf_bench._two_passes(calls.append, n_steps=4, profile=False, warm=3)
    assert len(calls) == 4 and len({id(cb) for cb in calls}) == 4  # 3 warm passes, then the timed one
    assert "error" in summary  # no step ran: nothing timed


def test_buckets_pad_to_the_multiple_without_loss_or_attention(embedded_tokenizer):
    """--pad-multiple: helpers.sft's collator pads each batch to a multiple of the tokens asked (static shapes
    for CUDA graphs) with no label and no attention on the padding, and only inside the block."""
    import helpers.sft

    rows = perf_bench.length_rows(embedded_tokenizer, 4, 1024, "alpaca")
    plain = helpers.sft.answer_only_collator(embedded_tokenizer, padding_free=False)(rows)
    with perf_bench.padded_to_multiple(64):
        bucketed = helpers.sft.answer_only_collator(embedded_tokenizer, padding_free=False)(rows)
    after = helpers.sft.answer_only_collator(embedded_tokenizer, padding_free=False)(rows)
    width = plain["input_ids"].shape[1]
    assert width % 64 != 0 and bucketed["input_ids"].shape[1] == -(-width // 64) * 64
    assert after["input_ids"].shape == plain["input_ids"].shape  # restored after the block
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(bucketed[key][:, :width], plain[key])
    assert (bucketed["labels"][:, width:] == -100).all() and (bucketed["attention_mask"][:, width:] == 0).all()


def test_step_breakdown_records_each_steps_loss_and_the_table_prints_their_mean(embedded_tokenizer, tmp_path,
                                                                                 capsys):
    breakdown = perf_bench.StepBreakdown()
    with breakdown.instrument():
        losses, _, _, _ = train_tiny(embedded_tokenizer, tmp_path, callbacks=[breakdown.callback()])
    expected = [round(float(losses[2 * i] + losses[2 * i + 1]), 6) for i in range(4)]  # 2 micro-batches a step
    assert [s["step_loss"] for s in breakdown.steps] == pytest.approx(expected, abs=1e-5)
    summary = breakdown.summary(skip=1)
    assert summary["losses"] == [s["step_loss"] for s in breakdown.steps]
    assert summary["ms"]["loss"] < summary["ms"]["wall"]  # the loss phase's time, not the loss
    row = {"arch": "tiny", "part": "train", "path": "repo", "run": "2x2 grouped pad64 graphs", "flop_params": 10**6,
           "lengths": "alpaca", "seq": 128, "tokens_per_row": 100.0, "breakdown": summary}
    perf_bench.print_speed_table([row])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny"))
    assert line.split()[2:6] == ["2x2", "grouped", "pad64", "graphs"]
    assert float(line.split()[-1]) == pytest.approx(statistics.mean(expected), abs=1e-4)


def test_block_modes_count_the_layers_unsloth_stamped():
    layers = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(4)])
    for layer, mode in zip(layers, (1, 1, 0, 2)):
        layer.__dict__["_unsloth_block_mode"] = mode
    assert perf_bench.block_modes(layers) == {"compiled": 2, "eager": 1, "compiled, flex outside": 1}
    assert perf_bench.block_modes(torch.nn.Linear(2, 2)) == {}


def test_timed_out_child_keeps_its_steps(tmp_path):
    """A child that runs out of time still tells what its finished steps took (the last pass, compiling steps
    left out), so a slow path gives a bound instead of nothing."""
    script = tmp_path / "slow_child.py"
    walls = [[5.0, 4.0, 0.5, 0.7, 0.9], [3.0, 0.2, 0.4, 0.3]]  # two passes: the second is the one reported
    lines = [f"PERF-STEP {json.dumps({'index': i, 'wall': w, 'useful': 100})}" for p in walls for i, w in enumerate(p)]
    script.write_text("import sys, time\n" + "".join(f"print({line!r}, file=sys.stderr, flush=True)\n"
                                                    for line in lines) + "time.sleep(60)\n")
    got = perf_bench.run_child([], timeout=3, script=str(script))
    assert got["error"] == "timed out after 3 s"
    assert got["partial"] == {"passes_begun": 2, "last_pass_steps": 4, "median_step_s": 0.35,
                              "useful_tokens_per_s": round(200 / 0.7, 1)}
    assert perf_bench.partial_steps(b"no steps here\n") is None


def test_summarize_reads_dated_records(tmp_path, monkeypatch, capsys):
    """--summarize takes both a perf_bench --out file and a dated record under benchmarks/perf/ (several runs,
    some of them notebook records without speed rows), and a timed-out row shows the steps it finished."""
    row = {"arch": "smollm2-135m", "path": "repo", "part": "train", "run": "8x1 grouped", "lengths": "addition",
           "seq": 64, "useful_tokens_per_s": 1234.5, "computed_per_useful": 1.0, "flop_params": 1.0e8}
    slow = {"arch": "smollm2-135m", "path": "unsloth", "part": "train", "run": "notebook", "lengths": "addition",
            "seq": 64, "error": "timed out after 9 s",
            "partial": {"passes_begun": 2, "last_pass_steps": 7, "median_step_s": 1.93, "useful_tokens_per_s": 185.0}}
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"date": "2026-12-07", "runs": {"1: demo": {"settings": {}, "results": [row]},
                                                                "2: notebook": {"train": {}}}}))
    out_file = tmp_path / "d_1.json"
    out_file.write_text(json.dumps({"settings": {}, "results": [slow]}))
    monkeypatch.setattr(sys, "argv", ["perf_bench.py", "--summarize", str(record), str(out_file)])
    perf_bench.main()
    lines = capsys.readouterr().out.splitlines()
    assert any("1234" in line and "8x1 grouped" in line for line in lines)
    assert any("timed out after 9 s (7 steps of pass 2 done: median 1.93 s, 185.0 useful tokens/s)" in line
               for line in lines)
    monkeypatch.setattr(sys, "argv", ["perf_bench.py", "--summarize", str(tmp_path / "none.json")])
    with pytest.raises(SystemExit):
        perf_bench.main()


def test_bf16_weights_reach_every_child_and_name_the_rows(monkeypatch):
    """--bf16-weights: every path's child loads the weights in bf16 (the spec's load_in_4bit), and the rows say
    so in their run names and fields; without it the spec keeps 4-bit weights."""
    recorded = train_children(monkeypatch)
    ns = preset(["--forgetting", "--bf16-weights"])
    ns.compile = perf_bench.parse_compile("unsloth,graphs")
    rows = perf_bench._train_rows("ckpt", ["repo", "unsloth"], ns, "train")
    calls = [args for args, _ in recorded]
    assert [json.loads(a[2])["load_in_4bit"] for a in calls] == [False, False, False]
    assert [(r["run"], r["load_in_4bit"]) for r in rows] == [
        ("8x1 grouped bf16", False), ("8x1 grouped bf16 graphs", False), ("notebook bf16", False)]
    assert perf_bench.run_spec(preset(["--forgetting"]), "train")["load_in_4bit"] is True


def test_gc_on_gpu_reaches_the_repository_children_only(monkeypatch):
    """--gc-on-gpu: the repository's children keep checkpoints on the GPU (spec gc_offload False) and their rows
    say so; raw Unsloth's row keeps its name (its child always uses its notebooks' "unsloth" checkpointing)."""
    recorded = train_children(monkeypatch)
    ns = preset(["--forgetting"])
    ns.gc_on_gpu, ns.compile = True, perf_bench.parse_compile("unsloth,graphs")
    rows = perf_bench._train_rows("ckpt", ["repo", "unsloth"], ns, "train")
    calls = [args for args, _ in recorded]
    assert [json.loads(a[2])["gc_offload"] for a in calls if a[0] == "repo"] == [False, False]
    assert [r["run"] for r in rows] == ["8x1 grouped gc-gpu", "8x1 grouped gc-gpu graphs", "notebook"]
    assert perf_bench.run_spec(preset(["--forgetting"]), "train")["gc_offload"] is None  # add_lora's rule


def test_gpu_scripts_measurements_parse():
    """Every `measure N ARCH ARGS` of scripts/gpu/*.sh is a command line perf_bench accepts (as measure.sh
    completes it): a typo there would cost a device call, found only on the GPU. Each script runs in bash with
    measure.sh's functions replaced by ones that print their arguments."""
    import pathlib
    import re
    import subprocess

    stubs = ("wanted=' '; left() { echo 999; }; finish() { :; }; addition_notebook() { :; }\n"
             "measure() { printf 'MEASURE'; for a in \"$@\"; do printf '\\t%s' \"$a\"; done; printf '\\n'; }\n")
    calls = []
    for path in sorted(pathlib.Path("scripts/gpu").glob("*.sh")):
        text = path.read_text()
        if "\nmeasure " not in text:  # measure.sh itself, and scripts without measurements
            continue
        body = re.sub(r"^source .*$", "", text, flags=re.M)
        out = subprocess.run(["bash", "-c", stubs + body], capture_output=True, text=True, check=True).stdout
        calls += [(path.name, *line.split("\t")[1:]) for line in out.splitlines() if line.startswith("MEASURE\t")]
    assert len(calls) >= 20
    parser = perf_bench.build_parser()
    for name, n, _arch, *rest in calls:
        args = parser.parse_args(["--model-dir", "ckpt", "--parts", "train", "--breakdown", "--timeout", "60", *rest])
        perf_bench._resolve_preset(args, parser)  # a bad --compile, --optim, --variants ... exits here
        assert args.steps >= 1 and args.batch >= 1, (name, n)
    assert ("demo_graphs.sh", "7", "tinyllama-1.1b") in {c[:3] for c in calls}


def test_pool_draws_a_real_runs_batches_with_its_padding():
    """--pool: steps of a run over a study's data in its grouped order. 640 Alpaca-like rows grouped among
    themselves pad 64-row steps to about 2.4x their useful tokens (the sixth round measured 2.53); ten steps
    of the TinyLlama study's run over 50,000 rows, spread over its steps, about what the whole run pads (ten
    steps leave out the run's few steps with a long row, where most of its padding is: `--length-table`)."""
    alone = perf_bench.pool_lengths("alpaca", 640, 994)
    pooled = perf_bench.pool_lengths("alpaca", 640, 994, pool=50_000, step_size=64, extra=30)
    assert len(pooled) == 640 and alone == perf_bench.LENGTHS["alpaca"](640, 994)
    assert perf_bench.pool_lengths("alpaca", 640, 994, pool=640, step_size=64) == alone  # no pool beyond n
    grouped_alone = perf_bench.padding_overhead([p + a + 30 for p, a in alone], 64, grouped=True)
    pooled_padding = perf_bench.padding_in_order([p + a + 30 for p, a in pooled], 64)
    lens = [p + a + 30 for p, a in perf_bench.LENGTHS["alpaca"](50_000, 994)]
    run = perf_bench.padding_overhead(lens, 64, grouped=True)
    assert grouped_alone > 1.7 and abs(pooled_padding - run) < 0.1, (grouped_alone, pooled_padding, run)
    # the pooled steps are a fair sample of the run: their mean length is the pool's, within 15%
    mean = (sum(lens) - 30 * len(lens)) / 50_000
    assert abs(sum(p + a for p, a in pooled) / 640 / mean - 1) < 0.15


def test_pool_rows_reach_the_trainer_in_their_order(embedded_tokenizer, monkeypatch):
    """keep_row_order: the grouped sampler yields the rows as given, so each step is one of the run's steps."""
    from helpers import sft

    monkeypatch.setattr(sft.GroupedSampler, "__iter__", sft.GroupedSampler.__iter__)  # undone after the test
    lengths = [5, 90, 7, 60, 8, 61]
    assert list(sft.GroupedSampler(lengths, 2, 0)) != list(range(6))  # grouped again: another order
    perf_bench.keep_row_order()
    assert list(sft.GroupedSampler(lengths, 2, 0)) == list(range(6))
    # built after the order is kept (as the child does): still the run's grouped steps
    rows = perf_bench.length_rows(embedded_tokenizer, 32, 1024, "alpaca", pool=50_000, step_size=8)
    assert len(rows) == 32 and all(len(r["input_ids"]) == len(r["labels"]) for r in rows)
    assert perf_bench.padding_in_order([len(r["input_ids"]) for r in rows], 8) < 1.1
    ns = preset(["--forgetting"])
    assert perf_bench.run_spec(ns, "train")["pool"] is None
    ns.pool = 50_000
    assert perf_bench.run_spec(ns, "train")["pool"] == 50_000
