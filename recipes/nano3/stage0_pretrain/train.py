# /// script
# [tool.runspec]
# schema = "1"
# name = "nano3/pretrain"
# image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
# setup = "Needs the nemotron-flows package installed (scripts/setup)."
#
# [tool.runspec.run]
# launch = "torchrun"
#
# [tool.runspec.config]
# dir = "./config"
# default = "default"
# format = "omegaconf"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 8
# ///
"""Nano3 stage 0: pretrain a decoder from scratch on the tokenized blend.

    torchrun --standalone --nproc-per-node 1 train.py --config config/tiny.yaml \\
        data_path=/path/to/pretrain-data output_dir=/path/out [key=value ...]
    nemotron nano3 pretrain -c tiny            # the same through the toolkit (Slurm with --run/--batch)

Input (`data_path`, artifact nano3-pretrain-data): tokenizer/ + Megatron .bin/.idx shards
+ blend.json (train and valid splits). The model is `AutoModelForCausalLM.from_config`
(`model:` = an HF arch and its config keys, e.g. nemotron_h = Nemotron 3 Nano's hybrid
Mamba-2 / MoE / attention; random init from `seed`) with the tokenizer's vocabulary.

Output (output_dir; the caller registers it as nano3-pretrain-model once RESULT.json exists):

  model/                    HF layout: config.json, generation_config.json, model.safetensors, tokenizer
  checkpoints/step_N/       the newest complete checkpoints (model + optimizer + RNG + data position)
  metrics.jsonl             step, loss, lr, tokens_per_s, elapsed, grad_norm (+ valid_loss;
                            MoE: expert_tokens, expert_imbalance, moe_aux_loss)
  RESULT.json               final metrics, model info, inputs (paths + digests) for lineage
  PREEMPTED.json            only after SIGTERM/SIGUSR1: checkpoint saved, exit 75, rerun to resume

Exit codes: 0 done; 2 bad config or data (one-line error, nothing written); 75 preempted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipes.nano3.training import entry, settings
from recipes.nano3.training import model as modellib
from recipes.nano3.training.data import has_split
from recipes.nano3.training.windows import WindowData

NAME, ARTIFACT = "nano3/pretrain", "nano3-pretrain-model"


def main(argv: list[str]) -> None:
    # 1. The config (train.yaml from the toolkit): every key and value checked.
    cfg = settings.load(argv, script=Path(__file__), kind="pretrain")
    data_path, seed, seq = Path(cfg["data_path"]), cfg["seed"], cfg["train"]["seq_length"]

    # 2. Tokenizer from the data artifact; a fresh decoder with its vocabulary.
    tokenizer = modellib.load_tokenizer(data_path / "tokenizer", "data_path")
    model = modellib.build(cfg["model"], tokenizer, seed=seed)
    vocab = model.config.vocab_size

    # 3. Data: memory-mapped windows of the blend's shards (train; valid when present).
    train = WindowData(data_path, "train", seq, seed, vocab)
    valid = WindowData(data_path, "valid", seq, seed + 1, vocab) if has_split(data_path, "valid") else None

    # 4. Train (DDP or FSDP when torchrun started several processes), DCP checkpoints, export model/, RESULT.json.
    entry.train(name=NAME, artifact=ARTIFACT, cfg=cfg, model=model, tokenizer=tokenizer, train=train, valid=valid,
                inputs={"data": data_path})


if __name__ == "__main__":
    sys.exit(entry.run(main))
