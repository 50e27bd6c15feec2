"""Nemotron 3 Nano's architecture (NemotronH: Mamba-2 / MoE / attention) in the nano3 trainers.

- default.yaml is the published shape (built on the meta device: no memory): 52 layers =
  23 Mamba-2 + 23 MoE + 6 attention, 128 routed experts + 1 shared, 6 active, ~31.6B / ~3.6B.
- The MoE load-balancing loss: 1 for an even split, E/k for a collapsed router, and its gradient
  reaches the router; per-expert token counts land in metrics.jsonl and in the run report's plot.
- A tiny NemotronH pretrain run publishes a model that plain transformers loads as
  NemotronHForCausalLM and generates from; `-c tiny_llama` keeps the Llama path.
- A NemotronH checkpoint made by transformers itself (save_pretrained) goes through
  `nemotron nano3 model import` and SFT fine-tunes it.
(Resume bit-exactness, SIGTERM -> exit 75, DDP and SFT on packed chats run on the tiny config, now
NemotronH, in test_trainers.py; GRPO sampling and the eval in test_rl_eval.py.)
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from recipes.nano3.training import model as modellib
from recipes.nano3.training.moe import RouterStats, imbalance

from .test_trainers import PREP, QUIET, REPO, TRAIN, env, result, rows, run, train_cmd

CONFIG = TRAIN["pretrain"].parent / "config"


class FakeTokenizer:
    """What hf_config needs from a tokenizer: its length and special ids."""

    eos_token_id, pad_token_id, bos_token_id = 0, 1, 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def get_vocab(self) -> dict:
        return {}


def model_cfg(name: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONFIG / f"{name}.yaml"))


# ---- the shapes --------------------------------------------------------------------------------
def test_default_yaml_is_the_published_nemotron_3_nano_shape():
    import torch
    from transformers import AutoModelForCausalLM

    cfg = model_cfg("default")
    config = modellib.hf_config(cfg["model"], FakeTokenizer(131072))
    with torch.device("meta"):  # 31.6B parameters, no memory
        model = AutoModelForCausalLM.from_config(config)
    kinds = config.layers_block_type
    assert (len(kinds), kinds.count("linear_attention"), kinds.count("moe"), kinds.count("full_attention")) == \
        (52, 23, 23, 6)
    assert (config.hidden_size, config.n_routed_experts, config.n_shared_experts, config.num_experts_per_tok) == \
        (2688, 128, 1, 6)
    assert (config.vocab_size, config.mamba_num_heads, config.ssm_state_size, config.num_key_value_heads) == \
        (131072, 64, 128, 2)
    info = modellib.describe(model)
    assert 31.0e9 < info["parameters"] < 32.0e9 and 3.4e9 < info["active_parameters"] < 3.7e9, info
    assert cfg["parallelism"] == {"data": "fsdp", "activation_checkpointing": True, "tensor": 1, "sequence": False,
                                  "expert": 8}
    assert cfg["train"]["moe_aux_loss_coef"] == 1.0e-4 and cfg["train"]["seq_length"] == 8192


def tiny_model(vocab: int = 64):
    mcfg = model_cfg("tiny")["model"]
    return modellib.build(mcfg, FakeTokenizer(vocab), seed=0)


def test_load_balancing_loss_even_split_vs_collapsed_router():
    import torch

    model = tiny_model()
    stats = RouterStats(model)
    assert len(stats.routers) == 2 and stats.active  # ME*E: two MoE layers
    experts, k, tokens = 8, 2, 64
    # an even split with flat router scores: 1.0; every token on experts 0 and 1 with confident scores: E/k
    even = torch.arange(tokens * k).remainder(experts).view(tokens, k)
    stats.captured = [(torch.zeros(tokens, experts), even, experts)]
    assert float(stats.aux_loss()) == pytest.approx(1.0)
    logits = torch.full((tokens, experts), -20.0)
    logits[:, :2] = 20.0
    stats.captured = [(logits, torch.tensor([[0, 1]] * tokens), experts)]
    assert float(stats.aux_loss()) == pytest.approx(experts / k, rel=1e-4)
    assert stats.captured == []  # forgotten once taken

    # the real routers: captured only while recording, counts add up to tokens x k, gradient reaches the gate
    x = torch.randint(2, 64, (4, 16))
    model(input_ids=x, use_cache=False)
    assert stats.aux_loss() is None
    stats.recording = True
    model(input_ids=x, use_cache=False)
    stats.recording = False
    aux = stats.aux_loss()
    assert 1.0 <= float(aux.detach()) < experts / k
    aux.backward()
    gate = stats.routers[0].weight
    assert gate.grad is not None and gate.grad.abs().sum() > 0
    counts = stats.take_counts()
    assert [sum(layer) for layer in counts] == [4 * 16 * k] * 2 and len(counts[0]) == experts
    assert stats.take_counts() == [[0] * experts] * 2  # reset after taking
    assert imbalance([[4, 4, 4, 4]]) == 1.0 and imbalance([[16, 0, 0, 0], [4, 4, 4, 4]]) == 4.0


def test_rollout_logprobs_on_left_padded_prompts_match_the_training_forward():
    """GRPO samples with generate (left-padded prompts, Mamba state cache) and trains with a cache-free
    forward on right-padded [prompt | completion] rows. Mamba has no attention mask of its own: the
    padded positions must leave its state and conv window untouched, or the two log-probs differ
    (0.25 nats on this model when the mask is left out)."""
    import torch

    from recipes.nano3.rl.grpo import make_batch, token_logprobs
    from recipes.nano3.rl.sampling import completions

    model = tiny_model().eval()
    prompts = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [20, 21, 22, 23, 24], [30]]
    width, new = max(map(len, prompts)), 6
    ids = torch.full((len(prompts), width), 1)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):], mask[row, width - len(p):] = torch.tensor(p), 1
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, output_logits=True, return_dict_in_generate=True, pad_token_id=1,
                             eos_token_id=[0])
    gen = out.sequences[:, width:]
    sampled = torch.stack([torch.log_softmax(s.float(), -1) for s in out.logits], 1)
    sampled = sampled.gather(-1, gen[..., None]).squeeze(-1)
    batch = make_batch(prompts, gen.tolist(), torch.zeros(len(prompts)), pad_id=1)
    with torch.no_grad():
        trained = token_logprobs(model, batch.input_ids)
    for row, p in enumerate(prompts):
        picked = trained[row][batch.mask[row].bool()]
        assert torch.allclose(picked, sampled[row], atol=1e-5), (row, (picked - sampled[row]).abs().max())
    # the rollout sampler's batches give each prompt the completion it gets alone
    one_by_one = [completions(model, [p], n=1, greedy=True, max_new_tokens=new, pad_id=1, stop_ids=[0])[0]
                  for p in prompts]
    assert completions(model, prompts, n=1, greedy=True, max_new_tokens=new, pad_id=1, stop_ids=[0]) == one_by_one


@pytest.mark.parametrize("override, needle", [
    ({"hybrid_override_pattern": "M E"}, "must be a non-empty string of layer letters"),
    ({"num_hidden_layers": 3}, "hybrid_override_pattern has 4 layers"),
    ({"mamba_num_heads": 6, "n_groups": 4}, "'model.mamba_num_heads': 6 must be a multiple of model.n_groups"),
    ({"n_routed_experts": 8, "n_group": 8}, ">= 2 experts per group"),
    ({"num_experts_per_tok": 0}, "must be a positive integer"),
])
def test_nemotron_h_shape_errors_name_the_key(override, needle):
    from nemotron_core.errors import ConfigError

    mcfg = {**model_cfg("tiny")["model"], **override}
    with pytest.raises(ConfigError, match=None) as e:
        modellib.build(mcfg, FakeTokenizer(64), seed=0)
    assert needle in str(e.value) and "\n" not in str(e.value)


# ---- runs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("nemotron_h")
    pre, sft = base / "pretrain-data", base / "sft-data"
    run([sys.executable, str(PREP["pretrain"]), "--config", "tiny", f"output_dir={pre}"])
    run([sys.executable, str(PREP["sft"]), "--config", "tiny", f"output_dir={sft}",
         f"tokenizer_path={pre / 'tokenizer'}"])
    return {"pretrain": pre, "sft": sft, "base": base}


SHORT = ["train.max_steps=30", "checkpoint.interval=0", "eval.interval=0", "log.interval=10", *QUIET]


def test_tiny_pretrain_logs_experts_and_publishes_a_plain_transformers_model(data):
    import torch
    from transformers import AutoTokenizer, NemotronHForCausalLM

    from tasks.report import experts_png

    out = data["base"] / "pretrain"
    run(train_cmd("pretrain", out, f"data_path={data['pretrain']}", *SHORT))
    info = result(out)["model"]
    assert info["arch"] == "nemotron_h" and info["hybrid_override_pattern"] == "ME*E"
    assert info["active_parameters"] < info["parameters"]
    train_rows = [r for r in rows(out) if "loss" in r]
    assert [r["step"] for r in train_rows] == [10, 20, 30]
    for r in train_rows:  # 10 steps x 16 x 64 tokens, 2 experts each, in each of the 2 MoE layers
        assert [sum(layer) for layer in r["expert_tokens"]] == [10 * 16 * 64 * 2] * 2
        assert len(r["expert_tokens"][0]) == 8 and r["expert_imbalance"] >= 1.0
        assert 1.0 <= r["moe_aux_loss"] < 4.0
    png = experts_png(rows(out), "nano3/pretrain: expert utilisation")
    assert png and png[:8] == b"\x89PNG\r\n\x1a\n"

    # the published folder in plain transformers: the NemotronH class, the same logits, it generates
    folder = out / "model"
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["NemotronHForCausalLM"]
    plain = NemotronHForCausalLM.from_pretrained(str(folder)).eval()
    ours, _ = modellib.load(out, "model")
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = tok("Zorland has", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(plain(input_ids=ids).logits, ours.eval()(input_ids=ids).logits)
        new = plain.generate(input_ids=ids, max_new_tokens=6, do_sample=False)
    assert new.shape[1] > ids.shape[1]

    # a checkpoint written in NVIDIA's layout (backbone.*, one tensor per expert) loads back exactly
    fresh = tiny_model(plain.config.vocab_size)
    modellib.load_weights(fresh, folder)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), ours.state_dict().values()))


def test_tiny_llama_config_keeps_the_llama_path(data):
    out = data["base"] / "pretrain-llama"
    run([sys.executable, str(TRAIN["pretrain"]), "--config", "tiny_llama", f"output_dir={out}",
         f"data_path={data['pretrain']}", *SHORT])
    assert result(out)["model"]["arch"] == "llama"
    assert not any("expert_tokens" in r for r in rows(out))


def test_imported_nemotron_h_checkpoint_fine_tunes_with_sft(data):
    """A NemotronH checkpoint in HF format (as NVIDIA publishes Nemotron 3 Nano), made by transformers
    itself, registered through the real CLI, then SFT continues from the registered version."""
    import torch
    from transformers import AutoTokenizer, NemotronHConfig, NemotronHForCausalLM

    tok = AutoTokenizer.from_pretrained(str(data["sft"] / "tokenizer"))
    config = NemotronHConfig(vocab_size=len(tok), hidden_size=64, hybrid_override_pattern="M*E",
                             num_attention_heads=4, num_key_value_heads=2, head_dim=16, mamba_num_heads=4,
                             mamba_head_dim=16, ssm_state_size=16, n_groups=1, chunk_size=64, n_routed_experts=4,
                             num_experts_per_tok=2, moe_intermediate_size=32, moe_shared_expert_intermediate_size=64,
                             max_position_embeddings=128, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    src = data["base"] / "hf-nemotron-h"
    NemotronHForCausalLM(config).save_pretrained(str(src))
    tok.save_pretrained(str(src))

    root = data["base"] / "artifacts"
    nemotron = str(Path(sys.executable).with_name("nemotron"))
    p = subprocess.run([nemotron, "nano3", "model", "import", "pretrain", str(src), "--root", str(root)],
                       capture_output=True, text=True, env=env(), cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    from nemotron_core.artifacts import open_registry

    version = open_registry({"root": str(root)}).resolve("nano3-pretrain-model:latest")
    assert version.metadata["layout"]["model_type"] == "nemotron_h"

    out = data["base"] / "sft-from-import"
    run(train_cmd("sft", out, f"data_path={data['sft']}", f"base_model={version.path}", "train.max_steps=20",
                  "eval.interval=20", "log.interval=10", "checkpoint.interval=0", *QUIET))
    res = result(out)
    assert res["model"]["arch"] == "nemotron_h" and res["inputs"]["base_model"]["path"] == str(version.path)
    valid = [r["valid_loss"] for r in rows(out) if "valid_loss" in r]
    assert valid and valid[-1] < math.log(len(tok)) - 0.3  # below chance (ln 1024 = 6.93); seen 6.33 at 20 steps
