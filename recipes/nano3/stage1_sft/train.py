# /// script
# [tool.runspec]
# schema = "1"
# name = "nano3/sft"
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
"""Nano3 stage 1: supervised fine-tuning of the pretrained model on packed chats.

    torchrun --standalone --nproc-per-node 1 train.py --config config/tiny.yaml \\
        data_path=/path/to/sft-data base_model=/path/to/pretrain-model output_dir=/path/out
    nemotron nano3 sft -c tiny                 # the same through the toolkit (Slurm with --run/--batch)

Inputs: `base_model` (artifact nano3-pretrain-model: an HF folder, or the pretrain
output folder holding model/) and `data_path` (artifact nano3-sft-data: packed Parquet
splits with a loss mask + the tokenizer it was made with; it must be the model's).
The loss counts assistant tokens only; packed conversations never attend to each
other (positions restart per conversation).

Output (output_dir; the caller registers it as nano3-sft-model once RESULT.json exists):
model/, checkpoints/, metrics.jsonl, RESULT.json (+ PREEMPTED.json after SIGTERM), as in
stage0_pretrain/train.py. Exit codes: 0 done; 2 bad config or data; 75 preempted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipes.nano3.training import entry, settings
from recipes.nano3.training import model as modellib
from recipes.nano3.training.data import has_split
from recipes.nano3.training.packed import PackedData

NAME, ARTIFACT = "nano3/sft", "nano3-sft-model"


def main(argv: list[str]) -> None:
    # 1. The config (train.yaml from the toolkit): every key and value checked.
    cfg = settings.load(argv, script=Path(__file__), kind="sft")
    data_path, seed = Path(cfg["data_path"]), cfg["seed"]

    # 2. The pretrained model and its tokenizer; the data must use the same tokenizer.
    data_tokenizer = modellib.load_tokenizer(data_path / "tokenizer", "data_path")
    model, tokenizer = modellib.load(cfg["base_model"], "base_model")
    if tokenizer is None:
        tokenizer = data_tokenizer
    modellib.check_same_tokenizer(tokenizer, data_tokenizer, f"base_model {cfg['base_model']} vs data_path {data_path}")
    vocab = model.config.vocab_size

    # 3. Data: packed rows -> inputs, assistant-only targets, per-conversation positions.
    train = PackedData(data_path, "train", seed, vocab)
    valid = PackedData(data_path, "valid", seed + 1, vocab) if has_split(data_path, "valid") else None

    # 4. Train (DDP or FSDP when torchrun started several processes), DCP checkpoints, export model/, RESULT.json.
    entry.train(name=NAME, artifact=ARTIFACT, cfg=cfg, model=model, tokenizer=tokenizer, train=train, valid=valid,
                inputs={"data": data_path, "base_model": Path(cfg["base_model"])})


if __name__ == "__main__":
    sys.exit(entry.run(main))
