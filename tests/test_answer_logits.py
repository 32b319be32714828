"""helpers.sft computes the output layer only where a label follows (answer_positions, on the trainer's lean
path): the answer is a few tokens of each row, the output layer the widest matrix of a small model. The loss
and the gradients must be those of the whole batch."""

import torch
from tiny_training import perf_bench, tiny_lora_model, tiny_settings

from helpers.sft import IGNORE_INDEX, answer_logits_ok, answer_only_collator, answer_positions

X = IGNORE_INDEX


def test_positions_by_hand():
    labels = torch.tensor([[X, X, 5, 6], [X, X, X, 7], [X, X, X, X]])
    got = answer_positions(labels)
    # position p predicts token p + 1: row 0 from positions 1 and 2, row 1 from position 2
    assert got["logits_to_keep"].tolist() == [1, 2]
    assert got["shift_labels"].tolist() == [[5, 6], [X, 7], [X, X]]
    assert answer_positions(torch.full((2, 3), X)) == {}  # nothing to predict: the full path


def loss_and_grads(model, inputs, n):
    model.zero_grad()
    widths = []
    hook = model.get_base_model().lm_head.register_forward_hook(lambda m, a, out: widths.append(a[0].shape[1]))
    loss = model(**inputs, num_items_in_batch=n).loss
    loss.backward()
    hook.remove()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}, widths[0]


def test_the_loss_and_gradients_are_the_whole_batchs_padded_or_padding_free(embedded_tokenizer):
    model = tiny_lora_model(embedded_tokenizer)
    assert answer_logits_ok(model)
    rows = perf_bench.length_rows(embedded_tokenizer, 3, 128, "alpaca")
    for padding_free in (False, True):
        inputs = answer_only_collator(embedded_tokenizer, padding_free=padding_free)(rows)
        n = (inputs["labels"] != X).sum()
        full, full_grads, full_width = loss_and_grads(model, inputs, n)
        kept = answer_positions(inputs["labels"])
        loss, grads, width = loss_and_grads(model, {**inputs, **kept}, n)
        assert full_width == inputs["input_ids"].shape[1] > width == len(kept["logits_to_keep"])
        assert torch.allclose(loss, full, rtol=0, atol=1e-6)
        assert grads.keys() == full_grads.keys() and len(grads) == 8  # A and B of q and v in 2 layers
        assert all(torch.allclose(grads[k], full_grads[k], rtol=1e-5, atol=1e-8) for k in grads)


def test_a_model_without_logits_to_keep_takes_the_full_path():
    class Plain(torch.nn.Module):
        def forward(self, input_ids, labels=None):
            return None

    assert not answer_logits_ok(Plain())


def test_the_trainer_runs_the_output_layer_on_the_answer_positions_only(embedded_tokenizer, tmp_path):
    from datasets import Dataset

    from helpers.sft import train_sft

    model, widths = tiny_lora_model(embedded_tokenizer), {"lm_head": [], "batch": []}
    model.get_base_model().lm_head.register_forward_hook(lambda m, a, out: widths["lm_head"].append(a[0].shape[1]))
    model.register_forward_pre_hook(lambda m, a, kw: widths["batch"].append(kw["input_ids"].shape[1]),
                                    with_kwargs=True)
    rows = perf_bench.length_rows(embedded_tokenizer, 8, 128, "alpaca")
    train_sft(model, embedded_tokenizer, Dataset.from_list(rows), run_dir=tmp_path, settings=tiny_settings(),
              backend="transformers", resume=False)
    assert len(widths["lm_head"]) == len(widths["batch"]) == 8  # 4 steps x 2 micro-batches
    assert all(k < n for k, n in zip(widths["lm_head"], widths["batch"]))
