"""The decoder: build one from the config, load one from a folder, save it in HF layout.

Pretrain builds `AutoModelForCausalLM.from_config` from `model:` (an HF `arch` plus that
architecture's own config keys, checked against its config class so a typo is an
error) with the vocabulary of the data's tokenizer; SFT loads the pretrained model.
`arch: nemotron_h` is Nemotron 3 Nano's hybrid: `hybrid_override_pattern` lays out the layers
(M Mamba-2, E mixture-of-experts, * attention, - dense MLP), checked here with errors that
name the key; `arch: llama` stays available for comparison. A
saved model folder is what `AutoModelForCausalLM.from_pretrained` and
`AutoTokenizer.from_pretrained` read: config.json, generation_config.json,
model.safetensors (fp32), tokenizer files with the chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

from nemotron_core.errors import ConfigError, did_you_mean

from recipes.nano3.common.errors import DataError

#: `model:` keys we consume ourselves (everything else goes to the HF config).
OWN_KEYS = ("arch", "attn_implementation", "vocab_multiple")
#: Set from the tokenizer, never from the config.
TOKENIZER_KEYS = ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")
IM_END = "<|im_end|>"


# ---- tokenizer ------------------------------------------------------------------------------
def load_tokenizer(folder: str | Path, key: str):
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        raise DataError(f"config key '{key}': no tokenizer at {folder} (tokenizer.json missing); "
                        f"point {key} at the output of the data prep stage")
    return AutoTokenizer.from_pretrained(str(folder))


def _tokenizer_model(tok) -> dict:
    return json.loads(tok.backend_tokenizer.to_str())["model"]


def check_same_tokenizer(a, b, what: str) -> None:
    """DataError when two tokenizers map text to different ids (vocab or merges differ)."""
    if len(a) != len(b) or _tokenizer_model(a) != _tokenizer_model(b):
        raise DataError(f"tokenizer mismatch: {what} (vocab {len(a)} vs {len(b)}); train on data "
                        f"tokenized with the model's tokenizer")


def special_ids(tok) -> dict:
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    return {"bos_token_id": tok.bos_token_id if tok.bos_token_id is not None else eos, "eos_token_id": eos,
            "pad_token_id": pad}


# ---- build / load ---------------------------------------------------------------------------
def hf_config(mcfg: dict, tokenizer):
    """The HF config for `model:` (checked key by key) with the tokenizer's vocabulary."""
    from transformers import AutoConfig

    mcfg = dict(mcfg)
    arch = mcfg.pop("arch", None)
    for key in OWN_KEYS[1:]:
        mcfg.pop(key, None)
    try:
        defaults = AutoConfig.for_model(arch)
    except (ValueError, KeyError, TypeError):
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        raise ConfigError(f"config key 'model.arch': {arch!r} is not a Hugging Face model type"
                          f"{did_you_mean(str(arch), list(CONFIG_MAPPING.keys()))} (e.g. llama, nemotron)") from None
    known = sorted(defaults.to_dict())
    if arch == "nemotron_h":
        _check_nemotron_h(mcfg, defaults)
    for key in mcfg:
        if key in TOKENIZER_KEYS:
            raise ConfigError(f"config key 'model.{key}': set from the data's tokenizer; remove it "
                              f"(model.vocab_multiple pads the vocabulary)")
        if not hasattr(defaults, key):
            raise ConfigError(f"unknown config key 'model.{key}' for arch {arch!r}{did_you_mean(key, known)}")
    try:
        return AutoConfig.for_model(arch, vocab_size=len(tokenizer), **special_ids(tokenizer), **mcfg)
    except Exception as e:  # noqa: BLE001  a value the config class rejects (its validators raise various types)
        raise ConfigError(f"config key 'model': {type(e).__name__}: {e}") from None


PATTERN_CHARS = {"M": "Mamba-2", "E": "mixture-of-experts", "*": "attention", "-": "dense MLP"}


