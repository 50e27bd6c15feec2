"""The decoder: build one from the config, load one from a folder, save it in HF layout.

Pretrain builds `AutoModelForCausalLM.from_config` from `model:` (an HF `arch` plus that
architecture's own config keys, checked against its config class so a typo is an
error) with the vocabulary of the data's tokenizer; SFT loads the pretrained model. A
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
    _generation_defaults(model, tokenizer)
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
    _quiet()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32,
                                                     attn_implementation=attn_implementation)
    except (OSError, ValueError) as e:
        raise DataError(f"config key '{key}': cannot load the model in {folder}: {str(e).splitlines()[0]}") from None
    tok = load_tokenizer(folder, key) if (folder / "tokenizer.json").is_file() else None
    return model, tok


def _quiet() -> None:
    """No "Loading weights" / "Writing model shards" progress bars in job logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _generation_defaults(model, tokenizer) -> None:
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
    _quiet()
    _generation_defaults(model, tokenizer)
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
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {id(params[k]) for k in state if k in params}
    really_missing = [k for k in missing if k not in params or id(params[k]) not in loaded]  # tied = loaded
    if really_missing or unexpected:
        raise DataError(f"checkpoint {folder} does not match the model: missing {really_missing[:3]}, "
                        f"unexpected {list(unexpected)[:3]}")


def describe(model) -> dict:
    c = model.config
    return {"arch": c.model_type, "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": c.vocab_size, "hidden_size": getattr(c, "hidden_size", None),
            "num_hidden_layers": getattr(c, "num_hidden_layers", None)}
