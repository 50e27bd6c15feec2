# /// script
# [tool.runspec]
# schema = "1"
# name = "nano3/data/prep/sft"
# image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
# setup = "Needs the nemotron-flows package installed (scripts/setup)."
#
# [tool.runspec.run]
# launch = "ray"
# cmd = "python {script} --config {config}"
#
# [tool.runspec.config]
# dir = "./config/data_prep"
# default = "default"
# format = "omegaconf"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""Nano3 stage 1 data prep: chats -> tokenized, loss-masked, packed Parquet for SFT.

    python data_prep.py --config config/data_prep/tiny.yaml output_dir=/path/out \\
        tokenizer_path=/path/to/pretrain-data/tokenizer [key=value ...]
    nemotron nano3 data prep sft               # the same, through the toolkit (RayJob on Slurm)

`tokenizer_path` is the pretrain data's tokenizer (in the configs:
`${art:nano3-pretrain-data,path}/tokenizer`, resolved by the toolkit). When a
world.json sits beside it, the `world` settings must match it (same facts as pretrain).

Inputs (`sources`, mixed by `weight` = how many conversations each contributes):
chats about the synthetic world (common/world.py; questions from the world's train
items, held-out items only in valid/test) and/or user chats (JSONL / Parquet / HF folder
with a `messages` list of {role, content}) by fsspec URI. Nothing is downloaded.

One Ray task per shard: build conversations, split them train/valid/test, apply the chat
template, mask the loss to assistant tokens, pack in order into rows of seq_length,
write Parquet; a shard's marker is written last, so a rerun skips finished shards.

Output (output_dir; the caller registers it as artifact `nano3-sft-data` once
RESULT.json exists; this script calls no registry):

  splits/{train,valid,test}/<source>-<shard>.parquet   rows of exactly seq_length tokens:
      input_ids  list<int32>  conversations back to back, then <|pad|>
      loss_mask  list<int8>   1 on assistant content + its <|im_end|> (predict input_ids[t]), else 0
      boundaries list<int32>  [0, end of conv 1, end of conv 2, ..., num_tokens] (cu_seqlens)
      num_tokens int32        real (non-pad) tokens in the row
  blend.json                  {"splits": {split: {"paths": [parquet files], "weights": [...]}}, "seq_length",
                              "pad_id"}: source weights -> per-file sampling weights (common/blend.py)
  tokenizer/                  a copy of the tokenizer used (with the chat template)
  shards/<source>-<shard>.json  per-shard done markers with stats
  RESULT.json                 stats (conversations, rows, tokens, loss tokens per split), inputs, config digest

Same inputs and config -> byte-identical files (whatever `workers` is).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import pyarrow as pa

from nemotron_core.errors import ConfigError

from recipes.nano3.common import config, outputs, prep, readers, splits
from recipes.nano3.common import stats as stats_
from recipes.nano3.common import tokenizer as toks
from recipes.nano3.common.blend import split_blend
from recipes.nano3.common.chat import PAD, Packer, check_messages, encode_chats
from recipes.nano3.common.cli import run_main
from recipes.nano3.common.errors import DataError
from recipes.nano3.common.shards import run_shards, shutdown_ray
from recipes.nano3.common.world import World, WorldConfig

NAME, ARTIFACT = "nano3/data/prep/sft", "nano3-sft-data"

DEFAULTS = prep.defaults(  # + output_dir, resume, seed, on_error, world, sources
    tokenizer_path="???",  # the pretrain data's tokenizer folder (or a tokenizer.json)
    workers=2,  # Ray tasks at a time (num_cpus of a local Ray head)
    num_shards=2,  # default shards per source
    seq_length=64,  # packed row length (the SFT trainer's sequence length)
    splits={"valid": 0.01, "test": 0.01},  # held-out fraction of user chats (synthetic: see world)
)
# restate: assistant replies restate the fact ("The capital of Zoria is Kelmo."; common/world.py Item.reply)
SYNTHETIC_KEYS = {"conversations": 20000, "multi_turn": 0.2, "max_turns": 3, "restate": False}
FILE_KEYS = {"messages_key": "messages"}
ENCODE_BATCH = 512
PARQUET_TYPES = {"input_ids": pa.list_(pa.int32()), "loss_mask": pa.list_(pa.int8()),
                 "boundaries": pa.list_(pa.int32()), "num_tokens": pa.int32()}


