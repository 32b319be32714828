"""`cuda_graphs` (the addition and forgetting notebooks): Unsloth's per-layer CUDA graphs, set before the layers
are wrapped, one setting a process, and batches padded to multiples of 64 tokens (few shapes; the addition rows
all one) with the loss unchanged. The graphs themselves need a GPU: scripts/gpu/demo_graphs.sh, PERFORMANCE.md
(fourth round)."""

import dataclasses
import types

import pytest
import torch
from conftest import TINY

from helpers import modeling
from helpers.config import ConfigError, build_config, config_hash
from helpers.modeling import GRAPH_BUCKET
from helpers.sft import answer_only_collator, graph_pad_multiple, length_buckets, sft_trainer
from helpers.tasks.addition import AdditionConfig
from helpers.tasks.forgetting import ForgettingConfig


@pytest.fixture
def graphs_state(monkeypatch):
    """A fresh process's state: no model set up yet."""
    monkeypatch.setattr(modeling, "_BLOCK_GRAPHS", [])
    monkeypatch.delenv("UNSLOTH_BLOCK_COMPILE", raising=False)
    return modeling._BLOCK_GRAPHS


def test_set_block_cuda_graphs_sets_unsloths_options_once_a_process(graphs_state):
    block_compile = types.SimpleNamespace(_COMPILE_OPTIONS={"triton.cudagraphs": False, "shape_padding": True},
                                          _CUDAGRAPH_MAX_SHAPES=8)
    modeling.set_block_cuda_graphs(True, 1024, block_compile)
    assert block_compile._COMPILE_OPTIONS == {"triton.cudagraphs": True, "shape_padding": True}
    # a full and a shorter last batch for each of the 16 multiples of 64 tokens up to 1024
    assert block_compile._CUDAGRAPH_MAX_SHAPES == 32 and modeling.block_cuda_graphs_on()
    modeling.set_block_cuda_graphs(True, 64, block_compile)  # the same again (a re-run cell) is fine
    assert block_compile._CUDAGRAPH_MAX_SHAPES == 32  # never lowered
    with pytest.raises(ConfigError, match="restart the kernel") as err:
        modeling.set_block_cuda_graphs(False, 64, block_compile)
    assert "\n" not in str(err.value)
    assert block_compile._COMPILE_OPTIONS["triton.cudagraphs"] is True and modeling.block_cuda_graphs_on()


def test_off_leaves_unsloths_shape_cap(graphs_state):
    block_compile = types.SimpleNamespace(_COMPILE_OPTIONS={"triton.cudagraphs": False}, _CUDAGRAPH_MAX_SHAPES=8)
    modeling.set_block_cuda_graphs(False, 1024, block_compile)
    assert block_compile._CUDAGRAPH_MAX_SHAPES == 8 and not modeling.block_cuda_graphs_on()


def test_batches_are_padded_to_buckets_only_when_graphs_are_on_the_unsloth_path(graphs_state, monkeypatch):
    addition, forgetting = AdditionConfig(cuda_graphs=True), ForgettingConfig(cuda_graphs=True)
    assert graph_pad_multiple(addition, "transformers") is None and graph_pad_multiple(addition, "unsloth") is None
    graphs_state[:] = [True]
    assert graph_pad_multiple(addition, "unsloth") == GRAPH_BUCKET == 64
    assert graph_pad_multiple(forgetting, "unsloth") == 64 and graph_pad_multiple(forgetting, "transformers") is None
    assert graph_pad_multiple(AdditionConfig(max_seq_length=48), "unsloth") == 48  # never past max_seq_length
    monkeypatch.setenv("UNSLOTH_BLOCK_COMPILE", "0")  # Gemma: layers eager, so no graphs and no padding
    assert not modeling.block_cuda_graphs_on() and graph_pad_multiple(addition, "unsloth") is None


def test_length_buckets_counts_the_padded_lengths():
    assert length_buckets([35, 54, 64], 64) == 1  # the addition demo's rows: one shape
    assert length_buckets([35, 65, 128, 129], 64) == 3


def test_cuda_graphs_with_padding_free_is_a_one_line_error(graphs_state, embedded_tokenizer, tmp_path):
    for study in (AdditionConfig, ForgettingConfig):
        with pytest.raises(ConfigError, match="set padding_free = False"):
            build_config(study, {"cuda_graphs": True, "padding_free": True})
    graphs_state[:] = [True]  # the same refusal where train_sft builds its collator (a config not validated)
    settings = AdditionConfig(padding_free=True, max_steps=1)
    with pytest.raises(ConfigError, match="set padding_free = False"):
        sft_trainer(None, embedded_tokenizer, [], run_dir=tmp_path, settings=settings, backend="unsloth")
    assert not any(tmp_path.iterdir())


def test_cuda_graphs_does_not_change_the_run_folder():
    """A speed switch, not a setting of what is computed: a run started with it resumes without it."""
    assert config_hash(AdditionConfig(cuda_graphs=True)) == config_hash(AdditionConfig())
    assert config_hash(ForgettingConfig(cuda_graphs=True)) == config_hash(ForgettingConfig())


