"""scripts/perf_bench.py: the reduction of repeated rounds (the median per architecture and path, the
failed rounds left out, the table's ratios taken from those medians), and the short-sample
measurement on the embedded model (each batching what it says, all over the same rows)."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import perf_bench  # noqa: E402


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
def test_short_batchings_are_what_they_say_and_see_the_same_tokens(embedded_tokenizer):
    """The padded row once came out length-grouped (the training default) and the grouped row was
    timed on its longest batches only: each batching must set both switches, and every one must
    train on the same rows, all of them timed."""
    from helpers.modeling import embedded_checkpoint
    from helpers.registry import resolve_model

    folder = str(embedded_checkpoint(resolve_model("smollm2-135m")))
    got = perf_bench.child_repo(folder, 2, 256, 1, 2, "short", short_steps=4)
    assert set(got) == {"padded", "grouped", "padding_free"}
    assert {k: (v["sampling"], v["padding_free_used"]) for k, v in got.items()} == {
        "padded": ("random", False), "grouped": ("group_by_length", False), "padding_free": ("random", True)}
    rows = perf_bench._orca_like_rows(embedded_tokenizer, 2 * 4, 256)
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


def test_train_and_short_are_separate_children(monkeypatch):
    calls = []

    def fake_child(args, timeout, cold=False, env_extra=None):
        calls.append(args)
        return {"error": "timed out after 9 s"}

    monkeypatch.setattr(perf_bench, "run_child", fake_child)
    ns = argparse.Namespace(batch=4, seq=1024, steps=10, short_batch=8, short_steps=40, timeout=9, cold=False)
    train = perf_bench._train_rows("ckpt", ["repo", "plain"], ns, "train")
    assert calls[0][0] == "repo" and calls[0][6] == "train" and calls[1][0] == "train:plain"
    assert [(r["part"], r["path"]) for r in train] == [("train", "repo"), ("train", "plain")]
    short = perf_bench._train_rows("ckpt", ["repo"], ns, "short")
    assert calls[2][6] == "short"
    assert [(r["part"], r["path"]) for r in short] == [("short", k) for k in perf_bench.SHORT]
    assert all(r["error"] == "timed out after 9 s" for r in train + short)


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
