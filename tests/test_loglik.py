"""Log-likelihood scoring of continuations (HellaSwag, MMLU) and sentence-encoder retrieval/BERTScore."""

import json

import pytest
import torch

from helpers import loglik


def test_acc_takes_the_highest_loglik_and_acc_norm_divides_by_characters(monkeypatch):
    # choice 0 has the higher sum, choice 1 the higher per-character log-likelihood (lm-eval's acc_norm)
    monkeypatch.setattr(loglik, "continuation_logliks", lambda *a, **k: [-2.0, -3.0, -1.0, -9.0])
    items = [("ctx", ["a", "bbbbbbbb"], 1), ("ctx", ["cc", "d"], 0)]
    out = loglik.score_choices(None, None, items)
    assert out["pred"] == [0, 0] and out["pred_norm"] == [1, 0]
    assert out["acc"] == [0.0, 1.0] and out["acc_norm"] == [1.0, 1.0]


@pytest.fixture(scope="module")
def dense_model():
    from helpers.modeling import load_model

    return load_model("smollm2-135m", load_in_4bit=False)


@pytest.mark.slow
def test_context_spaces_move_to_the_continuation(dense_model):
    _, tok, _ = dense_model
    assert loglik.encode_pair(tok, "The sky is ", "blue") == loglik.encode_pair(tok, "The sky is", " blue")
    ctx, cont = loglik.encode_pair(tok, "The sky is", " blue")
    assert tok.decode(cont) == " blue" and tok.decode(ctx) == "The sky is"


@pytest.mark.slow
def test_batched_logliks_equal_one_forward_pass_each(dense_model):
    model, tok, _ = dense_model
    requests = [("The capital of France is", " Paris"), ("Two plus two equals", " four, of course"),
                ("A", " long continuation that is padded differently from the others in its batch")]
    batched = loglik.continuation_logliks(model, tok, requests, batch_size=3)
    for (context, continuation), got in zip(requests, batched):
        ctx, cont = loglik.encode_pair(tok, context, continuation)
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        want = sum(logprobs[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))
        assert got == pytest.approx(want, abs=1e-3)
    assert batched[0] > loglik.continuation_logliks(model, tok, [("The capital of France is", " Banana")])[0]


@pytest.mark.slow
def test_retrieval_finds_the_similar_text_and_never_the_excluded_one():
    from helpers.encoders import Retriever

    pool = ["A train travels at 60 km per hour for 3 hours.", "The bakery sold 40 cookies to friends.",
            "My knee hurts when I climb the stairs.", "A car drives 50 km per hour for 2 hours."]
    retriever = Retriever("all-minilm-l6-v2", pool)
    assert retriever.top_k(["How far does a train go at 80 km per hour in 2 hours?"], k=2) == [[0, 3]]
    ranked = retriever.top_k(pool, k=3, exclude=[0, 1, 2, 3])
    assert all(i not in ids and len(ids) == 3 for i, ids in enumerate(ranked))
    assert ranked[0][0] == 3 and ranked[3][0] == 0  # the two trips are each other's nearest neighbour


@pytest.mark.slow
def test_bertscore_with_the_packaged_encoder():
    from helpers.encoders import bertscore

    refs = ["Rest, ice and raise the ankle; see a doctor if you cannot walk."] * 3
    cands = [refs[0], "Rest the ankle, use ice and keep it raised.", "The stock market closed higher today."]
    out = bertscore(cands, refs, model="all-minilm-l6-v2", num_layers=6)
    assert out["f1"][0] == pytest.approx(1.0, abs=1e-4) and out["precision"][0] == pytest.approx(1.0, abs=1e-4)
    assert out["f1"][0] > out["f1"][1] > out["f1"][2]


def flat(rows):
    return [x for row in rows for x in row]


@pytest.mark.slow
def test_lm_eval_on_the_local_data_gives_our_log_likelihoods(dense_model, tmp_path):
    """lm-evaluation-harness itself (HF backend, its hellaswag and mmlu task files pointed at the local
    data) and helpers.loglik score the same items with the same log-likelihoods."""
    from helpers.data import DATA_DIR
    from helpers.studies import study_config
    from helpers.tasks import forgetting

    model, tok, info = dense_model
    cfg = study_config("forgetting", {"data_source": "local", "n_hellaswag": 4, "n_gsm8k": 1, "gsm8k_shots": 0,
                                      "mmlu_subjects": ["computer_security"], "n_mmlu": 3, "max_new_tokens": 8,
                                      "eval_batch_size": 8})
    theirs = forgetting.run_lm_eval(info.source, None, cfg, tmp_path / "tasks")
    rows = [json.loads(line) for line in (DATA_DIR / "hellaswag_sample.jsonl").read_text().splitlines()[:4]]
    ours = loglik.score_choices(model, tok, [forgetting.hellaswag_item(r) for r in rows])
    assert flat(theirs["hellaswag"]["logliks"]) == pytest.approx(flat(ours["logliks"]), abs=1e-3)
    assert theirs["hellaswag"]["acc,none"] == pytest.approx(sum(ours["acc"]) / 4)
    assert theirs["hellaswag"]["acc_norm,none"] == pytest.approx(sum(ours["acc_norm"]) / 4)
    mmlu = [json.loads(line) for line in (DATA_DIR / "mmlu_cs_sample.jsonl").read_text().splitlines()]
    mmlu = [forgetting.mmlu_item(r) for r in mmlu if r["subject"] == "computer_security"][:3]
    assert flat(theirs["mmlu_computer_security"]["logliks"]) == pytest.approx(
        flat(loglik.score_choices(model, tok, mmlu)["logliks"]), abs=1e-3)
    assert set(theirs["gsm8k"]) >= {"exact_match,strict-match", "exact_match,flexible-extract"}