def test_batches_padded_to_64_tokens_give_the_same_loss(tiny_model, embedded_tokenizer):
    """What cuda_graphs trains on: batches a multiple of 64 wide, the padding without label or attention."""
    from transformers import AutoModelForCausalLM

    from helpers.registry import resolve_model
    from helpers.sft import tokenize_example

    rows = [tokenize_example(embedded_tokenizer, f"What is {a} + {b}? ", f"{a + b}", chat=False, max_length=64)
            for a, b in [(3, 4), (123456, 7654321), (55, 66)]]
    plain = answer_only_collator(embedded_tokenizer, padding_free=False)(rows)
    fixed = answer_only_collator(embedded_tokenizer, padding_free=False, pad_to_multiple_of=64)(rows)
    assert plain["input_ids"].shape[1] < 64 and fixed["input_ids"].shape == (3, 64)
    width = plain["input_ids"].shape[1]
    assert (fixed["labels"][:, width:] == -100).all() and (fixed["attention_mask"][:, width:] == 0).all()
    model = AutoModelForCausalLM.from_pretrained(resolve_model(TINY).local_path, dtype=torch.float32)
    with torch.no_grad():
        loss_plain, loss_fixed = model(**plain).loss, model(**fixed).loss
    assert torch.isfinite(loss_plain) and loss_fixed.item() == pytest.approx(loss_plain.item(), abs=1e-5)


def test_the_trainer_pads_to_buckets_and_warns_without_checkpointing(graphs_state, tiny_model, tmp_path, capsys):
    """With graphs on (the Unsloth path), the collator pads to multiples of 64; over rows of several multiples and
    without gradient checkpointing the trainer says why that is slow. (The trainer is built, not trained: on a
    CPU there is no Unsloth.)"""
    from helpers.modeling import add_lora, load_model
    from helpers.sft import build_sft_dataset

    model, tokenizer, info = load_model(tiny_model, max_seq_length=256, load_in_4bit=False)
    model = add_lora(model, info, r=4, alpha=8, dropout=0.0, targets=["q_proj"], seed=0, gradient_checkpointing=False)
    pairs = [("Say it once. ", "yes"), ("Repeat this long line, please. " * 20, "no")]  # 1 and 3 multiples of 64
    dataset = build_sft_dataset(tokenizer, pairs, chat=False, max_length=256)
    graphs_state[:] = [True]
    settings = ForgettingConfig(max_steps=1, gradient_checkpointing=False, max_seq_length=256, report_to="none")
    trainer = sft_trainer(model, tokenizer, dataset, run_dir=tmp_path, settings=settings, backend="unsloth")
    assert trainer.data_collator.inner.pad_to_multiple_of == 64
    assert trainer.data_collator([dataset[0]])["input_ids"].shape == (1, 64)
    warning = capsys.readouterr().out
    assert "set gradient_checkpointing = True or cuda_graphs = False" in warning, warning
    assert "here 2 multiples of 64 tokens" in warning
    settings = dataclasses.replace(settings, gradient_checkpointing=True)
    sft_trainer(model, tokenizer, dataset, run_dir=tmp_path, settings=settings, backend="unsloth")
    assert "cuda_graphs" not in capsys.readouterr().out  # with checkpointing each shape is recorded once


@pytest.mark.parametrize("checkpointing,offload,expected", [(True, True, "unsloth"), (True, False, True),
                                                            (False, True, False), (False, False, False)])
def test_checkpoint_offload_picks_unsloths_checkpointing(graphs_state, monkeypatch, checkpointing, offload, expected):
    """add_lora on the Unsloth path: "unsloth" checkpointing as shipped (Unsloth offloads saved layer inputs to
    the host from max_seq_length 512 up), its plain checkpointing with checkpoint_offload=False, none without."""
    got = {}
    fake = types.SimpleNamespace(get_peft_model=lambda model, **kw: got.update(kw) or model)
    monkeypatch.setattr(modeling, "FastLanguageModel", fake, raising=False)
    monkeypatch.setattr(modeling, "set_block_cuda_graphs", lambda on, max_seq_length: None)
    info = modeling.ModelInfo(spec=None, source="x", backend="unsloth", dtype="bfloat16", load_in_4bit=True,
                              max_seq_length=1024, stop_token_ids=[])
    model = types.SimpleNamespace(config=types.SimpleNamespace(model_type="llama"))
    assert modeling.add_lora(model, info, r=4, alpha=8, dropout=0.0, targets=["q_proj"], seed=0,
                             gradient_checkpointing=checkpointing, checkpoint_offload=offload) is model
    value = got["use_gradient_checkpointing"]
    assert value == expected and type(value) is type(expected)  # True, not "unsloth" (both truthy)


@pytest.mark.parametrize("graphs,checkpointing,expected", [(False, True, "unsloth"), (True, True, True),
                                                           (True, False, False)])
def test_checkpoints_stay_on_the_gpu_while_graphs_are_on_by_default(graphs_state, monkeypatch, graphs,
                                                                     checkpointing, expected):
    """checkpoint_offload None (the notebooks'): the saved layer inputs stay on the GPU while CUDA graphs are on
    (TinyLlama's step 1.25x faster there, the same losses: PERFORMANCE.md sixth round), offloaded as Unsloth
    does without them; info.checkpoint_offload records which."""
    got = {}
    fake = types.SimpleNamespace(get_peft_model=lambda model, **kw: got.update(kw) or model)
    monkeypatch.setattr(modeling, "FastLanguageModel", fake, raising=False)
    monkeypatch.setattr(modeling, "set_block_cuda_graphs", lambda on, max_seq_length: None)
    graphs_state[:] = [graphs]
    info = modeling.ModelInfo(spec=None, source="x", backend="unsloth", dtype="bfloat16", load_in_4bit=True,
                              max_seq_length=1024, stop_token_ids=[])
    model = types.SimpleNamespace(config=types.SimpleNamespace(model_type="llama"))
    modeling.add_lora(model, info, r=4, alpha=8, dropout=0.0, targets=["q_proj"], seed=0,
                      gradient_checkpointing=checkpointing, cuda_graphs=graphs)
    value = got["use_gradient_checkpointing"]
    assert value == expected and type(value) is type(expected)
    assert info.cuda_graphs is graphs and info.checkpoint_offload is (expected == "unsloth")