def main(argv: list[str]) -> None:
    t0 = time.time()
    p = prep.open_prep(argv, script=Path(__file__), defaults=DEFAULTS, synthetic=SYNTHETIC_KEYS, files=FILE_KEYS,
                       fields=("messages_key",), allowed=("jsonl", "parquet", "hf"))  # checked, nothing written
    cfg, out, resume, world, sources, inputs = p.cfg, p.out, p.resume, p.world, p.sources, p.inputs
    tok, tok_json = p.tokenizer, p.tokenizer_json
    workers, seq_length = config.positive_int(cfg, "workers"), config.positive_int(cfg, "seq_length")
    for name, src in sources.items():
        if src["type"] == "synthetic" and not isinstance(src["restate"], bool):
            raise ConfigError(f"config key 'sources.{name}.restate': {src['restate']!r} must be true or false")
    p.start()

    # ---- shards: conversations -> chat template -> loss mask -> packed rows -> Parquet (Ray) ----
    jobs = plan_jobs(cfg, sources, inputs, world, tok_json, seq_length)
    timing: dict = {}
    stats = run_shards(build_shard, jobs, workers=workers, marker_dir=out / "shards", resume=resume,
                       shared=(tok_json, str(out)), timing=timing)
    shutdown_ray()

    # ---- RESULT.json (last) --------------------------------------------------------------
    keys = ("conversations", "rows", "tokens", "loss_tokens", "dropped_too_long")
    per_source = stats_.by_source(sources, jobs, stats, keys, "conversations")
    totals = stats_.totals(per_source, keys)
    if totals["rows"]["train"] == 0:
        raise DataError(f"no training rows: every conversation is longer than seq_length={seq_length}; raise it")
    outputs.write_json(out / "blend.json", {
        "format": "parquet", "seq_length": seq_length, "pad_id": tok.token_to_id(PAD), "tokenizer": "tokenizer",
        "sources": {n: {"weight": s["weight"]} for n, s in sources.items()},
        "splits": split_blend({n: s["weight"] for n, s in sources.items()}, jobs, stats,
                              lambda job, sp: f"splits/{sp}/{job['name']}.parquet")})
    outputs.finish(out, outputs.result_record(
        name=NAME, artifact=ARTIFACT, cfg=cfg, inputs=inputs,
        stats={**totals, "sources": per_source, "seq_length": seq_length, "shards": len(jobs),
               "vocab_size": tok.get_vocab_size()},
        files={"splits": "splits", "blend": "blend.json", "tokenizer": "tokenizer"}))
    outputs.print_summary({
        "conversations": totals["conversations"], "rows": totals["rows"], "skipped": totals["skipped"],
        "dropped_too_long": totals["dropped_too_long"], "shards": len(jobs),
        "shards_computed": len(timing["computed"]), "ray_init_s": round(timing["init_s"], 3),
        "shards_s": round(timing["run_s"], 3), "wall_s": round(time.time() - t0, 3)})


def plan_jobs(cfg, sources, inputs, world, tok_json, seq_length) -> list[dict]:
    jobs = []
    tok_digest = config.digest(tok_json)
    for name, src in sources.items():
        n = src["num_shards"]
        base = {"source": name, "type": src["type"], "num_shards": n, "tokenizer": tok_digest,
                "seq_length": seq_length, "splits": cfg["splits"], "on_error": cfg["on_error"]}
        if src["type"] == "synthetic":
            per_split = splits.split_counts(src["conversations"], cfg["splits"])
        else:
            pieces = readers.plan(inputs[name]["fmt"], inputs[name]["files"], n, src["storage_options"])
        for k in range(n):
            job = {**base, "name": f"{name}-{k:05d}", "shard": k}
            if src["type"] == "synthetic":
                job.update(world=world.cfg.to_dict(), seed=cfg["seed"], multi_turn=src["multi_turn"],
                           max_turns=src["max_turns"], restate=src["restate"],
                           conversations={sp: splits.share(per_split[sp], k, n) for sp in splits.SPLITS})
            else:
                job.update(fmt=inputs[name]["fmt"], pieces=pieces[k], messages_key=src["messages_key"],
                           storage_options=src["storage_options"], split=src["split"])
            job["digest"] = config.digest(job)
            jobs.append(job)
    return jobs


def build_shard(job: dict, tokenizer_json: str, out_dir: str) -> dict:
    """(Ray task) One shard: conversations -> split -> tokens + loss mask -> packed rows -> Parquet."""
    convs: dict[str, list[list[dict]]] = {sp: [] for sp in splits.SPLITS}
    on_error = readers.OnError(job["on_error"])
    if job["type"] == "synthetic":
        world = World(WorldConfig.from_dict(job["world"]))
        rng = random.Random(f"sft:{job['seed']}:{job['name']}")
        for sp in splits.SPLITS:
            convs[sp] = [world.conversation(rng, sp, job["multi_turn"], job["max_turns"], job["restate"])
                         for _ in range(job["conversations"][sp])]
    else:
        key = job["messages_key"]
        src = {"storage_options": job["storage_options"], "split": job["split"]}
        for loc, rec in readers.read(job["fmt"], job["pieces"], src, on_error, (key,)):
            messages = rec.get(key)
            problem = check_messages(messages)
            if problem:
                on_error.bad(loc, f"field '{key}': {problem}")
                continue
            messages = [{"role": m["role"], "content": m["content"]} for m in messages]
            text = json.dumps(messages, sort_keys=True, ensure_ascii=False)
            convs[splits.split_of(text, job["splits"]["valid"], job["splits"]["test"], salt="chat")].append(messages)

    tok = toks.from_json(tokenizer_json)
    stats = {k: {} for k in ("conversations", "rows", "tokens", "loss_tokens", "dropped_too_long")}
    stats.update(skipped=on_error.skipped, skipped_examples=on_error.examples)
    for sp, items in convs.items():
        packer = Packer(job["seq_length"], tok.token_to_id(PAD))
        for i in range(0, len(items), ENCODE_BATCH):
            for ids, mask in encode_chats(tok, items[i:i + ENCODE_BATCH]):
                packer.add(ids, mask)
        packer.flush()
        rows = packer.rows
        if rows:
            outputs.write_parquet(Path(out_dir) / "splits" / sp / f"{job['name']}.parquet", {
                "input_ids": [r["input_ids"] for r in rows], "loss_mask": [r["loss_mask"] for r in rows],
                "boundaries": [r["boundaries"] for r in rows], "num_tokens": [r["num_tokens"] for r in rows],
            }, types=PARQUET_TYPES)
        stats["conversations"][sp], stats["rows"][sp] = packer.sequences, len(rows)
        stats["tokens"][sp] = sum(r["num_tokens"] for r in rows)
        stats["loss_tokens"][sp] = int(sum(r["loss_mask"].sum() for r in rows))
        stats["dropped_too_long"][sp] = packer.dropped
    return stats


if __name__ == "__main__":
    sys.exit(run_main(main))