def _check_nemotron_h(mcfg: dict, defaults) -> None:
    """NemotronH shape rules its config class does not check (they fail later, deep in a forward)."""
    pattern = mcfg.get("hybrid_override_pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern or set(pattern) - set(PATTERN_CHARS):
            legend = ", ".join(f"{c} {what}" for c, what in PATTERN_CHARS.items())
            raise ConfigError(f"config key 'model.hybrid_override_pattern': {pattern!r} must be a non-empty string "
                              f"of layer letters ({legend}), e.g. ME*E")
        if "layers_block_type" in mcfg:
            raise ConfigError("config keys 'model.hybrid_override_pattern' and 'model.layers_block_type' both set; "
                              "keep one")
        layers = mcfg.get("num_hidden_layers")
        if layers is not None and layers != len(pattern):
            raise ConfigError(f"config key 'model.num_hidden_layers': {layers} but hybrid_override_pattern has "
                              f"{len(pattern)} layers; remove num_hidden_layers (the pattern decides)")
    if mcfg.get("tie_word_embeddings"):
        raise ConfigError("config key 'model.tie_word_embeddings': NemotronH keeps a separate LM head "
                          "(transformers never ties it); set false")
    get = lambda k: mcfg.get(k, getattr(defaults, k))  # noqa: E731
    ints = ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "mamba_num_heads",
            "mamba_head_dim", "ssm_state_size", "n_groups", "conv_kernel", "chunk_size", "n_routed_experts",
            "num_experts_per_tok", "moe_intermediate_size", "moe_shared_expert_intermediate_size", "n_group",
            "topk_group")
    for key in ints:
        v = get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"config key 'model.{key}': {v!r} must be a positive integer")
    rules = [
        (get("mamba_num_heads") % get("n_groups") == 0, "mamba_num_heads", "a multiple of model.n_groups"),
        (get("num_attention_heads") % get("num_key_value_heads") == 0, "num_attention_heads",
         "a multiple of model.num_key_value_heads"),
        (get("num_experts_per_tok") <= get("n_routed_experts"), "num_experts_per_tok", "<= model.n_routed_experts"),
        (get("n_routed_experts") % get("n_group") == 0 and get("n_routed_experts") // get("n_group") >= 2,
         "n_routed_experts", "a multiple of model.n_group with >= 2 experts per group"),
        (get("topk_group") <= get("n_group"), "topk_group", "<= model.n_group"),
    ]
    for ok, key, must in rules:
        if not ok:
            raise ConfigError(f"config key 'model.{key}': {get(key)!r} must be {must}")


def padded_vocab(vocab: int, multiple: int) -> int:
    return -(-vocab // multiple) * multiple


def build(mcfg: dict, tokenizer, seed: int):
    """A randomly initialised decoder (seeded) for `model:`; vocab from the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    multiple = mcfg.get("vocab_multiple", 1)
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ConfigError(f"config key 'model.vocab_multiple': {multiple!r} must be a positive integer")
    config = hf_config(mcfg, tokenizer)
    config.vocab_size = padded_vocab(len(tokenizer), multiple)  # GPU-friendly LM head; extra rows never targeted
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(config, attn_implementation=mcfg.get("attn_implementation", "sdpa"),
                                                 dtype=torch.float32)
    except Exception as e:  # noqa: BLE001  e.g. an unknown hidden_act: only the config can cause it here
        raise ConfigError(f"config key 'model': cannot build {config.model_type}: {type(e).__name__}: {e}") from None
    generation_defaults(model, tokenizer)
    return model


def model_dir(path: str | Path, key: str) -> Path:
    """The HF folder of a model: `path` itself or, for a trained model artifact, `path/model`."""
    p = Path(path)
    for candidate in (p, p / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise DataError(f"config key '{key}': no model at {path} (no config.json there or in model/); "
                    f"point it at a pretrained model folder or artifact")


def load(path: str | Path, key: str, attn_implementation: str = "sdpa"):
    """(model in fp32, its tokenizer or None) from an HF folder or model artifact folder."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = model_dir(path, key)
    quiet()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32,
                                                     attn_implementation=attn_implementation)
    except (OSError, ValueError) as e:
        raise DataError(f"config key '{key}': cannot load the model in {folder}: {str(e).splitlines()[0]}") from None
    tok = load_tokenizer(folder, key) if (folder / "tokenizer.json").is_file() else None
    return model, tok


