"""Build a random-weight checkpoint of a real architecture from its public config numbers.

No weights can be fetched on the GPU machine; speed, memory and whether a code path runs do not
depend on weight values. The tokenizer comes from a folder you pass (e.g. the embedded model's
cached copy) and the vocabulary is resized to it.

    python scripts/make_random_checkpoint.py smollm2-135m /tmp/ckpt --tokenizer .gpu/tokenizer
    python scripts/make_random_checkpoint.py llama-3.1-8b /tmp/ckpt --tokenizer .gpu/tokenizer --layers 2
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from helpers.registry import chat_template, load_registry

# Public config.json numbers of each architecture (hidden, intermediate, layers, heads, kv heads).
ARCHITECTURES = {
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0,
                         max_position_embeddings=8192, tie_word_embeddings=True, rms_norm_eps=1e-5),
    "llama-2-7b": dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, rope_theta=10000.0,
                       max_position_embeddings=4096, rms_norm_eps=1e-5),
    "llama-3-8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                       max_position_embeddings=8192, rms_norm_eps=1e-5),
    "llama-3.1-8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                         max_position_embeddings=131072, rms_norm_eps=1e-5,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    "gemma-7b": dict(model_type="gemma", hidden_size=3072, intermediate_size=24576, num_hidden_layers=28,
                     num_attention_heads=16, num_key_value_heads=16, head_dim=256, rope_theta=10000.0,
                     max_position_embeddings=8192, rms_norm_eps=1e-6),
    "gemma-2-9b": dict(model_type="gemma2", hidden_size=3584, intermediate_size=14336, num_hidden_layers=42,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=256, rope_theta=10000.0,
                       max_position_embeddings=8192, rms_norm_eps=1e-6, sliding_window=4096,
                       attn_logit_softcapping=50.0, final_logit_softcapping=30.0, query_pre_attn_scalar=256),
    "mistral-7b-v3": dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                          num_attention_heads=32, num_key_value_heads=8, rope_theta=1000000.0,
                          max_position_embeddings=32768, rms_norm_eps=1e-5, sliding_window=None),
    "qwen-2-7b": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                      num_attention_heads=28, num_key_value_heads=4, rope_theta=1000000.0,
                      max_position_embeddings=32768, rms_norm_eps=1e-6),
    # the forgetting study's two models (TinyLlama/TinyLlama-1.1B-Chat-v1.0, meta-llama/Llama-3.2-1B-Instruct)
    "tinyllama-1.1b": dict(model_type="llama", hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, rope_theta=10000.0,
                           max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False),
    "llama-3.2-1b": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=64, rope_theta=500000.0,
                         max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
}


# The real vocabulary sizes: the embedding and the logits of a 128k/256k vocabulary weigh on memory.
VOCAB = {"smollm2-135m": 49152, "llama-2-7b": 32000, "llama-3-8b": 128256, "llama-3.1-8b": 128256,
         "gemma-7b": 256000, "gemma-2-9b": 256000, "mistral-7b-v3": 32768, "qwen-2-7b": 152064,
         "tinyllama-1.1b": 32000, "llama-3.2-1b": 128256}

FAMILY_TOKENS = {"llama-2": ("<s>", "</s>"), "llama-3": ("<|begin_of_text|>", "<|eot_id|>"),
                 "gemma": ("<bos>", "<end_of_turn>"), "mistral": ("<s>", "</s>"), "chatml": (None, "<|im_end|>"),
                 "zephyr": ("<s>", "</s>")}


def arch_tokenizer(arch: str, tokenizer_dir: str):
    """The tokenizer at `tokenizer_dir` with the study model's chat template and its begin/end tokens."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    family = load_registry()[arch].family if arch in load_registry() else None
    if family:  # the study model's chat template and end-of-turn token, on the embedded vocabulary
        bos, eos = FAMILY_TOKENS[family]
        tokenizer.add_special_tokens({k: v for k, v in {"bos_token": bos, "eos_token": eos}.items() if v})
        tokenizer.chat_template = chat_template(family)
    return tokenizer


def full_vocab_size(arch: str, tokenizer) -> int:
    """The embedding rows of a `full_vocab` checkpoint: the real vocabulary's, or the tokenizer's
    where it has more (the embedded tokenizer's 49,154 exceed llama-2-7b's and mistral-7b-v3's)."""
    return max(len(tokenizer), VOCAB[arch])


def build(arch: str, out: str, tokenizer_dir: str, layers: int | None = None, dtype=torch.bfloat16,
          full_vocab: bool = False) -> int:
    """With `full_vocab` the embedding has the real vocabulary's rows (at least the tokenizer's):
    memory measurements need it; the tokenizer still only produces ids below its own length."""
    numbers = dict(ARCHITECTURES[arch])
    model_type = numbers.pop("model_type")
    if layers:
        numbers["num_hidden_layers"] = layers
    tokenizer = arch_tokenizer(arch, tokenizer_dir)
    vocab = full_vocab_size(arch, tokenizer) if full_vocab else len(tokenizer)
    config = AutoConfig.for_model(model_type, vocab_size=vocab, bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                  **numbers)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(out, max_shard_size="20GB")
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{arch}: {n_params / 1e6:.0f}M parameters -> {out}")
    return n_params


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arch", choices=sorted(ARCHITECTURES))
    parser.add_argument("out")
    parser.add_argument("--tokenizer", required=True, help="folder with tokenizer files")
    parser.add_argument("--layers", type=int, help="fewer layers than the real model (quick checks)")
    parser.add_argument("--full-vocab", action="store_true", help="the real vocabulary size (memory checks)")
    args = parser.parse_args()
    build(args.arch, args.out, args.tokenizer, args.layers, full_vocab=args.full_vocab)
