"""Log-likelihood scoring of continuations (HellaSwag, MMLU) and sentence-encoder retrieval/BERTScore."""

import copy
import json

import pytest
import torch

from helpers import loglik
from helpers.generation import encode_prompts, encode_text

BOS = "<|im_start|>"  # the embedded SmolLM2 tokenizer's bos_token, which it does not add by itself


def with_bos(tokenizer):
    """A copy of `tokenizer` whose post-processor puts its BOS before every text, as the Llama,
    TinyLlama, Gemma and Mistral tokenizers do (the embedded SmolLM2 one adds nothing)."""
    from tokenizers.processors import TemplateProcessing

    tok = copy.deepcopy(tokenizer)
    assert tok.bos_token == BOS
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.bos_token_id)])
    assert tok("Hi")["input_ids"][0] == tok.bos_token_id
    return tok


@pytest.fixture(scope="module")
def bos_tokenizer(embedded_tokenizer):
    return with_bos(embedded_tokenizer)


def test_encode_pair_keeps_the_tokenizers_bos_once_as_lm_eval_does(bos_tokenizer):
    tok, bos = bos_tokenizer, bos_tokenizer.bos_token_id
    plain = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    ctx, cont = loglik.encode_pair(tok, "The sky is ", "blue")
    assert ctx == [bos] + plain("The sky is") and cont == plain("The sky is blue")[len(plain("The sky is")):]
    # a context that already starts with the BOS text gets no second one (lm-eval's has_bos_prefix)
    ctx, cont = loglik.encode_pair(tok, BOS + "The sky is", " blue")
    assert ctx.count(bos) == 1 and ctx[0] == bos and bos not in cont
    # an empty context is the BOS alone (lm-eval's prefix_token_id)
    assert loglik.encode_pair(tok, "", "Paris") == ([bos], plain("Paris"))


def test_generation_and_scoring_encode_plain_text_alike(bos_tokenizer, embedded_tokenizer):
    for tok in (bos_tokenizer, embedded_tokenizer):
        context = "Question: 2+2?\nAnswer:"
        assert encode_prompts(tok, [context], chat=False) == [loglik.encode_pair(tok, context, " 4")[0]]
        assert encode_text(tok, BOS + context) == encode_prompts(tok, [BOS + context], chat=False)[0]
    assert encode_prompts(bos_tokenizer, [BOS + "Hi"], chat=False)[0].count(bos_tokenizer.bos_token_id) == 1
    assert embedded_tokenizer.bos_token_id not in encode_prompts(embedded_tokenizer, ["Hi"], chat=False)[0]


def test_a_template_that_writes_the_bos_gets_no_second_one(bos_tokenizer):
    tok = copy.deepcopy(bos_tokenizer)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<|user|>\n{{ m['content'] }}\n{% endfor %}"
                         "<|assistant|>\n")
    (ids,) = encode_prompts(tok, ["What is 2+2?"], chat=True)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


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
    # an empty answer (a model that ends its turn at once) scores 0 and leaves the others' scores as they were
    mixed = bertscore([cands[1], "", " \n"], refs, model="all-minilm-l6-v2", num_layers=6)
    assert mixed["f1"][0] == pytest.approx(out["f1"][1], abs=1e-6)
    assert [mixed[k][i] for k in ("precision", "recall", "f1") for i in (1, 2)] == [0.0] * 6


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


@pytest.mark.slow
def test_lm_eval_with_a_bos_adding_tokenizer_gives_our_log_likelihoods(dense_model, tmp_path):
    """The same agreement with a tokenizer that adds a BOS (as Llama's, Gemma's, Mistral's do): lm-eval
    keeps it, so must we. The BOS changes the model's numbers, so a scorer without it disagrees."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from helpers.data import DATA_DIR
    from helpers.studies import study_config
    from helpers.tasks import forgetting

    model, tok, _ = dense_model
    bos_tok = with_bos(tok)
    cfg = study_config("forgetting", {"data_source": "local", "mmlu_subjects": ["computer_security"]})
    _, manager = forgetting.lm_eval_tasks(cfg, tmp_path / "tasks")
    lm = HFLM(pretrained=model, tokenizer=bos_tok, batch_size=8)
    out = lm_eval.simple_evaluate(model=lm, tasks=["hellaswag_local", "mmlu_computer_security_local"],
                                  task_manager=manager, limit=3, log_samples=True)
    theirs = {t: [[r[0] for r in s["filtered_resps"]] for s in out["samples"][t]] for t in out["samples"]}
    rows = [json.loads(line) for line in (DATA_DIR / "hellaswag_sample.jsonl").read_text().splitlines()[:3]]
    items = [forgetting.hellaswag_item(r) for r in rows]
    ours = loglik.score_choices(model, bos_tok, items)["logliks"]
    assert flat(theirs["hellaswag_local"]) == pytest.approx(flat(ours), abs=1e-3)
    mmlu = [json.loads(line) for line in (DATA_DIR / "mmlu_cs_sample.jsonl").read_text().splitlines()]
    mmlu = [forgetting.mmlu_item(r) for r in mmlu if r["subject"] == "computer_security"][:3]
    assert flat(theirs["mmlu_computer_security_local"]) == pytest.approx(
        flat(loglik.score_choices(model, bos_tok, mmlu)["logliks"]), abs=1e-3)
    # the BOS matters: the same items without it score differently (what the scorer did before)
    assert flat(loglik.score_choices(model, tok, items)["logliks"]) != pytest.approx(flat(ours), abs=1e-3)