def quiet() -> None:
    """No "Loading weights" / "Writing model shards" progress bars in job logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def generation_defaults(model, tokenizer) -> None:
    """Generation stops at <|endoftext|> and at <|im_end|> (end of an assistant turn)."""
    ids = special_ids(tokenizer)
    stop = [ids["eos_token_id"]]
    im_end = tokenizer.convert_tokens_to_ids(IM_END) if IM_END in tokenizer.get_vocab() else None
    if im_end is not None and im_end not in stop:
        stop.append(im_end)
    gc = model.generation_config
    gc.eos_token_id, gc.pad_token_id, gc.bos_token_id = stop, ids["pad_token_id"], ids["bos_token_id"]


def save(model, tokenizer, folder: Path) -> None:
    """HF layout: config.json, generation_config.json, model.safetensors, tokenizer files."""
    quiet()
    generation_defaults(model, tokenizer)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def load_weights(model, folder: Path) -> None:
    """Load model.safetensors (or its shards) saved by `save` into `model`, exactly."""
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() \
        else ["model.safetensors"]
    state = {}
    for name in files:
        state.update(load_file(str(folder / name)))
    own = model.state_dict()
    if any(k not in own for k in state):
        state = _converted_state(model, folder)
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {id(params[k]) for k in state if k in params}
    really_missing = [k for k in missing if k not in params or id(params[k]) not in loaded]  # tied = loaded
    if really_missing or unexpected:
        raise DataError(f"checkpoint {folder} does not match the model: missing {really_missing[:3]}, "
                        f"unexpected {list(unexpected)[:3]}")


def unwrap(model):
    """The HF model inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def _mamba_kernels() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("mamba_ssm", "causal_conv1d"))


def packed_kwargs(model, position_ids) -> dict:
    """Extra forward kwargs that keep packed sequences apart (positions restart at 0 per sequence).

    Attention layers separate them from `position_ids` alone. Mamba-2 layers need `seq_idx`,
    which only the mamba_ssm / causal_conv1d kernels honour (transformers refuses it without
    them): on the reference PyTorch path (CPU) a packed conversation's Mamba state and conv
    window start from the previous conversation's end instead of zero.
    """
    inner = unwrap(model)
    hybrid = "linear_attention" in (getattr(inner.config, "layers_block_type", None) or [])
    if position_ids is None or not hybrid or not _mamba_kernels():
        return {}
    import torch

    seq_idx = ((position_ids == 0).cumsum(dim=-1) - 1).clamp(min=0)
    return {"seq_idx": seq_idx.to(torch.int32)}  # the kernels' dtype


def active_parameters(model) -> int:
    """Parameters one token passes through: all, less the routed experts it is not sent to."""
    total = sum(p.numel() for p in model.parameters())
    inactive = 0
    for m in model.modules():
        if type(m).__name__.endswith("Experts") and hasattr(m, "num_experts"):
            per_expert = sum(p.numel() for p in m.parameters()) // m.num_experts
            inactive += per_expert * (m.num_experts - model.config.num_experts_per_tok)
    return total - inactive


def _converted_state(model, folder: Path) -> dict:
    """The weights of a folder whose file layout differs from the module's (NemotronH: save_pretrained
    writes NVIDIA's published layout, `backbone.*` and one tensor per expert): loaded through
    transformers' own conversion into a fresh model of the same class, then taken as they are."""
    import torch

    quiet()
    try:
        loaded = type(model).from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise DataError(f"checkpoint {folder} does not load: {str(e).splitlines()[0]}") from None
    return loaded.state_dict()


def describe(model) -> dict:
    c = model.config
    info = {"arch": c.model_type, "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": c.vocab_size, "hidden_size": getattr(c, "hidden_size", None),
            "num_hidden_layers": getattr(c, "num_hidden_layers", None)}
    if c.model_type == "nemotron_h":
        info.update({"hybrid_override_pattern": c.hybrid_override_pattern, "routed_experts": c.n_routed_experts,
                     "experts_per_token": c.num_experts_per_tok, "active_parameters": active_parameters(model)})
    return info
